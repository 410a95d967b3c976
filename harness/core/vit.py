"""Vision Transformer backbones (timm): the architectures a backbone file may hold, and
how to recognise one in a state dict.

A ViT backbone file holds the state dict of a timm ``VisionTransformer`` without its
classifier (``head.*``), built with ``num_classes=0`` and the class token as its feature
(``global_pool="token"``, so ``norm.*`` is the final layer norm). Its sidecar records
``family: vit``, the ``arch`` (a key of :data:`VIT_ARCHS`) and the ``img_size`` its
position embedding was trained for; the model is built with ``dynamic_img_size`` so that
any input size a task uses is served by interpolating the position embedding, and with
``dynamic_img_pad``: a side that is no multiple of the patch size is zero-padded at the
bottom / right (the patch grid keeps its pixel coordinates).
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
import torch.nn as nn

from harness.core.errors import CheckpointError

# arch -> (timm model name, embedding width, depth, patch size)
VIT_ARCHS: dict[str, tuple[str, int, int, int]] = {
    "vit_tiny_patch16": ("vit_tiny_patch16_224", 192, 12, 16),
    "vit_small_patch16": ("vit_small_patch16_224", 384, 12, 16),
    "vit_base_patch16": ("vit_base_patch16_224", 768, 12, 16),
}
ROOTS = ("cls_token", "pos_embed", "patch_embed", "blocks", "norm")  # the first key components of a ViT backbone


def is_vit(arch: str) -> bool:
    return arch in VIT_ARCHS


def build_vit(arch: str, img_size: int, drop_path_rate: float = 0.0) -> nn.Module:
    """A randomly initialised timm ViT of ``arch`` for ``img_size`` pixels, without classifier
    (``drop_path_rate``: stochastic depth, for fine-tuning)."""
    import timm

    if arch not in VIT_ARCHS:
        raise CheckpointError(f"unknown ViT arch {arch!r}; expected one of {sorted(VIT_ARCHS)}")
    patch = VIT_ARCHS[arch][3]
    if int(img_size) < patch or int(img_size) % patch:
        raise CheckpointError(f"ViT {arch}: img_size {img_size} must be a positive multiple of its patch size {patch}")
    return timm.create_model(VIT_ARCHS[arch][0], pretrained=False, num_classes=0, global_pool="token",
                             img_size=int(img_size), dynamic_img_size=True, dynamic_img_pad=True,
                             drop_path_rate=float(drop_path_rate))


def expected_vit_keys(arch: str, img_size: int) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of a ViT backbone file of ``arch`` at ``img_size`` (built on the meta device)."""
    with torch.device("meta"):
        net = build_vit(arch, img_size)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def vit_backbone_part(key: str) -> bool:
    return key.split(".")[0] in ROOTS


def infer_vit(state: Mapping[str, torch.Tensor], what: str) -> tuple[str, int]:
    """``(arch, img_size)`` of the ViT whose backbone keys ``state`` holds: the width from
    the class token, the depth from the block indices, the patch size from the patch
    embedding, the image size from the number of position embeddings."""
    try:
        width = int(state["cls_token"].shape[-1])
        patch = int(state["patch_embed.proj.weight"].shape[-1])
        tokens = int(state["pos_embed"].shape[1]) - 1
    except KeyError as exc:
        raise CheckpointError(f"{what}: a ViT backbone needs cls_token, pos_embed and patch_embed.proj.weight; "
                              f"{exc.args[0]} is missing") from None
    depth = 1 + max((int(k.split(".")[1]) for k in state if k.startswith("blocks.")), default=-1)
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise CheckpointError(f"{what}: pos_embed holds {tokens} patch positions, not a square grid")
    for arch, (_, w, d, p) in VIT_ARCHS.items():
        if (w, d, p) == (width, depth, patch):
            return arch, grid * patch
    raise CheckpointError(f"{what}: a ViT of width {width}, depth {depth}, patch {patch} is none of "
                          f"{', '.join(f'{a} ({w}/{d}/{p})' for a, (_, w, d, p) in VIT_ARCHS.items())}")


def stage_blocks(depth: int) -> tuple[int, int, int, int]:
    """The blocks that stand in for a ResNet's four stages: the last block of each quarter
    of the depth (2, 5, 8, 11 for 12 blocks, the ``out_indices`` of mmseg's UPerNet on ViT)."""
    if depth < 4 or depth % 4:
        raise CheckpointError(f"a ViT of depth {depth} has no four equal quarters of blocks")
    return tuple(depth * k // 4 - 1 for k in range(1, 5))  # type: ignore[return-value]


def is_vit_model(net: nn.Module) -> bool:
    """Whether ``net`` is a timm Vision Transformer (as :func:`build_vit` builds)."""
    from timm.models.vision_transformer import VisionTransformer

    return isinstance(net, VisionTransformer)


def patch_size(net: nn.Module) -> int:
    return int(net.patch_embed.patch_size[0])


def norm_map(norm: Callable[[torch.Tensor], torch.Tensor], m: torch.Tensor) -> torch.Tensor:
    """A token norm (e.g. a ViT's final LayerNorm) applied to the channels of an ``(N, C, h, w)`` map."""
    return norm(m.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
