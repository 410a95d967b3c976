"""Weighted k-NN classification on cached features: a cheap representation monitor.

Each test feature votes with its ``k`` most cosine-similar training features, each vote
weighted by ``exp(similarity / temperature)`` (k = 20, temperature = 0.07 as in the
instance-discrimination line of work); top-1 of the summed votes, in percent.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.results import samples
from harness.api import Task, TaskContext, TaskResult
from harness.tasks import cls_common
from harness.tasks.features import Features, TransformSpec
from harness.tasks.logreg import score


def knn_predict(train: Features, test: Features, n_classes: int, k: int = 20, temperature: float = 0.07,
                chunk: int = 1024) -> torch.Tensor:
    """Predicted labels of ``test`` by temperature-weighted votes of the k nearest (cosine) train rows."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    bank = F.normalize(train.x.float(), dim=1)
    k = min(k, len(bank))
    preds = []
    for i in range(0, len(test), chunk):
        q = F.normalize(test.x[i:i + chunk].float().to(bank.device), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(q), n_classes, device=bank.device, dtype=sim.dtype)
        votes.scatter_add_(1, train.y.to(bank.device)[idx], (sim / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds)


class Knn(Task):
    """k-NN top-1 on frozen features of a classification dataset."""

    def run(self, ctx: TaskContext) -> TaskResult:
        cfg = ctx.cfg
        splits = cls_common.probe_splits_of(ctx)
        sets = {"train": splits.train, "test": splits.test}
        prints = cls_common.fingerprints(sets)
        ex = cls_common.extractor(ctx)
        spec = TransformSpec.from_cfg(cfg, border=splits.border)
        train = ex(splits.train, prints["train"], spec).to(ctx.device)
        test = ex(splits.test, prints["test"], spec).to(ctx.device)
        pred = knn_predict(train, test, len(splits.train.classes), int(cfg.get("k", 20)),
                           float(cfg.get("temperature", 0.07)))
        pred, truth = pred.cpu(), test.y.cpu()
        acc = score(pred, truth, "top1")
        items = samples.SampleTable({"test": samples.accuracy_group(splits.test.item_ids(), pred.numpy(), truth.numpy())},
                                    {"knn_top1": samples.accuracy_spec("top1", "test")})
        return TaskResult(metrics={"knn_top1": acc}, higher_is_better={"knn_top1": True}, samples=items,
                          dataset=cls_common.dataset_record(splits.name, sets, prints),
                          framework=cls_common.framework(),
                          extra={"k": int(cfg.get("k", 20)), "temperature": float(cfg.get("temperature", 0.07))})
