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
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) or action.dest == "help":
                continue
            assert action.help, f"{parser.prog}: {action.option_strings or action.dest} has no help"
        text = parser.format_help()
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS) \
                    and action.dest != "help":
                assert "default" in (action.help or "") or f"(default: {action.default})" in " ".join(text.split()), \
                    f"{parser.prog}: {action.option_strings} does not show its default"


@pytest.mark.parametrize("args", [["run", "--method", "mocov2", "--seed", "-1", "--dry-run"],
                                  ["check", "--baseline", "x.yaml", "--seed", "-2"],
                                  ["data", "synth", "--out", "x", "--seed", "-1"]])
def test_negative_seeds_are_refused(args: list[str]) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and "non-negative" in err.getvalue()
