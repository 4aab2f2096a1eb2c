"""Turn -> (text to embed, structural features). Shared by serving and training so they agree.

The text is the turn that matters: the last user message, with tool results reduced to a short
head, because a 20k-token tool dump says little about how hard the next step is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from router.core.messages import content_chars
from router.core.schemas import ContentBlock, Message, RouteRequest

# Order matters: it is the column order appended after the embedding (manifest.features).
STRUCT_FEATURES: tuple[str, ...] = ("log_turns", "log_tokens", "has_tools", "tool_result_turn")
# Hand features of the routed text (hand_features): cheap signals MiniLM misses. Measured on
# real Claude outcomes (zeroeval): numbers and digits track GSM difficulty, code markers CRUX,
# LaTeX competition math. Order matters: the columns after STRUCT_FEATURES (manifest.hand_features).
HAND_FEATURES: tuple[str, ...] = (
    "log_chars",
    "log_words",
    "log_lines",
    "log_digits",
    "log_numbers",
    "digit_frac",
    "log_max_num",
    "latex",
    "dollar",
    "code",
    "python_call",
    "question_marks",
    "options",
)
# Characters of the routed text the hand features read: a 1 MB prompt must not cost the deadline
# (every training prompt so far is far shorter, so their features are unchanged by the cap).
HAND_MAX_CHARS = 32_768
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_OPTION = re.compile(r"^\([A-P]\)", flags=re.M)
_LATEX = ("\\frac", "\\sqrt", "\\cdot", "\\left", "\\pi", "^{", "_{", "\\")
_CODE = ("def ", "return", "assert", "==", "for ", "while ", "lambda")
# Characters kept from each tool result; enough to see the error or the shape of the data.
TOOL_RESULT_HEAD_CHARS = 200
# Rough Claude tokenizer ratio for English; good enough for pricing and a length feature.
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class Turn:
    text: str
    n_turns: int
    approx_tokens: int
    has_tools: bool
    tool_result_turn: bool

    def structure(self) -> list[float]:
        return [
            math.log1p(self.n_turns),
            math.log1p(self.approx_tokens),
            float(self.has_tools),
            float(self.tool_result_turn),
        ]


def _block_text(block: ContentBlock | dict[str, Any]) -> str:
    data = block.model_dump() if isinstance(block, ContentBlock) else block
    kind = data.get("type")
    if kind == "text":
        return str(data.get("text") or "")
    if kind == "tool_result":
        inner = data.get("content")
        if isinstance(inner, list):
            inner = " ".join(str(b.get("text", "")) for b in inner if isinstance(b, dict))
        inner = str(inner or "")
        head = inner[:TOOL_RESULT_HEAD_CHARS]
        more = f" [+{len(inner) - len(head)} chars]" if len(inner) > len(head) else ""
        return f"[tool_result] {head}{more}"
    if kind == "tool_use":
        return f"[tool_use {data.get('name') or ''}]"
    if kind in ("image", "document"):
        return f"[{kind}]"
    return ""


def _message_text(content: str | list[ContentBlock]) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(t for t in (_block_text(b) for b in content) if t)


def _is_tool_result_turn(message: Message) -> bool:
    return isinstance(message.content, list) and any(
        b.type == "tool_result" for b in message.content
    )


def extract_turn(request: RouteRequest) -> Turn:
    """Reduce a request to the text to embed plus structure; never fails on a valid request."""
    if request.prompt is not None:
        chars = len(request.prompt) + content_chars(request.system)
        return Turn(
            text=request.prompt,
            n_turns=1,
            approx_tokens=int(chars / CHARS_PER_TOKEN),
            has_tools=bool(request.tools),
            tool_result_turn=False,
        )
    messages = request.messages
    assert messages, "a RouteRequest has a prompt or non-empty messages"
    last = messages[-1]  # the one message built: history is only counted (router.core.messages)
    text = _message_text(last.content)
    chars = content_chars(request.system) + messages.content_chars
    chars += sum(len(str(t)) for t in request.tools or [])
    return Turn(
        text=text,
        n_turns=messages.user_turns,
        approx_tokens=int(chars / CHARS_PER_TOKEN),
        has_tools=bool(request.tools),
        tool_result_turn=_is_tool_result_turn(last),
    )


def structure_matrix(turns: Iterable[Turn]) -> NDArray[np.float32]:
    """(n, len(STRUCT_FEATURES)) float32, columns in STRUCT_FEATURES order."""
    rows = [t.structure() for t in turns]
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(STRUCT_FEATURES))


def hand_features(text: str) -> list[float]:
    """The HAND_FEATURES of one routed text (its first HAND_MAX_CHARS characters), in order.
    Serving (ModelBundle.features) and training both call this one function."""
    text = text[:HAND_MAX_CHARS]
    numbers = _NUMBER.findall(text)
    digits = sum(ch.isdigit() for ch in text)
    largest = max((abs(float(x)) for x in numbers), default=0.0)
    return [
        math.log1p(len(text)),
        math.log1p(len(text.split())),
        math.log1p(text.count("\n")),
        math.log1p(digits),
        math.log1p(len(numbers)),
        digits / max(len(text), 1),
        math.log1p(min(largest, 1e12)),
        math.log1p(sum(text.count(s) for s in _LATEX)),
        math.log1p(text.count("$")),
        math.log1p(sum(text.count(s) for s in _CODE)),
        math.log1p(text.count("f(")),
        math.log1p(text.count("?")),
        math.log1p(len(_OPTION.findall(text))),
    ]


def hand_matrix(turns: Iterable[Turn]) -> NDArray[np.float32]:
    """(n, len(HAND_FEATURES)) float32 of each turn's text, columns in HAND_FEATURES order."""
    rows = [hand_features(t.text) for t in turns]
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(HAND_FEATURES))


def feature_matrix(
    embeddings: NDArray[np.float32], turns: Sequence[Turn], hand: bool
) -> NDArray[np.float32]:
    """A bundle's input layout, the one place it is built: each turn's embedding, then
    STRUCT_FEATURES, then HAND_FEATURES when the bundle has them (manifest.hand_features).
    Serving (ModelBundle.features), training and eval's peers all call this."""
    blocks = [embeddings, structure_matrix(turns)]
    if hand:
        blocks.append(hand_matrix(turns))
    return np.hstack(blocks).astype(np.float32)
