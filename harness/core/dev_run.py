"""What a unit does in a fast dev run (``ctx.dev_run = {"steps": N, "images": K}``; the
plan side is :mod:`harness.run.dev_run`): take the first or an evenly spaced few of its
items, and measure its steps and memory."""
from __future__ import annotations

import resource
import sys
from typing import Sequence, TypeVar

T = TypeVar("T")


def head(items: Sequence[T], dev: dict[str, int] | None, at_least: int = 0) -> list[T]:
    """The first ``max(K, at_least)`` items in a dev run; all of them otherwise."""
    if not dev:
        return list(items)
    return list(items[:max(int(dev["images"]), at_least)])


def limit_images(items: Sequence[T], dev: dict[str, int] | None, labels: Sequence[int] | None = None) -> list[int]:
    """Indices of the items a frozen task reads in a dev run: an evenly spaced K of them,
    at least two per class when ``labels`` are given (all indices outside a dev run)."""
    n = len(items)
    if not dev or n <= dev["images"]:
        return list(range(n))
    k = int(dev["images"])
    if labels is not None:
        k = max(k, 2 * len(set(labels)))
    if k >= n:
        return list(range(n))
    if labels is None:
        return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [0]
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(i)
    per = max(2, k // max(1, len(by_class)))
    return sorted(i for idx in by_class.values() for i in idx[:per])


def thin(dataset: T, items: str, dev: dict[str, int] | None) -> T:
    """A dataclass record set with its list field ``items`` cut to an evenly spaced K in a
    dev run (``samples`` of a segmentation set, ``images`` of a detection set)."""
    import dataclasses

    values = getattr(dataset, items)
    keep = limit_images(values, dev)
    return dataset if len(keep) == len(values) else dataclasses.replace(dataset, **{items: [values[i] for i in keep]})


def item_report(seconds: float, done: int, real: int) -> dict[str, float]:
    """What a dev-run stage that is not gradient training measured: seconds per item over
    the ``done`` items it processed, and the ``real`` items the real run processes."""
    return {"dev_s_per_item": seconds / done if done else 0.0, "dev_items": float(done), "dev_real_items": float(real),
            **{f"dev_{k}": v for k, v in {**host_memory(), **device_memory()}.items()}}


def host_memory() -> dict[str, float]:
    """Peak RSS of this process (GB) and the shared memory in use on the host (GB)."""
    import shutil

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    out = {"host_rss_gb": rss, "worker_rss_gb": children}
    try:
        out["host_shm_gb"] = shutil.disk_usage("/dev/shm").used / 1024 ** 3
    except OSError:
        pass
    return out


def device_memory() -> dict[str, float]:
    """Peak and total memory of this process's CUDA device (GB); empty without CUDA."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    dev = torch.cuda.current_device()
    return {"device_peak_gb": torch.cuda.max_memory_allocated(dev) / 1024 ** 3,
            "device_total_gb": torch.cuda.get_device_properties(dev).total_memory / 1024 ** 3}


def stage_report(step_s: Sequence[float], wait_s: Sequence[float], images_per_step: int,
                 real_steps: int) -> dict[str, float]:
    """What a dev-run training stage measured: warm s/step (the first step excluded when
    there are more), images/s, data-wait fraction, the real schedule's steps, memory."""
    warm = list(step_s[1:]) or list(step_s)
    waits = list(wait_s[1:]) or list(wait_s)
    s_per_step = sum(warm) / len(warm)
    return {"dev_s_per_step": s_per_step, "dev_images_per_s": images_per_step / s_per_step if s_per_step else 0.0,
            "dev_data_wait_frac": sum(waits) / sum(warm) if sum(warm) else 0.0,
            "dev_warm_steps": float(len(step_s) - 1 if len(step_s) > 1 else 0),
            "dev_real_steps": float(real_steps), **{f"dev_{k}": v for k, v in {**host_memory(),
                                                                             **device_memory()}.items()}}
