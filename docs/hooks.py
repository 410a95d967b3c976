"""MkDocs hooks: the reference pages are generated from the code when the site is built
(the argument parser, the task catalog, the record dataclass), so they cannot drift."""
from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any


def _cli() -> str:
    from harness.cli import _all_parsers, build_parser

    out = []
    for parser in _all_parsers(build_parser()):
        out += [f"## `{parser.prog}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def _tasks() -> str:
    from harness.core import registry

    out = []
    for name, entry in sorted(registry.tasks().items()):
        out += [f"## `{name}`", "", entry.description or "", "",
                f"- version {entry.version}, framework {entry.framework}",
                f"- main metrics: {', '.join(entry.main_metrics) if entry.main_metrics else 'every metric it reports'}",
                f"- reads: `{entry.reads}`" if entry.reads is not None else "- reads: not declared",
                f"- catalog: `{entry.catalog_file.name}`" if entry.catalog_file else "- registered at run time"]
        for preset, cfg in sorted(entry.presets.items()):
            out.append(f"- preset `{preset}`: `{cfg}`")
        out.append("")
    return "\n".join(out)


def _comments(cls: type) -> dict[str, str]:
    """Trailing ``# comments`` of a dataclass's field lines."""
    out = {}
    for klass in reversed(cls.__mro__):
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for m in re.finditer(r"^\s+(\w+): [^=\n]+=[^#\n]*#\s*(.+)$", source, re.M):
            out[m.group(1)] = m.group(2).strip()
    return out


def _records() -> str:
    from harness.results.record_schema import KINDS, ROLES, STATUSES, Record

    notes = _comments(Record)
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(Record):
        kind = f.metadata.get("kind", "")
        if f.default is not dataclasses.MISSING:
            default = f"`{f.default!r}`"
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f"`{f.default_factory()!r}`"  # type: ignore[misc]
        else:
            default = "required"
        rows.append(f"| `{f.name}` | {kind.replace('?', ' or null')} | {default} | {notes.get(f.name, '')} |")
    allowed = {"kind": KINDS, "status": STATUSES, "role": ROLES}
    rows += ["", "Allowed values, checked when a record is read:", ""]
    rows += [f"- `{name}`: {', '.join(f'`{v}`' for v in values)}" for name, values in allowed.items()]
    return "\n".join(rows)


GENERATED = {"<!-- harness:cli -->": _cli, "<!-- harness:tasks -->": _tasks, "<!-- harness:records -->": _records}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    for marker, make in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown

