"""mmengine hooks the dense tasks add to the Runner."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from harness.core.atomic import atomic_write_text
from harness.core.batchnorm import averaged_bn_statistics
from harness.tasks.mm.backbone import verify_loaded


class BackboneCheckHook(Hook):
    """Before the first iteration, check that the backbone parts hold the file's tensors.

    ``parts`` maps a file-key prefix to a dotted module path in the model (``"backbone"``,
    ``"roi_head.shared_head"``). A passed check is written to ``marker`` (with the file's
    sha256). A resumed run (iteration > 0) restores its own trained weights, so it cannot
    repeat the check: it reports the marker of the run that started from the file.
    """

    priority = "VERY_HIGH"

    def __init__(self, parts: Mapping[str, str], state: Mapping[str, torch.Tensor], source: str, sha256: str,
                 marker: Path) -> None:
        self.parts = dict(parts)
        self.state = state
        self.source = source
        self.sha256 = sha256
        self.marker = marker
        self.checked = False
        self.start_iter = 0

    def before_train(self, runner) -> None:
        self.start_iter = runner.iter
        if runner.iter > 0:
            self.checked = self.marker.is_file() and json.loads(self.marker.read_text()).get("sha256") == self.sha256
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        modules: dict[str, nn.Module] = {prefix: model.get_submodule(path) for prefix, path in self.parts.items()}
        verify_loaded(modules, self.state, self.source)
        self.checked = True
        atomic_write_text(self.marker, json.dumps({"source": self.source, "sha256": self.sha256,
                                                   "tensors": len(self.state)}))
        runner.logger.info(f"backbone check passed: {len(self.state)} tensors of {self.source} loaded")


class ProgressHook(Hook):
    """Reports training iterations to the unit's progress callback."""

    priority = "LOW"

    def __init__(self, progress: Callable[..., None]) -> None:
        self.progress = progress
        self.total = 1

    def before_train(self, runner) -> None:
        self.total = runner.max_iters

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.progress(runner.iter + 1, self.total, phase="train")

    def after_test_epoch(self, runner, metrics=None) -> None:
        self.progress(self.total, self.total, phase="tested")


class WeightsOnlyCheckpointHook(Hook):
    """Keeps the Runner's checkpoints loadable by ``torch.load(weights_only=True)``, which
    is how mmengine resumes under torch >= 2.6.

    The message hub's scalar histories (``HistoryBuffer`` objects, which unpickle only by
    calling ``getattr``) are left out of the file; they only smooth the training log, which
    restarts its averages after a resume. Numpy scalars of the runtime info (the ETA)
    become Python numbers. Weights, optimizer, schedulers and the iteration counter are kept.
    """

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get("message_hub")
        if isinstance(hub, dict):
            hub["log_scalars"] = {}
            info = hub.get("runtime_info", {})
            for key, value in info.items():
                if isinstance(value, np.generic):
                    info[key] = value.item()


class PreciseBNHook(Hook):
    """After training, before the test: every BatchNorm layer's running statistics become
    the plain average of its batch statistics over ``iters`` training batches (detectron2's
    precise BN), in place of the exponential average of the last iterations.

    The forward passes run in training mode without gradients, so no weight changes; under
    DDP every process runs the same number, so SyncBN averages over all of them.
    """

    priority = "LOW"

    def __init__(self, iters: int) -> None:
        self.iters = int(iters)

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        # The next batches of the training stream: a second iterator over the same loader
        # would share mmdet's aspect-ratio batch sampler state with the suspended first one.
        batches = getattr(getattr(runner, "train_loop", None), "dataloader_iterator", None)
        if batches is None:
            batches = _repeat(runner.train_dataloader)
        with averaged_bn_statistics(model) as norms:
            for _ in range(self.iters):
                model(**model.data_preprocessor(next(batches), True), mode="loss")
        runner.logger.info(f"precise BN: statistics of {norms} norm layers re-estimated on {self.iters} batches")


def _repeat(loader: Iterable) -> Iterator:
    """The loader's batches, read again from the start whenever it ends."""
    while True:
        yield from loader
