"""Shared model pieces of the pretraining methods: the EMA update, frozen momentum
copies, MLP heads built from specs, and the ResNet trunks."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from harness.core.errors import ConfigError
from harness.pretrain.models import (build_backbone, build_head, build_resnet, conv_mlp_spec, ema_update,
                                     feature_dim, frozen_copy, mlp_spec, resnet_c5)
from pretrain_oracles import assert_params_equal, buffers, ema, params, perturb_


def _pair() -> tuple[nn.Module, nn.Module]:
    """An online module and a different target of the same shape (with BN buffers)."""
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3, bias=False))
    online(torch.randn(8, 5))  # non-trivial running statistics
    target = frozen_copy(online)
    perturb_(target, 1, scale=0.5)
    target(torch.randn(8, 5))
    return online, target


@pytest.mark.parametrize("m", [0.0, 0.3, 0.99, 1.0])
def test_ema_update_moves_every_parameter_and_no_buffer(m: float) -> None:
    online, target = _pair()
    t0, o0, tb0, ob0 = params(target), params(online), buffers(target), buffers(online)
    ema_update(target, online, m)
    assert_params_equal(params(target), ema(t0, o0, m), what="target")
    assert_params_equal(params(online), o0, atol=0, what="online")
    assert_params_equal(buffers(target), tb0, atol=0, what="target buffers")
    assert_params_equal(buffers(online), ob0, atol=0, what="online buffers")
    if m == 0.0:
        assert_params_equal(params(target), o0, atol=0)


def test_ema_update_covers_a_whole_resnet_trunk() -> None:
    torch.manual_seed(0)
    online = build_resnet("resnet18")
    target = frozen_copy(online)
    perturb_(target, 1)
    t0, o0 = params(target), params(online)
    ema_update(target, online, 0.75)
    assert_params_equal(params(target), ema(t0, o0, 0.75), what="resnet18")


def test_frozen_copy_is_an_independent_copy_without_gradients() -> None:
    online, _ = _pair()
    copy = frozen_copy(online)
    assert type(copy) is type(online) and copy is not online
    assert_params_equal(params(copy), params(online), atol=0)
    assert_params_equal(buffers(copy), buffers(online), atol=0)
    assert not any(p.requires_grad for p in copy.parameters())
    assert all(p.requires_grad for p in online.parameters())  # the source keeps training
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    online(torch.randn(8, 5))
    assert not torch.equal(copy[0].weight, online[0].weight)
    assert not torch.equal(copy[1].running_mean, online[1].running_mean)


def test_mlp_head_layers_follow_the_spec() -> None:
    head = build_head(mlp_spec([8, 6, 5, 4]))
    assert [type(m) for m in head] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU,
                                       nn.Linear]
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 6), (6, 5), (5, 4)]
    assert [m.bias is not None for m in linears] == [False, False, True]  # a bias only without BN after it
    assert [m.num_features for m in head if isinstance(m, nn.BatchNorm1d)] == [6, 5]
    plain = build_head(mlp_spec([8, 6, 4], bn=False))
    assert [type(m) for m in plain] == [nn.Linear, nn.ReLU, nn.Linear]
    assert plain[0].bias is not None and plain[2].bias is not None
    last = build_head(mlp_spec([8, 6, 4], last_bn=True))
    assert [type(m) for m in last] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d]
    assert last[3].bias is None and not last[4].affine and last[4].num_features == 4 and last[1].affine
    assert mlp_spec([8.0, 6, 4]) == {"type": "mlp", "dims": [8, 6, 4], "bn": True, "last_bn": False}


def test_mlp_head_computes_linear_bn_relu_linear() -> None:
    torch.manual_seed(0)
    head = build_head(mlp_spec([5, 7, 3])).train()
    x = torch.randn(6, 5)
    h = x @ head[0].weight.t()
    h = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + head[1].eps) * head[1].weight + head[1].bias
    want = torch.relu(h) @ head[3].weight.t() + head[3].bias
    assert torch.allclose(head(x), want, atol=1e-5)


def test_conv_head_and_bad_specs() -> None:
    head = build_head(conv_mlp_spec([8, 6, 4]))
    assert [type(m) for m in head] == [nn.Conv2d, nn.ReLU, nn.Conv2d]
    assert head[0].kernel_size == (1, 1) and (head[0].in_channels, head[2].out_channels) == (8, 4)
    assert head(torch.randn(2, 8, 3, 3)).shape == (2, 4, 3, 3)
    with pytest.raises(ConfigError):
        build_head({"type": "mlp", "dims": [8]})
    with pytest.raises(ConfigError):
        build_head({"type": "transformer", "dims": [8, 4]})


def test_feature_dims() -> None:
    assert [feature_dim(a) for a in ("resnet18", "resnet34", "resnet50", "resnet101")] == [512, 512, 2048, 2048]
    assert feature_dim("vit_tiny_patch16") == 192 and feature_dim("vit_small_patch16") == 384
    with pytest.raises(ConfigError):
        feature_dim("resnet19")


def test_resnet_trunk_is_pooled_layer4_without_classifier() -> None:
    torch.manual_seed(0)
    net = build_backbone("resnet18", zero_init_residual=False).eval()
    assert isinstance(net.fc, nn.Identity)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats, c5 = net(x), resnet_c5(net, x)
    assert feats.shape == (2, 512) and c5.shape == (2, 512, 1, 1)
    assert torch.allclose(feats, c5.mean(dim=(2, 3)), atol=1e-6)
    assert all(float(b.bn2.weight.min()) == 1.0 for b in net.layer1)
    zero = build_backbone("resnet18", zero_init_residual=True)
    assert all(float(b.bn2.weight.abs().max()) == 0.0 for layer in (zero.layer1, zero.layer4) for b in layer)
    with pytest.raises(ConfigError):
        build_backbone("vit_tiny_patch16")  # a ViT needs its image size
