"""Where a JSON text's structure is, found on the bytes with numpy: no parsing, no recursion.

A few vector passes find the quotes, backslashes and brackets; everything after works on those
positions only. The strict-JSON gate measures nesting with it (`json_depth`), and the gateway
finds the top-level "model" value it rewrites in the caller's bytes (`top_level_string`).
Exact for valid JSON; on invalid JSON the answers mean nothing, and the parser refuses it anyway.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

QUOTE, BACKSLASH, OPEN, CLOSE = 0x22, 0x5C, 0x7B, 0x7D  # "[" and "]" fold into "{" and "}"
# Texts are scanned in slices of about this many bytes, so a 32 MB gateway body needs a few MB
# of scratch memory, not ten times its size.
SLICE_BYTES = 1 << 20
_NOT_BACKSLASH = re.compile(rb"[^\\]")
# Below this many bytes top_level_string decodes with the stdlib's C scanner instead of numpy.
SMALL_TEXT = 32 * 1024
# The stdlib's C string and value scanners (typeshed does not declare the first, and types the
# second's argument oddly).
_SCAN_STRING: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_SCAN_VALUE: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_WHITESPACE = b" \t\n\r"
_NO_POSITIONS: NDArray[np.int64] = np.empty(0, dtype=np.int64)
_NO_KINDS: NDArray[np.uint8] = np.empty(0, dtype=np.uint8)


@dataclass(frozen=True)
class Slice:
    """The structural characters of one slice of the text, in order."""

    positions: NDArray[np.int64]  # byte offsets in the whole text
    kinds: NDArray[np.uint8]  # QUOTE (a real one: not escaped), OPEN or CLOSE (outside strings)
    depths: NDArray[np.int64]  # nesting depth just after each


def _slice_end(text: bytes, start: int) -> int:
    """Where the slice from `start` ends: never inside a run of backslashes or between one and
    the character it escapes, so no escape spans two slices."""
    end = start + SLICE_BYTES
    if end >= len(text) or text[end - 1] != BACKSLASH:
        return min(end, len(text))
    after = _NOT_BACKSLASH.search(text, end)
    return len(text) if after is None else after.end()


def _escaped(where: NDArray[np.intp], slash: NDArray[np.bool_]) -> NDArray[np.intp]:
    """Indexes into `where` of the characters an odd run of backslashes ends just before (they
    are escaped); worked out on the backslashes alone, which are few."""
    backslashes = where[slash]
    ends = np.append(np.flatnonzero(np.diff(backslashes) != 1), len(backslashes) - 1)
    starts = np.insert(ends[:-1] + 1, 0, 0)
    after_odd_runs = backslashes[ends[(ends - starts) % 2 == 0]] + 1
    index = np.searchsorted(where, after_odd_runs)
    index = index[index < len(where)]
    escaped: NDArray[np.intp] = index[where[index] == after_odd_runs[: len(index)]]
    return escaped


def scan(text: bytes, depth_only: bool = False) -> Iterator[Slice]:
    """The real quotes and the brackets outside strings, slice by slice, with their depth (with
    `depth_only`, each slice's deepest point alone: positions and kinds come back empty)."""
    depth = quotes_before = 0
    start = 0
    while start < len(text):
        end = _slice_end(text, start)
        raw = np.frombuffer(text, dtype=np.uint8, count=end - start, offset=start)
        folded = raw | 0x20  # quotes and backslashes keep their value
        special = (raw == QUOTE) | (raw == BACKSLASH) | (folded == OPEN) | (folded == CLOSE)
        where = np.flatnonzero(special)
        offset, start = start, end
        if not len(where):
            continue
        kinds = folded[where]
        quote = kinds == QUOTE
        slash = kinds == (BACKSLASH | 0x20)
        if slash.any():
            quote[_escaped(where, slash)] = False
        inside = (np.cumsum(quote, dtype=np.int64) + quotes_before) & 1  # at a bracket
        quotes_before += int(np.count_nonzero(quote))
        opening, closing = kinds == OPEN, kinds == CLOSE
        bracket = (opening | closing) & (inside == 0)
        steps = opening.view(np.int8) - closing.view(np.int8)
        steps[~bracket] = 0
        depths = np.cumsum(steps, dtype=np.int64) + depth
        depth = int(depths[-1])
        if depth_only:
            yield Slice(_NO_POSITIONS, _NO_KINDS, depths.max(keepdims=True))
            continue
        keep = quote | bracket
        if keep.any():
            yield Slice(where[keep].astype(np.int64) + offset, kinds[keep], depths[keep])


def json_depth(text: bytes) -> int:
    """Deepest array/object nesting in `text`, ignoring brackets inside strings."""
    return max((int(s.depths.max()) for s in scan(text, depth_only=True)), default=0)


def top_level_string(text: bytes, key: str) -> tuple[int, int] | None:
    """(start, end) byte offsets of the top-level member `key`'s value, quotes included, when the
    text is an object holding that key exactly once (spelled plainly, past SMALL_TEXT bytes) with
    a string value; otherwise None (the caller then works on the parsed value instead)."""
    if len(text) < SMALL_TEXT:
        return _top_level_string_small(text, key)
    # Quotes at depth 1 pair up: every string directly in the top-level object opens and closes
    # there, keys and values alike.
    quotes = [int(p) for s in scan(text) for p in s.positions[(s.kinds == QUOTE) & (s.depths == 1)]]
    spelled = f'"{key}"'.encode()
    values = []
    for opening, closing in zip(quotes[::2], quotes[1::2], strict=False):
        if text[opening : closing + 1] == spelled:
            colon = _skip_whitespace(text, closing + 1)
            if colon < len(text) and text[colon] == ord(":"):  # a key, not a value reading "model"
                values.append(_skip_whitespace(text, colon + 1))
    if len(values) != 1 or values[0] >= len(text) or text[values[0]] != QUOTE:
        return None
    start = values[0]
    closing_quotes = [p for p in quotes if p > start]
    return (start, closing_quotes[0] + 1) if closing_quotes else None


def _top_level_string_small(text: bytes, key: str) -> tuple[int, int] | None:
    """top_level_string by the stdlib's C scanner, member by member: for a small text, numpy's
    per-call overhead costs more than decoding every value."""
    doc = text.decode()
    found: list[tuple[int, int, Any]] = []
    at = _skip(doc, 0)
    if doc[at : at + 1] != "{":
        return None
    at = _skip(doc, at + 1)
    try:
        while doc[at : at + 1] == '"':
            name, at = _SCAN_STRING(doc, at + 1)
            at = _skip(doc, at)
            if doc[at : at + 1] != ":":
                return None
            start = _skip(doc, at + 1)
            value, at = _SCAN_VALUE(doc, start)
            if name == key:
                found.append((start, at, value))
            at = _skip(doc, at)
            if doc[at : at + 1] != ",":
                break
            at = _skip(doc, at + 1)
    except (StopIteration, ValueError):
        return None
    if len(found) != 1 or not isinstance(found[0][2], str):
        return None
    start, end, _ = found[0]
    return len(doc[:start].encode()), len(doc[:end].encode())


def _skip(doc: str, at: int) -> int:
    while at < len(doc) and doc[at] in " \t\n\r":
        at += 1
    return at


def _skip_whitespace(text: bytes, at: int) -> int:
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    return at
