from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

import harness.data.synthetic.build as gen
from harness.data.synthetic import MANIFEST, generate


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def test_same_seed_gives_identical_tree_serial_or_parallel(synth_root: Path, tmp_path: Path) -> None:
    # the cached root was generated with worker processes; this one runs in-process
    again = generate(tmp_path / "again", seed=0, size="tiny", workers=1)
    assert tree_hash(again) == tree_hash(synth_root)
    assert len(list(synth_root.rglob("*.jpg"))) > 100


def test_different_seed_gives_different_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    gen.run_job("coco", a, 0, "tiny", 0.85)
    gen.run_job("coco", b, 1, "tiny", 0.85)
    assert tree_hash(a) != tree_hash(b)


def test_ensure_generates_once_under_concurrency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_generate(out: Path, seed: int, size: str, bias: float | None = None) -> Path:
        calls.append(out)
        (out / "data.txt").write_text(f"{seed} {size}")
        threading.Event().wait(0.3)  # hold the lock while the other callers arrive
        (out / MANIFEST).write_text("{}")
        return out

    monkeypatch.setattr(gen, "generate", fake_generate)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(gen.ensure(tmp_path, 3, "tiny"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(set(results)) == 1 and results[0] == tmp_path / f"{gen.GENERATOR_VERSION}-tiny-s3"
    assert (results[0] / "data.txt").read_text() == "3 tiny"
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [results[0].name]


def test_ensure_cleans_up_after_a_failed_generation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(out: Path, seed: int, size: str, bias: float | None = None) -> Path:
        (out / "partial.txt").write_text("x")
        raise RuntimeError("disk full")

    monkeypatch.setattr(gen, "generate", broken)
    with pytest.raises(RuntimeError):
        gen.ensure(tmp_path, 0, "tiny")
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_unknown_size_is_a_config_error(tmp_path: Path) -> None:
    from harness.core.errors import ConfigError

    with pytest.raises(ConfigError, match="huge"):
        generate(tmp_path, size="huge")


def test_synth_main_prints_the_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    def fake_generate(out: Path, seed: int, size: str) -> Path:
        out.mkdir(parents=True)
        (out / MANIFEST).write_text('{"generator": "g", "bias": 0.85, "counts": {"coco/train2017 images": 16}}')
        return out

    monkeypatch.setattr(gen, "generate", fake_generate)
    assert gen.synth_main(tmp_path / "out", 0, "tiny") == tmp_path / "out"
    out = capsys.readouterr().out
    assert "coco/train2017 images" in out and "16" in out
