"""Re-estimating BatchNorm running statistics without training (precise BN, BN-calibrated floors)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn


@contextmanager
def averaged_bn_statistics(net: nn.Module) -> Iterator[int]:
    """Inside the block, every BatchNorm of ``net`` restarts its running statistics and
    keeps the plain average of the batches forwarded (``net`` in training mode, no
    gradients); afterwards the momenta and the training mode are restored. Yields the
    number of norm layers."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: running = mean over the batches seen
    was_training = net.training
    net.train()
    try:
        with torch.no_grad():
            yield len(norms)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        net.train(was_training)
