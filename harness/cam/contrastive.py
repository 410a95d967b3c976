"""Contrastive class activation maps (ContraCAM) with iterative refinement.

The CAM of an image is a Grad-CAM on the last feature map of the trunk (a ResNet's
``layer4`` output; a ViT's patch tokens as they enter its last block, the layer whose
gradient still reaches the class token, as Grad-CAM on ViTs takes it) whose score
is the contrastive log-likelihood of the image's own (unmasked) projection against the
projections of the other images of the inference batch:

    score_i = log( exp(q_i . k_i) / sum_j exp(q_i . z_j) )

``q_i`` is the L2-normalised projection of the (possibly masked) image, ``k_i`` that of
the unmasked image, and ``z_j`` runs over the projections of every image of the batch
at every refinement iteration so far, with the image's own entries set to zero (no
temperature). That is the paper's score (``numerator: paper``). The official code
(alinlab/object-aware-contrastive, utils/gradcam.py) broadcasts one numerator over the
batch, ``log( sum_j exp(q_j . k_j) / sum_j exp(q_i . z_j) )`` (``numerator: official``):
the two agree at T = 1, where every ``q_j . k_j`` is 1, and differ from the second
refinement on. Only the feature map receives gradients (the trunk runs without them and
the model stays in eval mode). Channel weights are the spatial mean of the gradient,
clamped to be non-negative; the map is ``ReLU(sum_k w_k A_k)``, upsampled bicubically
to the input size and min-max normalised per image.

Refinement: after iteration ``t`` the running mask is ``max(mask_{t-1}, cam_t)`` and the
next input is ``x * (1 - mask) + c * mask`` with ``c`` the per-channel mean of the
(normalised) batch, so later iterations reveal further object parts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

EXPAND_FACTORS = (1, 2, 4)
NUMERATORS = ("paper", "official")


def expand_resolution(backbone: nn.Module, factor: int) -> nn.Module:
    """Set stride 1 in ``layer4[0]`` (factor 2) and also in ``layer3[0]`` (factor 4), in
    place, so that the final feature map is ``factor`` times larger per side."""
    if factor not in EXPAND_FACTORS:
        raise ValueError(f"expand_res must be one of {EXPAND_FACTORS}, got {factor!r}")
    blocks = []
    if factor >= 2:
        blocks.append(backbone.layer4[0])
    if factor >= 4:
        blocks.append(backbone.layer3[0])
    for block in blocks:
        for module in block.modules():
            if isinstance(module, nn.Conv2d):
                module.stride = (1, 1)
    return backbone


def expand_patch_stride(vit: nn.Module, factor: int) -> nn.Module:
    """Overlapping patches for a ViT: the patch embedding's stride divided by ``factor``, in
    place (the position embedding is interpolated to the finer grid), so that the token map
    is about ``factor`` times larger per side."""
    if factor not in EXPAND_FACTORS:
        raise ValueError(f"expand_res must be one of {EXPAND_FACTORS}, got {factor!r}")
    conv = vit.patch_embed.proj
    if conv.kernel_size[0] % factor:
        raise ValueError(f"expand_res {factor} does not divide the patch size {conv.kernel_size[0]}")
    conv.stride = (conv.kernel_size[0] // factor, conv.kernel_size[1] // factor)
    return vit


class ResNetTrunk(nn.Module):
    """A torchvision ResNet for ContraCAM: the ``layer4`` map, pooled by its spatial mean."""

    def __init__(self, net: nn.Module, expand_res: int = 1) -> None:
        super().__init__()
        self.net = expand_resolution(net, expand_res)

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The ``layer4`` map, computed without gradients (nothing else is needed to pool it)."""
        b = self.net
        with torch.no_grad():
            x = b.maxpool(b.relu(b.bn1(b.conv1(images))))
            return b.layer4(b.layer3(b.layer2(b.layer1(x)))), None

    def pool(self, feature: torch.Tensor, prefix: None) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(feature, 1), 1)


class ViTTrunk(nn.Module):
    """A timm ViT for ContraCAM: the patch tokens entering the last block as a ``(B, C, h, w)``
    map; pooled by that block, the final norm and the class token (the backbone's feature)."""

    def __init__(self, net: nn.Module, expand_res: int = 1) -> None:
        super().__init__()
        self.net = expand_patch_stride(net, expand_res)

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The patch-token map and the prefix (class) tokens before the last block, without gradients."""
        v = self.net
        with torch.no_grad():
            x = v.patch_embed(images)  # (B, h, w, C): built with dynamic_img_size
            h, w = x.shape[1:3]
            x = v.norm_pre(v.patch_drop(v._pos_embed(x)))
            for block in v.blocks[:-1]:
                x = block(x)
        n = v.num_prefix_tokens
        return x[:, n:].transpose(1, 2).reshape(x.shape[0], -1, h, w), x[:, :n]

    def pool(self, feature: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        v = self.net
        tokens = torch.cat([prefix, feature.flatten(2).transpose(1, 2)], dim=1)
        return v.forward_head(v.norm(v.blocks[-1](tokens)), pre_logits=True)


def trunk_for(backbone: nn.Module, expand_res: int = 1) -> ResNetTrunk | ViTTrunk:
    from harness.core.vit import is_vit_model

    return (ViTTrunk if is_vit_model(backbone) else ResNetTrunk)(backbone, expand_res)


def contrastive_score(query: torch.Tensor, key: torch.Tensor, bank: list[torch.Tensor],
                      numerator: str = "paper") -> torch.Tensor:
    """Per-image score ``q_i.k_i - log sum_j exp(q_i.z_j)`` over every tensor of ``bank``
    (each ``(B, D)``, aligned with ``query``); the image's own entries are zeroed, i.e.
    they enter the sum as ``exp(0)``. ``numerator="official"``: ``log sum_j exp(q_j.k_j)``
    in place of ``q_i.k_i`` (the same for every image, as the official code computes it)."""
    if numerator not in NUMERATORS:
        raise ValueError(f"numerator must be one of {NUMERATORS}, got {numerator!r}")
    off_diagonal = 1.0 - torch.eye(query.size(0), device=query.device, dtype=query.dtype)
    positive = (query * key).sum(dim=1)
    if numerator == "official":
        positive = torch.logsumexp(positive, dim=0).expand_as(positive)
    negatives = torch.cat([(query @ z.t()) * off_diagonal for z in bank], dim=1)
    return positive - torch.logsumexp(negatives, dim=1)


def minmax_normalize(cam: torch.Tensor, eps: float = 1e-20) -> torch.Tensor:
    """Per-image min-max normalisation of a ``(B, 1, H, W)`` map to [0, 1]."""
    flat = cam.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    high = (flat.max(dim=1).values.view(-1, 1, 1, 1) - low)
    return (cam - low) / (high + eps)


def gradient_cam(feature: torch.Tensor, score: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Grad-CAM of ``score.sum()`` w.r.t. ``feature`` (``(B, C, h, w)``, requires grad)
    with non-negative channel weights; returns ``(B, 1, *size)`` maps in [0, 1]."""
    (grad,) = torch.autograd.grad(score.sum(), feature)
    weight = grad.mean(dim=(2, 3), keepdim=True).clamp_min(0)
    cam = F.relu((weight * feature).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=size, mode="bicubic", align_corners=False)
    return minmax_normalize(cam)


@dataclass
class CamSteps:
    """Intermediate results of a refinement: the CAM and the masked input per iteration."""

    cams: list[torch.Tensor]
    inputs: list[torch.Tensor]


class ContrastiveCAM(nn.Module):
    """ContraCAM on a torchvision ResNet or timm ViT backbone and a projection head.

    ``projector`` maps the backbone's pooled feature to the embedding used by the
    contrastive loss (MoCo v2 projector; for BYOL the projector, not the predictor).
    Its output is L2-normalised here. Both modules are put in eval mode. ``numerator``:
    ``paper`` or ``official`` (see the module docstring).
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module, expand_res: int = 1,
                 numerator: str = "paper") -> None:
        super().__init__()
        if numerator not in NUMERATORS:
            raise ValueError(f"numerator must be one of {NUMERATORS}, got {numerator!r}")
        self.trunk = trunk_for(backbone, expand_res)
        self.projector = projector
        self.numerator = numerator
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "ContrastiveCAM":
        """Always eval: CAMs use the running BN statistics."""
        return super().train(False)

    def project(self, feature: torch.Tensor, prefix: torch.Tensor | None) -> torch.Tensor:
        """L2-normalised projection of the pooled feature map."""
        return F.normalize(self.projector(self.trunk.pool(feature, prefix)), dim=1)

    def forward(self, images: torch.Tensor, iterations: int = 1,
                return_steps: bool = False) -> torch.Tensor | tuple[torch.Tensor, CamSteps]:
        """Refined masks ``(B, 1, H, W)`` in [0, 1] for a normalised batch ``(B, 3, H, W)``.

        The batch is the negative set: its composition changes the result.
        """
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        size = (images.shape[-2], images.shape[-1])
        fill = images.mean(dim=(0, 2, 3), keepdim=True)
        current = images
        key: torch.Tensor | None = None
        bank: list[torch.Tensor] = []
        mask: torch.Tensor | None = None
        steps = CamSteps([], [])
        with torch.enable_grad():
            for _ in range(iterations):
                feature, prefix = self.trunk.features(current)
                feature.requires_grad_(True)
                query = self.project(feature, prefix)
                if key is None:
                    key = query.detach()
                bank.append(query.detach())
                cam = gradient_cam(feature, contrastive_score(query, key, bank, self.numerator), size)
                mask = cam if mask is None else torch.maximum(mask, cam)
                current = images * (1 - mask) + fill * mask
                steps.cams.append(cam)
                steps.inputs.append(current)
        assert mask is not None
        return (mask, steps) if return_steps else mask
