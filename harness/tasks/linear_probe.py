"""Linear probe: L-BFGS logistic regression on frozen, cached backbone features.

Config keys (``benchmarks/tasks/linear_probe.yaml``): ``dataset`` (see
:mod:`harness.data.catalog`), ``resize``/``crop`` (Resize + CenterCrop), ``l2_grid``
``{start, stop, num}``, ``max_iter``, ``tol``, ``refit``, ``val_size``, ``split_seed``,
``metric`` (default: the dataset's), ``extra_metrics`` (more test-split metrics to report,
e.g. ``[mean_per_class]`` beside ``top1``; the penalty is still chosen by ``metric``),
``batch_size``, ``workers``, ``cache_dir``.
"""
from __future__ import annotations

from typing import Any

from harness.results import samples
from harness.api import Task, TaskContext, TaskResult
from harness.core.errors import ConfigError
from harness.data.registry import ProbeSplits
from harness.tasks import cls_common, logreg
from harness.tasks.features import FeatureExtractor, Features, TransformSpec
from harness.tasks.probe import ProbeConfig, probe_with_seeded_val, train_probe


def n_classes_of(splits: ProbeSplits) -> int:
    return len(splits.train.classes)


def extra_metrics(cfg: dict[str, Any]) -> list[str]:
    """The config's ``extra_metrics``: a list of names from :data:`logreg.METRICS`."""
    extra = cfg.get("extra_metrics") or []
    if not isinstance(extra, list) or any(m not in logreg.METRICS for m in extra):
        raise ConfigError(f"task config 'extra_metrics' must be a list of {', '.join(logreg.METRICS)}, got {extra!r}")
    return list(extra)


def probe_splits(ex: FeatureExtractor, splits: ProbeSplits, cfg: dict[str, Any], device: str,
                 progress: Any = None) -> TaskResult:
    """Extract (or load) the features of every split, sweep, refit and score the test split."""
    extra = extra_metrics(cfg)
    sets = {"train": splits.train, "test": splits.test}
    if splits.val is not None:
        sets["val"] = splits.val
    prints = cls_common.fingerprints(sets)
    spec = TransformSpec.from_cfg(cfg, border=splits.border)
    feats: dict[str, Features] = {}
    for i, (name, ds) in enumerate(sets.items()):
        feats[name] = ex(ds, prints[name], spec)
        if progress:
            progress(i + 1, len(sets) + 1, phase=f"features {name}")
    pcfg = ProbeConfig.from_cfg(cfg, metric=cfg.get("metric") or splits.metric)
    if splits.val is None:
        probe = probe_with_seeded_val(feats["train"], n_classes_of(splits), cfg, device, pcfg.metric)
    else:
        probe = train_probe(feats["train"], feats["val"], n_classes_of(splits), pcfg, device)
    pred, truth = probe.predict(feats["test"]), feats["test"].y.cpu()
    metrics = {m: logreg.score(pred, truth, m) for m in dict.fromkeys([pcfg.metric, *extra])}
    items = samples.SampleTable({"test": samples.accuracy_group(splits.test.item_ids(), pred.numpy(), truth.numpy())},
                                {m: samples.accuracy_spec(m, "test") for m in metrics})
    if progress:
        progress(len(sets) + 1, len(sets) + 1, phase="probe")
    record = cls_common.dataset_record(splits.name, sets, prints)
    record["sizes"].update(probe_train=probe.sizes["train"], probe_val=probe.sizes["val"])
    return TaskResult(metrics=metrics, higher_is_better={m: True for m in metrics}, dataset=record,
                      framework=cls_common.framework(),
                      extra={**probe.summary(), "val_score": probe.sweep.val_scores[probe.sweep.best_index],
                             "refit": pcfg.refit, "metric": pcfg.metric}, samples=items)


class LinearProbe(Task):
    """Linear probe on frozen features of a classification dataset."""

    def run(self, ctx: TaskContext) -> TaskResult:
        splits = cls_common.probe_splits_of(ctx)
        return probe_splits(cls_common.extractor(ctx), splits, ctx.cfg, ctx.device, ctx.progress)
