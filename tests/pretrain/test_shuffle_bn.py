"""Shuffle BN: order restored, BN statistics per group, the same groups across two gloo
ranks as in the one-process emulation, and the MoCo v2 / DenseCL key encoders under it."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from gloo_ranks import run_ranks
from harness.pretrain.augment import StepRNG
from harness.pretrain.shuffle_bn import shuffled_forward
from harness_methods.densecl.model import DenseCLModel
from harness.pretrain.moco import MoCoV2Model


def _generator(seed: int = 5) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_outputs_come_back_in_input_order() -> None:
    x = torch.arange(12.0).view(12, 1)
    assert torch.equal(shuffled_forward(lambda t: t * 2, x, 4, _generator()), x * 2)
    a, b = shuffled_forward(lambda t: (t + 1, t.repeat(1, 3)), x, 3, _generator())
    assert torch.equal(a, x + 1) and torch.equal(b, x.repeat(1, 3))


def test_each_group_has_its_own_batch_statistics() -> None:
    torch.manual_seed(0)
    x = torch.randn(12, 3) * torch.arange(1, 13.0).view(12, 1)
    bn = nn.BatchNorm1d(3, affine=False).train()
    out = shuffled_forward(bn, x, 3, _generator(7))
    perm = torch.randperm(12, generator=_generator(7))
    for g in range(3):
        rows = perm[4 * g:4 * (g + 1)]
        part = x[rows]
        expected = (part - part.mean(0)) / torch.sqrt(part.var(0, unbiased=False) + bn.eps)
        assert torch.allclose(out[rows], expected, atol=1e-5)
    assert not torch.allclose(out, nn.BatchNorm1d(3, affine=False).train()(x), atol=1e-3)  # not one big BN
    with pytest.raises(Exception, match="equal BN groups"):
        shuffled_forward(bn, x[:10], 3, _generator())


def _rank(rank: int, x: torch.Tensor) -> list:
    bn = nn.BatchNorm1d(3, affine=False).train()
    return shuffled_forward(bn, x[rank * 6:(rank + 1) * 6], 99, _generator(11)).tolist()


def test_two_ranks_shuffle_as_the_one_process_emulation() -> None:
    torch.manual_seed(1)
    x = torch.randn(12, 3) * torch.arange(1, 13.0).view(12, 1)
    got = [torch.tensor(rows) for rows in run_ranks(_rank, x)]
    single = shuffled_forward(nn.BatchNorm1d(3, affine=False).train(), x, 2, _generator(11))
    assert torch.allclose(torch.cat(got), single, atol=1e-5)


@pytest.mark.parametrize("model_cls,section", [(MoCoV2Model, "moco"), (DenseCLModel, "densecl")])
def test_key_encoders_run_under_shuffle_bn(model_cls, section) -> None:
    torch.manual_seed(0)
    base = {"arch": "resnet18", section: {"dim": 16, "hidden": 32, "queue": 64}}
    plain = model_cls.from_cfg(base)
    shuffled = model_cls.from_cfg({**base, section: {**base[section], "shuffle_bn": True, "shuffle_bn_groups": 4}})
    shuffled.load_state_dict(plain.state_dict())
    batch = {"view1": torch.randn(8, 3, 32, 32), "view2": torch.randn(8, 3, 32, 32), "rng": StepRNG(0, 3)}
    a, b = plain(dict(batch))["loss"], shuffled(dict(batch))["loss"]
    assert torch.isfinite(a) and torch.isfinite(b) and not torch.allclose(a, b)  # other key BN statistics
