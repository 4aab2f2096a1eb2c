"""JSON Lines of a source file (transcripts, call-log exports): one JSON object per line; blank
lines are passed over and unreadable ones listed as `file:line: why`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def json_objects(
    lines: Iterable[str], where: str, warnings: list[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number from 1, object) of each line that holds a JSON object; every other
    non-blank line is skipped and appended to `warnings`."""
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError as exc:
            warnings.append(f"{where}:{lineno}: not JSON ({exc.msg}); line skipped")
            continue
        if not isinstance(entry, dict):
            warnings.append(f"{where}:{lineno}: not a JSON object; line skipped")
            continue
        yield lineno, entry
