"""The command line explains itself: every option has help and shows its default, seeds
are non-negative, and `harness tables` without --out prints a summary."""
from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from harness.cli import _all_parsers, build_parser, main


def test_every_option_has_help_and_shows_its_default() -> None:
    for parser in _all_parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) or action.dest == "help":
                continue
            assert action.help, f"{parser.prog}: {action.option_strings or action.dest} has no help"
            if action.option_strings and not action.required and action.nargs != 0:
                assert "default" in formatter._get_help_string(action), \
                    f"{parser.prog}: {action.option_strings} does not say its default"


def test_a_zero_default_is_shown() -> None:
    text = " ".join(next(p for p in _all_parsers(build_parser()) if p.prog == "harness run").format_help().split())
    assert "non-negative integer) (default: 0)" in text


@pytest.mark.parametrize("args", [["run", "--method", "mocov2", "--seed", "-1", "--dry-run"],
                                  ["check", "--baseline", "x.yaml", "--seed", "-2"],
                                  ["data", "synth", "--out", "x", "--seed", "-1"],
                                  ["run", "--method", "mocov2", "--nproc-per-node", "0", "--dry-run"],
                                  ["run", "--method", "mocov2", "--launcher", "slurm", "--nodes", "0", "--dry-run"],
                                  ["data", "verify", "--data-root", "x", "--sample", "-3"]])
def test_negative_seeds_and_counts_are_refused(args: list[str]) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and ("non-negative" in err.getvalue() or "at least 1" in err.getvalue())


def test_a_negative_seed_set_by_override_is_refused() -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["run", "--method", "mocov2", "--set", "seed=-5", "--dry-run"])
    assert code == 2 and "seed -5" in err.getvalue()


def test_the_python_api_refuses_a_negative_seed(tmp_path) -> None:
    import harness
    from harness.core.errors import ConfigError

    ckpt = tmp_path / "backbone.pth"
    ckpt.write_bytes(b"")
    with pytest.raises(ConfigError, match="non-negative"):
        harness.evaluate(ckpt, suite="smoke", seed=-2, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("preset, floor", [("tiny", "harness compare random:tiny mocov2:tiny"),
                                           ("paper", "harness run --method random --suite all --preset paper")])
def test_the_next_commands_name_the_untrained_floor_of_the_runs_scale(tmp_path, preset: str, floor: str) -> None:
    from harness.run.summary import next_commands

    cfg = {"method": {"name": "mocov2"}, "suite": "all", "preset": preset}
    text = next_commands(tmp_path, cfg, preset if preset == "tiny" else "paper", task_records=3)
    assert floor in text and f"harness tables --records {tmp_path}" in text
