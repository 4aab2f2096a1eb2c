"""The `model` of a Messages body the gateway forwards: refused at once when it is no model id."""

from __future__ import annotations

import unicodedata
from typing import Any

from router.errors import BadRequestError

# Longer is no model id; refusing it also bounds the work of checking it.
MAX_MODEL_CHARS = 256


def check_model(body: dict[str, Any]) -> None:
    """A string `model` must be a plausible model id: printable, at most MAX_MODEL_CHARS.
    Anything else is refused before it goes upstream (where it would be billed, and its echo
    in x-tierwise-model could not be sent). Non-string models are the upstream's to refuse."""
    model = body.get("model")
    if not isinstance(model, str):
        return
    if len(model) > MAX_MODEL_CHARS:
        raise BadRequestError(
            f"model: {len(model)} characters; model ids are at most {MAX_MODEL_CHARS}"
        )
    bad = next((ch for ch in model if not ch.isprintable()), None)
    if bad is not None:
        kind = "control" if unicodedata.category(bad) == "Cc" else "non-printable"
        raise BadRequestError(
            f"model: {model!r} holds the {kind} character U+{ord(bad):04X}; "
            "model ids are printable text"
        )
