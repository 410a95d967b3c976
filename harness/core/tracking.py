"""Experiment tracking: which backends receive a run's training curves, and where.

``log.backends`` of the resolved configuration names them (default ``[tensorboard]``;
``--set log.backends=[tensorboard,wandb,mlflow]``). Every unit sends its scalars through
mmengine's visualizer backends: an mmdet/mmseg task through its runner's visualizer,
pretraining through :mod:`harness.pretrain.trackers`. Tracking never enters a unit's key:
the same run with other backends has the same units and records.

Destinations follow each tool's own environment, read when the run is planned:

- Weights & Biases: ``WANDB_PROJECT`` (default ``harness``), ``WANDB_MODE``, the API key
  of ``wandb login`` or ``WANDB_API_KEY``. ``WANDB_MODE=offline`` writes each unit's run
  into its folder for a later ``wandb sync``. W&B groups a run's units under the run's name.
- MLflow: ``MLFLOW_TRACKING_URI`` and ``MLFLOW_EXPERIMENT_NAME`` (default ``harness``);
  without a tracking URI, a file store in ``<out>/mlruns`` (``mlflow ui --backend-store-uri
  <out>/mlruns``), which MLflow keeps in maintenance mode and the harness opts into.
- TensorBoard: event files in each unit's folder (``tensorboard --logdir <out>/units``).
"""
from __future__ import annotations

import importlib.util
import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError

MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}  # backend -> module it needs
DEFAULT_BACKENDS = ("tensorboard",)
DEFAULT_PROJECT = "harness"
MLFLOW_STORE = "mlruns"
WANDB_BACKEND = "ConfigOnlyWandbVisBackend"  # these two are registered by harness.pretrain.trackers
MLFLOW_BACKEND = "ClosedOnceMLflowVisBackend"
_WANDB_NO_KEY_MODES = ("offline", "disabled", "dryrun")


def check_backends(value: Any) -> list[str]:
    """``log.backends`` as a list of known, installed backend names; a ConfigError otherwise."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"log.backends: expected a list of names from {sorted(MODULES)}, got {value!r}")
    for name in value:
        if name not in MODULES:
            raise ConfigError(f"log.backends: unknown backend {name!r}; choose from {sorted(MODULES)}")
        if importlib.util.find_spec(MODULES[name]) is None:
            raise ConfigError(f"log.backends: {name} is not installed (pip install -e '.[tracking]')")
    if len(set(value)) != len(value):
        raise ConfigError(f"log.backends: {value!r} names a backend twice")
    if "wandb" in value and not _wandb_can_log():
        raise ConfigError("log.backends: wandb has no API key: run `wandb login`, set WANDB_API_KEY, "
                          "or set WANDB_MODE=offline to write offline runs for a later `wandb sync`")
    return list(value)


def _wandb_can_log() -> bool:
    if os.environ.get("WANDB_MODE", "").lower() in _WANDB_NO_KEY_MODES or os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc(os.environ.get("NETRC")).hosts
    except (OSError, netrc.NetrcParseError):
        return False
    return any(host.startswith("api.wandb.ai") for host in hosts)


def run_tracking(cfg: Mapping[str, Any], run_name: str, out: Path) -> dict[str, Any]:
    """What every unit of a run needs to log (its spec's ``tracking``)."""
    backends = check_backends(list((cfg.get("log") or {}).get("backends", DEFAULT_BACKENDS)))
    tracking: dict[str, Any] = {"backends": backends, "run": run_name}
    if "wandb" in backends:
        tracking["wandb_project"] = os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
    if "mlflow" in backends:
        tracking["mlflow_uri"] = (os.environ.get("MLFLOW_TRACKING_URI")
                                  or (Path(out) / MLFLOW_STORE).resolve().as_uri())
        tracking["mlflow_experiment"] = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_PROJECT
    return tracking


def backends_of(tracking: Mapping[str, Any]) -> list[str]:
    """The backend names of a unit's ``tracking`` (TensorBoard alone when it names none)."""
    return list(tracking.get("backends", DEFAULT_BACKENDS))


def vis_backend_cfgs(tracking: Mapping[str, Any], unit: str) -> list[dict[str, Any]]:
    """mmengine ``vis_backends`` entries for ``unit``; mmengine fills in each ``save_dir``."""
    out: list[dict[str, Any]] = []
    for name in backends_of(tracking):
        if name == "tensorboard":
            out.append(dict(type="TensorboardVisBackend"))
        elif name == "wandb":
            out.append(dict(type=WANDB_BACKEND, init_kwargs=dict(
                project=tracking["wandb_project"], group=tracking["run"], name=f"{tracking['run']}/{unit}",
                job_type=unit)))
        elif name == "mlflow":
            out.append(dict(type=MLFLOW_BACKEND, tracking_uri=tracking["mlflow_uri"],
                            exp_name=tracking["mlflow_experiment"], run_name=f"{tracking['run']}/{unit}",
                            tags={"harness.run": tracking["run"], "harness.unit": unit}))
    return out


def prepare_environment(tracking: Mapping[str, Any]) -> None:
    """In a unit's process, before any backend starts: let MLflow use the default file store."""
    if "mlflow" in backends_of(tracking) and str(tracking.get("mlflow_uri", "")).startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
