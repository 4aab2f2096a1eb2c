"""The HEADS registry: every entry builds a head that fits and exports, and its names are what
the CLI and TrainConfig accept."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from training.cli import train as train_cmd
from training.config import TrainConfig
from training.head_types import DEFAULT_HEADS, HEADS
from training.onnx_heads import heads_to_onnx


@pytest.mark.parametrize("name", [n for n, h in HEADS.items() if not h.stacked])
def test_every_per_tier_head_type_fits_and_exports(name: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=120) > 0).astype(np.int64)
    head = HEADS[name].build(0).fit(x, y)
    assert heads_to_onnx([head], ["haiku"], x.shape[1]).graph.output[0].name == "probabilities"


def test_cli_choices_and_help_come_from_the_registry() -> None:
    help_text = CliRunner().invoke(train_cmd, ["--help"]).output
    assert all(name in help_text for name in HEADS)
    result = CliRunner().invoke(train_cmd, ["--logs", __file__, "--head", "svm"])
    assert result.exit_code != 0 and "'svm' is not one of" in result.output


def test_train_config_takes_registered_heads_only() -> None:
    assert TrainConfig(logs=(__file__,)).heads == DEFAULT_HEADS  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unknown head 'svm'; expected one of"):
        TrainConfig(logs=(__file__,), heads=("svm",))  # type: ignore[arg-type]


def test_stacked_types_train_alone_and_serve_with_the_utility_policy() -> None:
    assert DEFAULT_HEADS == ("stack4",)
    assert HEADS["stack4"].policy == "utility" and HEADS["logreg_c0.001"].policy == "threshold"
    assert HEADS["stack4"].blocks == ("embedding", "side", "tiers")
    assert HEADS["stack2"].blocks == ("embedding", "side")
    with pytest.raises(ValidationError, match="stacked head type \\(stack4\\) is trained alone"):
        TrainConfig(logs=(__file__,), heads=("stack4", "mlp"))  # type: ignore[arg-type]
