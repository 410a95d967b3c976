"""The shared self-supervised pretraining loop and its building blocks.

- :mod:`harness.pretrain.data`: scene images (listing, decoding, cache), padded raw batches,
  the step-indexed resumable sampler, per-image metadata hook.
- :mod:`harness.pretrain.augment`: batched two-view augmentation on tensors (CPU or GPU),
  deterministic from a ``torch.Generator``, with crop geometry and optional crop regions.
- :mod:`harness.pretrain.loop`: :func:`~harness.pretrain.loop.train`, the optimisation loop
  (schedules, checkpoints, exact resume, DDP, autocast, the next batch prepared ahead, loss log).
- :mod:`harness.pretrain.models`: ResNet trunks and MLP heads, head export/import.
- :mod:`harness.pretrain.dist`: process-group set-up from torchrun's environment, gathers.
- :mod:`harness.pretrain.optim`: SGD / LARS and the per-step learning-rate schedule.
- :mod:`harness.pretrain.stage`: a stage from the recipe keys every method shares (data,
  batch function, training, export).

Methods build a model whose ``forward(batch) -> dict`` returns ``"loss"`` and call
``train``; the last stage exports the backbone with :func:`harness.core.checkpoints.save_backbone`.
"""
