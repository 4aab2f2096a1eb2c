"""The strict-JSON gate's fast path (numpy depth, orjson) accepts and refuses exactly what the
strict stdlib parse does, with the same values and messages; the byte scans are exact."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from router.errors import InvalidJsonError
from router.http import json_scan
from router.http.json_scan import json_depth, top_level_string
from router.http.middleware.strict_json import _parse_strictly, parse_json

EXAMPLES = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
tricky_text = st.text(max_size=20) | st.sampled_from(
    ['"', "\\", '\\"', "\\\\", "[[", "]}", "\\\\\\", "\ud83d\ude00", "\ud800", "model", "0" * 19]
)
leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text
)
value = st.recursive(
    leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(tricky_text, kids, max_size=4),
    max_leaves=40,
)
spellings = st.fixed_dictionaries(
    {"indent": st.sampled_from([None, 0, 2]), "ensure_ascii": st.booleans()}
)


def outcome(parse: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "ok", json.dumps(parse(body))  # dumps: tells 1 from 1.0 and -0.0 from 0.0
    except InvalidJsonError as exc:
        return "refused", str(exc)


def strictly(body: bytes) -> Any:
    return _parse_strictly(body, json_depth(body))


def depth_of(v: Any) -> int:
    if isinstance(v, list):
        return 1 + max(map(depth_of, v), default=0)
    if isinstance(v, dict):
        return 1 + max(map(depth_of, v.values()), default=0)
    return 0


@EXAMPLES
@given(v=value, spelling=spellings)
def test_fast_path_agrees_with_the_strict_parse_on_json(v: Any, spelling: dict[str, Any]) -> None:
    body = json.dumps(v, **spelling).encode("utf-8", "surrogatepass")
    assert outcome(parse_json, body) == outcome(strictly, body)
    assert json_depth(body) == depth_of(v)


@EXAMPLES
@given(
    raw=st.binary(max_size=80)
    | st.text(alphabet='[]{}"\\,:-+.0123456789eENaInfity \ud800\ufeff', max_size=50).map(
        lambda t: t.encode("utf-8", "surrogatepass")
    )
)
def test_fast_path_agrees_with_the_strict_parse_on_any_bytes(raw: bytes) -> None:
    assert outcome(parse_json, raw) == outcome(strictly, raw)


@pytest.mark.parametrize(
    "body",
    [
        b"[9223372036854775807]",  # the largest 64-bit integer: accepted
        b"[-9223372036854775808]",
        b"[9223372036854775808]",  # one more: refused (orjson alone would accept it)
        b"[18446744073709551616]",  # orjson alone would turn it into a float
        b'["12345678901234567890123"]',  # 19+ digits in a string are just text
        b"[0.12345678901234567890123]",
        b"[1e308, 1e309]",
    ],
)
def test_numbers_at_the_64_bit_edges(body: bytes) -> None:
    assert outcome(parse_json, body) == outcome(strictly, body)


@EXAMPLES
@given(v=value, slice_bytes=st.sampled_from([1, 2, 3, 7]))
def test_depth_is_exact_when_strings_and_escapes_cross_slices(v: Any, slice_bytes: int) -> None:
    body = json.dumps(v).encode("utf-8", "surrogatepass")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_scan, "SLICE_BYTES", slice_bytes)
        assert json_depth(body) == depth_of(v)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    obj=st.dictionaries(
        st.sampled_from(["model", "messages", "x", "model "]) | tricky_text, value, max_size=5
    ),
    spelling=spellings,
    small=st.booleans(),
)
def test_top_level_string_finds_the_member_to_rewrite(
    obj: dict[str, Any], spelling: dict[str, Any], small: bool
) -> None:
    text = json.dumps(obj, **spelling).encode("utf-8", "surrogatepass")
    assume(outcome(parse_json, text)[0] == "ok")  # the gateway only sees what the gate let in
    with pytest.MonkeyPatch.context() as patch:
        if not small:  # the numpy path, which long bodies take
            patch.setattr(json_scan, "SMALL_TEXT", 0)
        span = top_level_string(text, "model")
    if not isinstance(obj.get("model"), str):
        assert span is None
        return
    assert span is not None
    rewritten = text[: span[0]] + b'"NEW"' + text[span[1] :]
    assert json.loads(rewritten) == {**json.loads(text), "model": "NEW"}
