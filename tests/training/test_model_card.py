from __future__ import annotations

from tests.training.conftest import FakeBundleEmbedder
from training.config import TrainConfig
from training.model_card import write_model_card
from training.train import train


def test_model_card_names_stand_ins_and_metrics(fast_cfg: TrainConfig) -> None:
    result = train(fast_cfg, FakeBundleEmbedder())
    stand_ins = {"haiku": "small-model", "sonnet": "mid-model", "opus": "big-model"}
    text = write_model_card(result.bundle_dir, stand_ins).read_text()
    assert "| haiku | small-model | $1.0/MTok input, $5.0/MTok output |" in text
    assert "stand-ins" in text and result.manifest.training["data_hash"] in text
    for policy in ("router", "always_cheap", "always_top", "random_at_mix", "length_at_mix"):
        assert f"| {policy} (" in text
    assert "| int8 ONNX embedder (shipped) |" in text and "| fp32 ONNX embedder |" in text
    m = result.manifest
    assert f"{m.policy} policy at {m.knob:.4g}" in text
