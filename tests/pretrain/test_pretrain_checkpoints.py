"""Backbone export, strict load, and conversion of public checkpoint layouts."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torchvision

from harness.core.checkpoints import load_backbone, save_backbone, sha256_file
from harness.core.heads import load_heads, save_heads
from harness.convert import ConversionReport, convert, convert_main
from harness.core.errors import CheckpointError
from harness.pretrain.models import build_head, mlp_spec


def _resnet18_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return torchvision.models.resnet18().state_dict()


def _backbone_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def _heads(prefix: str, d: int = 512) -> dict[str, torch.Tensor]:
    return {f"{prefix}0.weight": torch.randn(d, d), f"{prefix}0.bias": torch.randn(d),
            f"{prefix}2.weight": torch.randn(128, d), f"{prefix}2.bias": torch.randn(128)}


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in _backbone_only(state).items()}


def _layouts(state: dict[str, torch.Tensor]) -> dict[str, tuple[object, str]]:
    """Checkpoints with the real key names of each public layout -> (object, expected layout)."""
    other = _resnet18_state(1)
    moco = {**_prefixed(state, "module.encoder_q."), **_heads("module.encoder_q.fc."),
            **_prefixed(other, "module.encoder_k."), **_heads("module.encoder_k.fc."),
            "module.queue": torch.randn(128, 64), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
    openselfsup = {**_prefixed(state, "backbone."), **_prefixed(state, "encoder_q.0."),
                   **_heads("neck.mlp."), **_prefixed(other, "encoder_k.0."),
                   "queue": torch.randn(128, 64), "queue_ptr": torch.zeros(1, dtype=torch.long)}
    byol = {**_prefixed(state, "online_net.0."), **_heads("online_net.1.mlp."),
            **_prefixed(other, "target_net.0."), **_heads("predictor.mlp.")}
    lightning = {**_prefixed(state, "encoder."), **_heads("projection."), **_prefixed(other, "_encoder.")}
    return {
        "moco": ({"epoch": 200, "arch": "resnet18", "state_dict": moco, "optimizer": {"state": {}}}, "moco"),
        "openselfsup": ({"meta": {"epoch": 800}, "state_dict": openselfsup}, "openselfsup"),
        "byol": ({"state_dict": byol}, "openselfsup-byol"),
        "lightning": ({"epoch": 3, "global_step": 10, "state_dict": lightning}, "lightning"),
        "torchvision": (dict(state), "torchvision"),
        "ddp": ({"model": _prefixed(state, "module.")}, "ddp"),
    }


DROPPED_HEADS = {"moco": "module.encoder_q.fc.*", "openselfsup": "neck.*", "byol": "online_net.1.*",
                 "lightning": "projection.*", "torchvision": "fc.*"}


@pytest.mark.parametrize("name", ["moco", "openselfsup", "byol", "lightning", "torchvision", "ddp"])
def test_convert_each_public_layout_then_strict_load(tmp_path: Path, name: str) -> None:
    exported = save_backbone(torchvision.models.resnet18(), tmp_path / "exported", {"arch": "resnet18"})
    state = {**torch.load(exported, weights_only=True), "fc.weight": torch.randn(1000, 512),
             "fc.bias": torch.randn(1000)}
    obj, layout = _layouts(state)[name]
    src = tmp_path / f"{name}.pth"
    torch.save(obj, src)
    report = convert(src, tmp_path / "out")
    assert isinstance(report, ConversionReport)
    assert (report.layout, report.arch, report.kept) == (layout, "resnet18", len(_backbone_only(state)))
    assert report.dst == tmp_path / "out" / "backbone.pth"
    if name == "moco":
        assert report.dropped["module.encoder_k.*"] > 0 and report.dropped["module.queue"] == 1
    if name in DROPPED_HEADS:  # projector / fc keys are dropped and named as such
        assert report.dropped[DROPPED_HEADS[name]] > 0 and DROPPED_HEADS[name] in report.summary()
    net = load_backbone(report.dst)
    assert isinstance(net.fc, torch.nn.Identity)
    for k, v in _backbone_only(state).items():
        assert torch.equal(net.state_dict()[k], v), k
    meta = json.loads((tmp_path / "out" / "backbone.json").read_text())
    assert meta["arch"] == "resnet18" and meta["sha256"] == sha256_file(report.dst)


def test_export_then_load_round_trip(tmp_path: Path) -> None:
    net = torchvision.models.resnet18()
    path = save_backbone(net, tmp_path, {"arch": "resnet18", "method": "m", "recipe": "tiny", "config_hash": "h"})
    assert set(torch.load(path, weights_only=True)) == set(_backbone_only(net.state_dict()))
    loaded = load_backbone(path)
    x = torch.randn(2, 3, 32, 32)
    net.fc = torch.nn.Identity()
    net.eval(), loaded.eval()
    assert torch.allclose(net(x), loaded(x))
    meta = json.loads((tmp_path / "backbone.json").read_text())
    assert {"arch", "sha256", "method", "recipe", "config_hash"} <= set(meta)


def test_missing_backbone_key_is_listed(tmp_path: Path) -> None:
    state = _prefixed(_resnet18_state(), "module.encoder_q.")
    del state["module.encoder_q.layer4.1.bn2.weight"]
    torch.save({"state_dict": state}, tmp_path / "moco.pth")
    with pytest.raises(CheckpointError, match="layer4.1.bn2.weight"):
        convert(tmp_path / "moco.pth", tmp_path / "out", arch="resnet18")


@pytest.mark.parametrize("victim", ["layer4.1.bn2.weight", "conv1.weight", "layer1.0.conv1.weight"])
def test_missing_backbone_key_is_listed_without_an_arch(tmp_path: Path, victim: str) -> None:
    state = _prefixed(_resnet18_state(), "module.encoder_q.")
    del state["module.encoder_q." + victim]
    torch.save({"state_dict": state}, tmp_path / "moco.pth")
    with pytest.raises(CheckpointError, match=rf"1 resnet18 backbone key\(s\) missing .*'{victim}'"):
        convert(tmp_path / "moco.pth", tmp_path / "out")
    plain = _backbone_only(_resnet18_state())
    del plain[victim]
    torch.save(plain, tmp_path / "backbone.pth")
    with pytest.raises(CheckpointError, match=rf"missing keys \['{victim}'\]"):
        load_backbone(tmp_path / "backbone.pth")


def test_wrong_shape_is_an_error(tmp_path: Path) -> None:
    state = _prefixed(_resnet18_state(), "backbone.")
    state["backbone.layer2.0.conv1.weight"] = torch.zeros(128, 64, 1, 1)
    torch.save({"state_dict": state}, tmp_path / "src.pth")
    with pytest.raises(CheckpointError, match=r"layer2.0.conv1.weight \(128, 64, 1, 1\) \(expected \(128, 64, 3, 3\)\)"):
        convert(tmp_path / "src.pth", tmp_path / "out")


def test_non_finite_weights_are_refused_by_name(tmp_path: Path) -> None:
    state = _resnet18_state()
    state["layer3.1.bn2.running_var"][4] = float("nan")
    state["conv1.weight"][0, 0, 0, 0] = float("inf")
    torch.save(state, tmp_path / "src.pth")
    with pytest.raises(CheckpointError, match=r"NaN or inf values in \['conv1.weight', 'layer3.1.bn2.running_var'\]"):
        convert(tmp_path / "src.pth", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(CheckpointError, match="backbone to export holds NaN or inf"):
        save_backbone(_backbone_only(state), tmp_path / "export", {"arch": "resnet18"})
    assert not (tmp_path / "export").exists()


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_pickled_code_payload_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "evil.pth"
    torch.save({"state_dict": _resnet18_state(), "extra": _Payload()}, src)
    with pytest.raises(CheckpointError, match="refused"):
        convert(src, tmp_path / "out")
    torch.save(_backbone_only(_resnet18_state()) | {"x": _Payload()}, tmp_path / "backbone.pth")
    with pytest.raises(CheckpointError, match="refused"):
        load_backbone(tmp_path / "backbone.pth", arch="resnet18")


def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "notes.pth").write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match=r"notes.pth: not a PyTorch checkpoint .* starts with b'not '"):
        convert(tmp_path / "notes.pth", tmp_path / "out")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth: not a PyTorch checkpoint"):
        load_backbone(tmp_path / "empty.pth", arch="resnet18")


def test_detectron2_pickle_and_unknown_layout_are_refused(tmp_path: Path) -> None:
    (tmp_path / "model_final.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(CheckpointError, match="detectron2"):
        convert(tmp_path / "model_final.pkl", tmp_path / "out")
    torch.save({"state_dict": {"blocks.0.attn.qkv.weight": torch.zeros(3)}}, tmp_path / "vit.pth")
    with pytest.raises(CheckpointError, match="no ResNet backbone"):
        convert(tmp_path / "vit.pth", tmp_path / "out")


def test_tampered_backbone_fails_sha256_check(tmp_path: Path) -> None:
    path = save_backbone(torchvision.models.resnet18(), tmp_path, {"arch": "resnet18"})
    state = torch.load(path, weights_only=True)
    state["conv1.weight"].add_(1)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="sha256"):
        load_backbone(path)


def test_convert_main_prints_report(tmp_path: Path, capsys) -> None:
    torch.save({"state_dict": _prefixed(_resnet18_state(), "backbone.")}, tmp_path / "src.pth")
    assert convert_main(tmp_path / "src.pth", tmp_path / "dst.pth") == 0
    out = capsys.readouterr().out
    assert "openselfsup" in out and "resnet18" in out
    assert load_backbone(tmp_path / "dst.pth").conv1.weight.shape == (64, 3, 7, 7)


def test_heads_round_trip(tmp_path: Path) -> None:
    spec = mlp_spec([512, 64, 16])
    head = build_head(spec)
    save_heads(tmp_path, {"projector": head}, {"projector": spec})
    loaded = load_heads(tmp_path)["projector"]
    head.eval(), loaded.eval()
    x = torch.randn(4, 512)
    assert torch.equal(head(x), loaded(x))


def test_old_checkpoint_without_bn_counters_is_filled_and_reported(tmp_path: Path) -> None:
    state = {k: v for k, v in _prefixed(_resnet18_state(), "backbone.").items() if "num_batches_tracked" not in k}
    torch.save({"state_dict": state}, tmp_path / "old.pth")
    report = convert(tmp_path / "old.pth", tmp_path / "out")
    assert report.arch == "resnet18" and len(report.filled) == 20 and "filled 20" in report.summary()
    load_backbone(report.dst)


def _reference_projector(state: dict[str, torch.Tensor], prefix: str, bn: bool) -> torch.nn.Sequential:
    """The source checkpoint's own projector module (torch layers, its key names), eval mode."""
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if bn:
        d_in, hid, out = sub["0.weight"].shape[1], sub["0.weight"].shape[0], sub["3.weight"].shape[0]
        net = torch.nn.Sequential(torch.nn.Linear(d_in, hid), torch.nn.BatchNorm1d(hid), torch.nn.ReLU(),
                                  torch.nn.Linear(hid, out))
    else:
        d_in, hid, out = sub["0.weight"].shape[1], sub["0.weight"].shape[0], sub["2.weight"].shape[0]
        net = torch.nn.Sequential(torch.nn.Linear(d_in, hid), torch.nn.ReLU(), torch.nn.Linear(hid, out))
    net.load_state_dict(sub, strict=True)
    return net.eval()


def _bn_projector(prefix: str, d: int = 512, hid: int = 256, out: int = 64) -> dict[str, torch.Tensor]:
    """OpenSelfSup BYOL neck keys: Linear(bias) - BN - ReLU - Linear, with trained BN statistics."""
    return {f"{prefix}0.weight": torch.randn(hid, d), f"{prefix}0.bias": torch.randn(hid),
            f"{prefix}1.weight": torch.rand(hid) + 0.5, f"{prefix}1.bias": torch.randn(hid),
            f"{prefix}1.running_mean": torch.randn(hid), f"{prefix}1.running_var": torch.rand(hid) + 0.5,
            f"{prefix}1.num_batches_tracked": torch.tensor(100), f"{prefix}3.weight": torch.randn(out, hid),
            f"{prefix}3.bias": torch.randn(out)}


@pytest.mark.parametrize("name,head_prefix,bn", [
    ("moco", "module.encoder_q.fc.", False), ("openselfsup", "neck.mlp.", False), ("byol", "online_net.1.mlp.", True)])
def test_convert_imports_the_projector_as_heads(tmp_path: Path, name: str, head_prefix: str, bn: bool) -> None:
    from harness.cam.infer import load_cam_model

    state = _resnet18_state()
    obj, _ = _layouts(state)[name]
    if bn:  # replace the layout's Linear-ReLU-Linear projector by a BN one
        obj["state_dict"] = {k: v for k, v in obj["state_dict"].items() if not k.startswith(head_prefix)}
        obj["state_dict"].update(_bn_projector(head_prefix))
    torch.save(obj, tmp_path / "src.pth")
    report = convert(tmp_path / "src.pth", tmp_path / "out")
    assert report.heads.startswith("projector") and head_prefix in report.heads and head_prefix in report.summary()
    head = load_heads(tmp_path / "out")["projector"].eval()
    reference = _reference_projector(obj["state_dict"], head_prefix, bn)
    x = torch.randn(6, 512)
    with torch.no_grad():
        assert torch.allclose(head(x), reference(x), rtol=1e-4, atol=1e-4)
    cam = load_cam_model(tmp_path / "out" / "backbone.pth")  # ContraCAM runs on the imported weights
    assert cam.projector is not None


def test_convert_without_a_projector_says_so_and_removes_stale_heads(tmp_path: Path) -> None:
    moco = _layouts(_resnet18_state())["moco"][0]
    torch.save(moco, tmp_path / "moco.pth")
    assert convert(tmp_path / "moco.pth", tmp_path / "out").heads.startswith("projector")
    torch.save({"state_dict": _prefixed(_resnet18_state(2), "encoder.")}, tmp_path / "lightning.pth")
    report = convert(tmp_path / "lightning.pth", tmp_path / "out")
    assert report.heads.startswith("none (no known projector location")
    assert not (tmp_path / "out" / "heads.pth").exists() and not (tmp_path / "out" / "heads.json").exists()
    torch.save({"state_dict": {**_prefixed(_resnet18_state(), "backbone."), "neck.fc.weight": torch.randn(8, 512)}},
               tmp_path / "odd.pth")
    assert "unexpected key 'neck.mlp" not in convert(tmp_path / "odd.pth", tmp_path / "out2").heads
    assert convert(tmp_path / "odd.pth", tmp_path / "out2").heads == "none (no keys under 'neck.mlp.')"
