"""Plain-text tables whose columns fit their widest cell (console output)."""
from __future__ import annotations

from typing import Sequence


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> str:
    """``header`` and ``rows`` as aligned columns, two spaces apart; columns whose index is
    in ``right`` are right-aligned (numbers)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(len(cells[0]))]
    lines = []
    for r in cells:
        parts = [(c.rjust(w) if i in right else c.ljust(w)) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)
