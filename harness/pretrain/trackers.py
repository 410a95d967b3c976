"""W&B and MLflow writers through mmengine's visualizer backends, for pretraining (built
here, outside an mmengine runner) and for the mmdet/mmseg tasks (built by their runner from
:func:`harness.core.tracking.vis_backend_cfgs`). Importing this module registers
:class:`ConfigOnlyWandbVisBackend` and :class:`ClosedOnceMLflowVisBackend`. TensorBoard stays with
:class:`~harness.pretrain.train_log.TrainLog`, whose writer drops the events after a resumed
checkpoint."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmengine.config import Config
from mmengine.registry import VISBACKENDS
from mmengine.visualization import MLflowVisBackend, WandbVisBackend

from harness.core.tracking import MLFLOW_BACKEND, WANDB_BACKEND, vis_backend_cfgs

TRACKING_DIR = "tracking"


@VISBACKENDS.register_module(name=WANDB_BACKEND, force=True)
class ConfigOnlyWandbVisBackend(WandbVisBackend):
    """mmengine's W&B backend, less the snapshot of every ``.py`` file under the working
    directory that its ``add_config`` takes (a virtual environment there holds thousands)."""

    def add_config(self, config: Config, **kwargs: Any) -> None:
        self.experiment.config.update(config.to_dict(), allow_val_change=True)


@VISBACKENDS.register_module(name=MLFLOW_BACKEND, force=True)
class ClosedOnceMLflowVisBackend(MLflowVisBackend):
    """mmengine's MLflow backend, closed once: a task's runner closes its visualizer after
    training and again after testing, and a second close would start an empty MLflow run."""

    def close(self) -> None:
        if not getattr(self, "_closed", False):
            super().close()
            self._closed = True


class Trackers:
    """The non-TensorBoard backends of ``tracking`` for one unit (rank 0 only)."""

    def __init__(self, tracking: Mapping[str, Any], unit: str, workdir: Path, config: Mapping[str, Any]) -> None:
        self.backends: list[Any] = []
        for c in vis_backend_cfgs(tracking, unit):
            if c["type"] == "TensorboardVisBackend":
                continue
            backend = VISBACKENDS.build({**c, "save_dir": str(Path(workdir) / TRACKING_DIR)})
            # the recipe as the run's parameters; MLflow's close() reads this config's work_dir
            backend.add_config(Config({"work_dir": str(workdir), "unit": unit, "method": dict(config)}))
            self.backends.append(backend)

    def add_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        for backend in self.backends:
            backend.add_scalars(dict(scalars), step=step)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
        self.backends = []
