"""DenseCL's algorithm against a plain re-implementation on a tiny ResNet-18: the dense
correspondence, both InfoNCE terms and their weighting, both queues, the momentum
encoder, stop-gradient on the keys and the key encoder under Shuffle BN."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
import yaml

from harness.core.errors import ConfigError
from harness.pretrain.augment import StepRNG
from harness_methods.densecl.model import DenseCLModel, dense_positive_index

RECIPES = Path(__file__).resolve().parents[2] / "methods" / "densecl" / "recipes"
IMG = 96  # a 3x3 C5 grid for ResNet-18
BATCH = 4
DIM, HIDDEN, QUEUE = 16, 32, 24
TEMP, LAMBDA, MOMENTUM = 0.3, 0.3, 0.9
PAIRS = (("backbone_k", "backbone"), ("projector_k", "projector"), ("dense_head_k", "dense_head"))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _unit(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x / x.norm(dim=dim, keepdim=True)


def _c5(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The ResNet's layer4 map, walking its modules one by one."""
    for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
        x = getattr(net, name)(x)
    return x


def _nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE with the positive in column 0: ``(loss, top-1 accuracy %)``."""
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue], dim=1) / t
    return -logits.log_softmax(dim=1)[:, 0].mean(), (logits.argmax(dim=1) == 0).float().mean() * 100


def _argmax_loop(qf: torch.Tensor, kf: torch.Tensor) -> torch.Tensor:
    """For every image and query cell, the key cell of largest dot product (python loops)."""
    n, _, s_q = qf.shape
    out = torch.empty(n, s_q, dtype=torch.long)
    for b in range(n):
        for i in range(s_q):
            sims = [float((qf[b, :, i] * kf[b, :, j]).sum()) for j in range(kf.shape[2])]
            out[b, i] = max(range(len(sims)), key=sims.__getitem__)
    return out


@dataclass
class Reference:
    """What one DenseCL forward must produce, computed step by step."""

    loss: torch.Tensor
    loss_global: torch.Tensor
    loss_dense: torch.Tensor
    acc: torch.Tensor
    acc_dense: torch.Tensor
    k: torch.Tensor  # (N, dim) global keys
    k_pooled: torch.Tensor  # (N, dim) spatially averaged dense keys, normalised
    match: torch.Tensor  # (N, S) key cell of each query cell
    parts: dict  # intermediate tensors, for the sensitivity checks

    def dense_loss_for(self, match: torch.Tensor) -> torch.Tensor:
        """The dense term had ``match`` been the correspondence."""
        dq, dk, queue = self.parts["dq"], self.parts["dk"], self.parts["dense_queue"]
        pos = torch.stack([dk[b][:, match[b]] for b in range(dk.shape[0])])  # (N, dim, S)
        return _nce(dq.transpose(1, 2).reshape(-1, DIM), pos.transpose(1, 2).reshape(-1, DIM), queue, TEMP)[0]


def _encode_keys(model: DenseCLModel, x: torch.Tensor, shuffle: tuple[torch.Tensor, int] | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Key encoder's C5 map and raw dense map; under ``shuffle = (perm, groups)`` the
    permuted batch is encoded in ``groups`` chunks and put back in order."""
    def enc(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = _c5(model.backbone_k, t)
        return f, model.dense_head_k(f), model.projector_k(f.mean(dim=(2, 3)))

    if shuffle is None:
        return enc(x)
    perm, groups = shuffle
    parts = [enc(c) for c in x[perm].chunk(groups)]
    inv = torch.argsort(perm)
    return tuple(torch.cat(p)[inv] for p in zip(*parts))


@torch.no_grad()
def reference(model: DenseCLModel, batch: dict, queue: torch.Tensor, dense_queue: torch.Tensor,
              lam: float = LAMBDA, shuffle: tuple[torch.Tensor, int] | None = None) -> Reference:
    fq = _c5(model.backbone, batch["view1"])
    fk, dk_raw, gk_raw = _encode_keys(model, batch["view2"], shuffle)
    q = _unit(model.projector(fq.mean(dim=(2, 3))), 1)
    k = _unit(gk_raw, 1)
    dq_raw = model.dense_head(fq).flatten(2)
    dk_raw = dk_raw.flatten(2)
    dq, dk = _unit(dq_raw, 1), _unit(dk_raw, 1)
    bq, bk = _unit(fq.flatten(2), 1), _unit(fk.flatten(2), 1)
    match = _argmax_loop(bq, bk)
    lg, ag = _nce(q, k, queue, TEMP)
    pos = torch.stack([dk[b][:, match[b]] for b in range(dk.shape[0])])
    ld, ad = _nce(dq.transpose(1, 2).reshape(-1, DIM), pos.transpose(1, 2).reshape(-1, DIM), dense_queue, TEMP)
    parts = {"dq": dq, "dk": dk, "dq_raw": dq_raw, "dk_raw": dk_raw, "bq": bq, "bk": bk, "fq": fq, "fk": fk,
             "dense_queue": dense_queue, "queue": queue, "q": q}
    return Reference((1 - lam) * lg + lam * ld, lg, ld, ag, ad, k, _unit(dk_raw.mean(dim=2), 1), match, parts)


def _build(lam: float = LAMBDA, **kw) -> DenseCLModel:
    return DenseCLModel("resnet18", dim=DIM, hidden=HIDDEN, queue=QUEUE, momentum=MOMENTUM, temperature=TEMP,
                        loss_lambda=lam, **kw)


@pytest.fixture(scope="module")
def base_model() -> DenseCLModel:
    """A small DenseCL whose query and key encoders differ (as after some training)."""
    torch.manual_seed(0)
    model = _build()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, online in PAIRS:
            for p in getattr(model, online).parameters():
                p.add_(torch.randn(p.shape, generator=g) * (0.2 * p.abs().mean() + 0.02))
        model.queue.ptr.fill_(5)
        model.dense_queue.ptr.fill_(QUEUE - 2)  # the next push wraps around
    return model


def variant(base: DenseCLModel, lam: float = LAMBDA, **kw) -> DenseCLModel:
    """A fresh model with the weights, queues and pointers of ``base``."""
    model = _build(lam, **kw)
    model.load_state_dict(base.state_dict())
    return model


def make_batch(seed: int = 2, n: int = BATCH) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"view1": torch.randn(n, 3, IMG, IMG, generator=g), "view2": torch.randn(n, 3, IMG, IMG, generator=g)}


# ------------------------------------------------------------------ correspondence


def test_dense_positive_index_is_the_argmax_over_key_cells() -> None:
    g = torch.Generator().manual_seed(0)
    qf = _unit(torch.randn(3, 5, 4, generator=g), 1)
    kf = _unit(torch.randn(3, 5, 7, generator=g), 1)  # more key cells than query cells
    got = dense_positive_index(qf, kf)
    assert got.shape == (3, 4)
    assert torch.equal(got, _argmax_loop(qf, kf))


def test_dense_positive_index_on_a_hand_made_grid() -> None:
    # query cell i is most similar to key cell (i + 1) % 3, least similar to (i + 2) % 3
    e = torch.eye(3)
    k = torch.stack([e[2], e[0], e[1]], dim=1)[None]  # key cell j = e[(j - 1) % 3]
    q = _unit(torch.stack([e[0] + 0.5 * e[1], e[1] + 0.5 * e[2], e[2] + 0.5 * e[0]], dim=1)[None], 1)
    assert dense_positive_index(q, k).tolist() == [[1, 2, 0]]
    sim = torch.einsum("nci,ncj->nij", q, k)
    assert sim.argmax(dim=1).tolist() != [[1, 2, 0]]  # the other axis gives another answer


# ------------------------------------------------------------------ one forward pass


@dataclass
class Step:
    """One forward pass of a copy of the base model, with its reference."""

    model: DenseCLModel
    batch: dict
    ref: Reference
    out: dict
    queue: torch.Tensor  # the queues before the pass
    dense_queue: torch.Tensor


def run_step(model: DenseCLModel, batch: dict, lam: float = LAMBDA,
             shuffle: tuple[torch.Tensor, int] | None = None) -> Step:
    queue, dense_queue = model.queue.keys.clone(), model.dense_queue.keys.clone()
    ref = reference(model, batch, queue, dense_queue, lam=lam, shuffle=shuffle)
    return Step(model, batch, ref, model(dict(batch)), queue, dense_queue)


@pytest.fixture(scope="module")
def step(base_model: DenseCLModel) -> Step:
    return run_step(variant(base_model), make_batch())


def test_forward_matches_a_plain_reimplementation(step: Step) -> None:
    out, ref = step.out, step.ref
    for key in ("loss", "loss_global", "loss_dense"):
        assert out[key].item() == pytest.approx(getattr(ref, key).item(), rel=1e-5, abs=1e-6), key
    assert out["acc"].item() == pytest.approx(ref.acc.item())
    assert out["acc_dense"].item() == pytest.approx(ref.acc_dense.item())
    assert out["loss"].requires_grad


def test_the_fixture_tells_correspondence_rules_apart(step: Step) -> None:
    """Other plausible correspondences give another dense loss on this input, so the
    comparison above pins the rule: backbone features, cosine, argmax over key cells."""
    ref = step.ref
    p = ref.parts
    s = p["bq"].shape[2]
    sim = torch.einsum("nci,ncj->nij", p["bq"], p["bk"])
    raw = torch.einsum("nci,ncj->nij", p["fq"].flatten(2), p["fk"].flatten(2))
    others = {
        "same cell": torch.arange(s).expand(BATCH, s),
        "argmin": sim.argmin(dim=2),
        "argmax over query cells": sim.argmax(dim=1),
        "dense-head features": torch.einsum("nci,ncj->nij", p["dq"], p["dk"]).argmax(dim=2),
        "unnormalised backbone features": raw.argmax(dim=2),
    }
    for name, match in others.items():
        assert not torch.equal(match, ref.match), name
        assert abs(ref.dense_loss_for(match).item() - ref.loss_dense.item()) > 1e-4, name
    assert abs(ref.loss_global.item() - ref.loss_dense.item()) > 1e-2  # so a swapped weighting shows


def test_the_fixture_has_no_near_ties(step: Step) -> None:
    """Best and second-best key cells (and positive vs. best negative logits) are far apart
    compared with float rounding, so the comparisons hold on any CPU."""
    p = step.ref.parts
    top2 = torch.einsum("nci,ncj->nij", p["bq"], p["bk"]).topk(2, dim=2).values
    assert (top2[..., 0] - top2[..., 1]).min() > 1e-4
    pos = (p["q"] * step.ref.k).sum(1)
    neg = (p["q"] @ p["queue"]).max(dim=1).values
    assert (pos - neg).abs().min() > 1e-4
    dq = p["dq"].transpose(1, 2).reshape(-1, DIM)
    kpos = torch.stack([p["dk"][b][:, step.ref.match[b]] for b in range(BATCH)]).transpose(1, 2).reshape(-1, DIM)
    dneg = (dq @ p["dense_queue"]).max(dim=1).values
    assert ((dq * kpos).sum(1) - dneg).abs().min() > 1e-4


@pytest.mark.parametrize("lam", [0.0, 0.8])
def test_loss_is_one_minus_lambda_global_plus_lambda_dense(base_model: DenseCLModel, lam: float) -> None:
    st = run_step(variant(base_model, lam), make_batch(), lam=lam)
    assert st.out["loss"].item() == pytest.approx(
        (1 - lam) * st.ref.loss_global.item() + lam * st.ref.loss_dense.item(), rel=1e-5)
    assert st.out["loss_dense"].item() == pytest.approx(st.ref.loss_dense.item(), rel=1e-5)
    assert st.out["loss_global"].item() == pytest.approx(st.ref.loss_global.item(), rel=1e-5)


def test_lambda_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ConfigError, match="loss_lambda"):
        DenseCLModel("resnet18", dim=DIM, queue=QUEUE, loss_lambda=1.5)


# ------------------------------------------------------------------ queues


def test_both_queues_receive_the_right_keys_after_the_loss(step: Step) -> None:
    model, ref = step.model, step.ref
    cols = [(5 + i) % QUEUE for i in range(BATCH)]
    dcols = [(QUEUE - 2 + i) % QUEUE for i in range(BATCH)]
    assert torch.allclose(model.queue.keys[:, cols], ref.k.t(), atol=1e-5)
    assert torch.allclose(model.dense_queue.keys[:, dcols], ref.k_pooled.t(), atol=1e-5)
    rest = [c for c in range(QUEUE) if c not in cols]
    drest = [c for c in range(QUEUE) if c not in dcols]
    assert torch.equal(model.queue.keys[:, rest], step.queue[:, rest])
    assert torch.equal(model.dense_queue.keys[:, drest], step.dense_queue[:, drest])
    assert int(model.queue.ptr) == 5 + BATCH and int(model.dense_queue.ptr) == BATCH - 2
    # the stored dense key is the average of the raw dense keys, normalised: neither the
    # average of the normalised cells, nor a query, nor a global key
    p = ref.parts
    for other in (_unit(p["dk"].mean(dim=2), 1), _unit(p["dq_raw"].mean(dim=2), 1), ref.k):
        assert not torch.allclose(other, ref.k_pooled, atol=1e-3)


def test_second_step_uses_the_keys_pushed_by_the_first(base_model: DenseCLModel) -> None:
    model = variant(base_model)
    model(dict(make_batch(2)))
    st = run_step(model, make_batch(3))
    assert st.out["loss_global"].item() == pytest.approx(st.ref.loss_global.item(), rel=1e-5)
    assert st.out["loss_dense"].item() == pytest.approx(st.ref.loss_dense.item(), rel=1e-5)
    assert int(model.queue.ptr) == (5 + 2 * BATCH) % QUEUE


# ------------------------------------------------------------------ gradients and momentum encoder


@pytest.mark.parametrize("lam,idle", [(LAMBDA, None), (0.0, "dense_head"), (1.0, "projector")])
def test_gradients_reach_the_query_side_only(base_model: DenseCLModel, lam: float, idle: str | None) -> None:
    """Keys carry no gradient; lambda decides which head learns."""
    model = variant(base_model, lam)
    model(dict(make_batch()))["loss"].backward()
    for key, online in PAIRS:
        assert all(not p.requires_grad and p.grad is None for p in getattr(model, key).parameters()), key
        grads = [p.grad for p in getattr(model, online).parameters()]
        if online == idle:
            assert all(g is None or not g.any() for g in grads), online
        else:
            assert all(g is not None and g.abs().sum() > 0 for g in grads), online


def test_after_step_moves_every_key_module_by_ema(base_model: DenseCLModel) -> None:
    model = variant(base_model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    m = model.after_step(3, 10)
    assert m == pytest.approx(MOMENTUM)
    params = dict(model.named_parameters())
    frozen = {n for n, p in params.items() if not p.requires_grad}
    covered = set()
    for key, online in PAIRS:
        for name, p in getattr(model, key).named_parameters():
            full = f"{key}.{name}"
            covered.add(full)
            want = MOMENTUM * before[full] + (1 - MOMENTUM) * before[f"{online}.{name}"]
            assert torch.allclose(p, want, atol=1e-6), full
            assert not torch.allclose(p, before[full]), full
    assert covered == frozen  # every momentum parameter, nothing else frozen
    for n in set(params) - frozen:
        assert torch.equal(params[n], before[n]), n  # the query side is left alone


def test_key_encoder_is_a_copy_of_the_query_encoder_at_start() -> None:
    torch.manual_seed(0)
    model = _build()
    for key, online in PAIRS:
        a, b = getattr(model, key).state_dict(), getattr(model, online).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a), key
        assert all(not p.requires_grad for p in getattr(model, key).parameters())


# ------------------------------------------------------------------ Shuffle BN


def test_shuffle_bn_keys_are_encoded_in_shuffled_groups_and_put_back_in_order(base_model: DenseCLModel) -> None:
    model = variant(base_model, shuffle_bn=True, shuffle_bn_groups=2)
    batch = make_batch()
    batch["rng"] = StepRNG(0, 3)
    perm = torch.randperm(BATCH, generator=StepRNG(0, 3).generator)
    st = run_step(model, batch, shuffle=(perm, 2))
    assert st.out["loss_global"].item() == pytest.approx(st.ref.loss_global.item(), rel=1e-5)
    assert st.out["loss_dense"].item() == pytest.approx(st.ref.loss_dense.item(), rel=1e-5)
    cols = [(5 + i) % QUEUE for i in range(BATCH)]
    dcols = [(QUEUE - 2 + i) % QUEUE for i in range(BATCH)]
    assert torch.allclose(model.queue.keys[:, cols], st.ref.k.t(), atol=1e-5)
    assert torch.allclose(model.dense_queue.keys[:, dcols], st.ref.k_pooled.t(), atol=1e-5)


def test_shuffle_bn_in_eval_mode_changes_nothing(base_model: DenseCLModel, step: Step) -> None:
    """With running BN statistics the grouping cannot matter: the keys must come back in
    the order of the batch."""
    plain, shuffled = variant(base_model).eval(), variant(base_model, shuffle_bn=True, shuffle_bn_groups=4).eval()
    batch = make_batch()
    batch["rng"] = StepRNG(0, 5)
    a, b = plain(dict(batch)), shuffled(dict(batch))
    for key in ("loss", "loss_global", "loss_dense"):
        assert a[key].item() == pytest.approx(b[key].item(), rel=1e-5), key
    assert torch.allclose(plain.dense_queue.keys, shuffled.dense_queue.keys, atol=1e-5)
    assert torch.allclose(plain.queue.keys, shuffled.queue.keys, atol=1e-5)


# ------------------------------------------------------------------ recipes and export


def test_from_cfg_passes_every_densecl_setting() -> None:
    cfg = {"arch": "resnet18", "densecl": {"dim": DIM, "hidden": HIDDEN, "queue": QUEUE, "momentum": 0.95,
                                           "temperature": 0.15, "loss_lambda": 0.7}}
    with torch.device("meta"):
        model = DenseCLModel.from_cfg(cfg)
    assert (model.loss_lambda, model.temperature, model.momentum) == (0.7, 0.15, 0.95)
    assert model.queue.keys.shape == model.dense_queue.keys.shape == (DIM, QUEUE)
    assert model.dense_head[0].out_channels == HIDDEN and model.dense_head[-1].out_channels == DIM
    assert model.projector[0].out_features == HIDDEN and model.projector[-1].out_features == DIM


@pytest.mark.parametrize("name", ["tiny", "paper"])
def test_recipes_weight_global_and_dense_equally(name: str) -> None:
    cfg = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
    with torch.device("meta"):
        model = DenseCLModel.from_cfg(cfg)
    assert model.loss_lambda == 0.5 and model.temperature == 0.2
    assert model.queue.keys.shape[0] == model.dense_queue.keys.shape[0] == 128


def test_export_heads_are_the_query_heads(base_model: DenseCLModel) -> None:
    heads = base_model.export_heads()
    assert heads["projector"][0] is base_model.projector and heads["dense_head"][0] is base_model.dense_head
    assert heads["dense_head"][1] == {"type": "conv_mlp", "dims": [512, HIDDEN, DIM]}


def test_stage_trains_the_recipe_model_with_the_default_views(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage hands :func:`pretrain` a DenseCL model built from its recipe, with the
    shared two-view batches and the export on."""
    import harness_methods.densecl.stages as train
    from harness.api import StageContext

    seen: dict[str, Any] = {}

    def fake_pretrain(ctx: StageContext, model: nn.Module, batch_fn: Any = None, meta: Any = None,
                      exports: bool = True) -> dict:
        seen.update(model=model, batch_fn=batch_fn, meta=meta, exports=exports)
        return {"steps": 0}

    monkeypatch.setattr(train, "pretrain", fake_pretrain)
    cfg = {"arch": "resnet18", "densecl": {"dim": DIM, "hidden": HIDDEN, "queue": QUEUE, "loss_lambda": 0.7,
                                           "temperature": 0.15}}
    ctx = StageContext(name="pretrain", cfg=cfg, workdir=Path("unused"), data_root=Path("unused"), seed=0,
                       device="cpu", preset="tiny", method="densecl")
    assert train.run(ctx) == {"steps": 0}
    model = seen["model"]
    assert isinstance(model, DenseCLModel) and (model.loss_lambda, model.temperature) == (0.7, 0.15)
    assert seen["batch_fn"] is None and seen["meta"] is None and seen["exports"]
