"""Precise BN: after training, every BatchNorm's running statistics are the plain average
of its batch statistics over the given number of training batches; weights stay."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import torch
from mmengine.model import BaseModel
from torch import nn

from harness.tasks.mm.hooks import PreciseBNHook


class TinyNet(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4, momentum=0.1)

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = "tensor"):
        out = self.bn(self.conv(inputs))
        return {"loss": out.mean()} if mode == "loss" else out


def test_running_statistics_become_the_average_over_the_batches() -> None:
    torch.manual_seed(0)
    net = TinyNet().double()
    batches = [{"inputs": torch.randn(2, 3, 8, 8, dtype=torch.float64) * (i + 1) + i} for i in range(5)]
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    net.eval()
    runner = SimpleNamespace(model=net, train_dataloader=batches, logger=logging.getLogger("test"))

    PreciseBNHook(iters=7).after_train(runner)  # 7 > 5 batches: the loader is read again from the start

    seen = batches + batches[:2]
    with torch.no_grad():
        acts = [net.conv(b["inputs"]) for b in seen]
    means = torch.stack([a.mean(dim=(0, 2, 3)) for a in acts])
    variances = torch.stack([a.var(dim=(0, 2, 3), unbiased=True) for a in acts])
    assert torch.allclose(net.bn.running_mean, means.mean(0), atol=1e-12)
    assert torch.allclose(net.bn.running_var, variances.mean(0), atol=1e-12)
    assert net.bn.momentum == 0.1 and not net.training  # restored
    assert all(torch.equal(net.state_dict()[k], v) for k, v in weights.items())
