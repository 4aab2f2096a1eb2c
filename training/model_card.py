"""models/<version>/README.md rendered from manifest.json: data, tier stand-ins, held-out metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from router.core.bundle import read_manifest
from router.core.manifest import Manifest

POLICIES = ("router", "always_cheap", "always_top", "random_at_mix", "length_at_mix", "oracle")
POLICY_NOTES = {
    "router": "this model at the default threshold",
    "always_cheap": "every turn to haiku",
    "always_top": "every turn to opus (the reference)",
    "random_at_mix": "random tiers, same tier mix as the router",
    "length_at_mix": "longer prompt -> higher tier, same mix",
    "oracle": "true cheapest adequate tier (upper bound)",
}
EMBEDDER_LABELS = {
    "int8": "int8 ONNX embedder (shipped)",
    "fp32": "fp32 ONNX embedder",
    "sklearn_st_fp32": "sentence-transformers fp32 + sklearn heads (training path)",
}


def _routing_table(routing: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| policy | tier accuracy | quality (mean score) | quality vs always-top | "
        "cost saved vs always-top | mix haiku/sonnet/opus |",
        "|---|---|---|---|---|---|",
    ]
    for name in POLICIES:
        o = routing.get(name)
        if o is None:
            continue
        mix = "/".join(f"{o['tier_mix'][t]:.2f}" for t in ("haiku", "sonnet", "opus"))
        lines.append(
            f"| {name} ({POLICY_NOTES[name]}) | {o['tier_accuracy']:.3f} | {o['quality']:.3f} | "
            f"{o['quality_share']:.3f} | {o['cost_saved']:.3f} | {mix} |"
        )
    return lines


def _embedder_table(routing: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    lines = [
        "| embedder at serve time | tier accuracy | quality vs always-top | cost saved |",
        "|---|---|---|---|",
    ]
    for key, label in EMBEDDER_LABELS.items():
        if key in routing:
            r = routing[key]["router"]
            lines.append(
                f"| {label} | {r['tier_accuracy']:.3f} | {r['quality_share']:.3f} | "
                f"{r['cost_saved']:.3f} |"
            )
    return lines


def _reading_notes(routing: dict[str, dict[str, Any]]) -> str:
    r, rnd, length = routing["router"], routing["random_at_mix"], routing["length_at_mix"]
    return (
        f"Reading it: at the same tier mix, the router keeps "
        f"{r['quality_share'] - rnd['quality_share']:+.3f} of always-top quality over random "
        f"routing and {r['quality_share'] - length['quality_share']:+.3f} over the length "
        f"heuristic (which saves only {length['cost_saved']:.1%}, as it sends the longest, "
        f"priciest prompts up); it saves {r['cost_saved']:.1%} of always-top cost at "
        f"{r['quality_share']:.1%} of its quality. Tier accuracy is a weak guide: always-cheap "
        f"scores well on it because haiku is the most common true tier, at a large quality loss."
    )


def render_model_card(m: Manifest, files: dict[str, int], stand_ins: dict[str, str]) -> str:
    metrics = m.metrics
    routing = metrics["routing"]
    shipped = m.embedder.quantization
    heads = metrics["heads"]
    held = metrics["heldout_heads"]
    prices = metrics.get("prices_input_per_mtok", {})
    # Bundles trained before costs counted output tokens have input prices only.
    output_prices = metrics.get("prices_output_per_mtok")
    train = m.training
    curve = "\n".join(f"| {p.knob:.4g} | {p.quality:.3f} | {p.cost:.3f} |" for p in m.curve)
    stand_in_rows = "\n".join(
        f"| {tier} | {model} | ${prices.get(tier, float('nan'))}/MTok input"
        + (f", ${output_prices.get(tier, float('nan'))}/MTok output |" if output_prices else " |")
        for tier, model in stand_ins.items()
    )
    cost_rule = (
        f"cost = prompt tokens x input price + {metrics['output_tokens']} output tokens x output "
        "price"
        if output_prices
        else "cost = tier input price x prompt tokens"
    )
    head_rows = "\n".join(
        f"| {tier} | {h['chosen']} | {h['n_train']} | {held[tier].get('auc', float('nan')):.3f} | "
        f"{held[tier].get('brier', float('nan')):.3f} | {held[tier]['positive_rate']:.3f} |"
        for tier, h in heads.items()
    )
    size_mb = sum(files.values()) / 1e6
    return f"""# {m.version}

Default tierwise router bundle: picks the cheapest Claude tier (haiku < sonnet < opus) whose
predicted P(adequate) clears the threshold. Built by `scripts/build_default_model`.

## What the labels are (read this first)

There are no public per-prompt results for Claude models with ground truth, so **the tiers are
stand-ins**: the labels say whether *these* models answered an MMLU-Pro question correctly, and
the router learns which questions need a stronger model. Haiku/Sonnet/Opus never answered these
questions.

| tier | stand-in model (MMLU-Pro ground truth) | price used for cost |
|---|---|---|
{stand_in_rows}

- Data: MMLU-Pro (TIGER-AI-Lab, Apache-2.0), {train.get("n_records")} de-duplicated questions,
  14 subjects; prompt = question + lettered options. Score = 1 if the stand-in's extracted answer
  equals the gold answer. A few questions lack a result for some model (partial labels): each
  tier's head trains on the rows that have its label.
- Split: seeded (seed {train.get("seed")}) stratified held-out {train.get("holdout_fraction")}:
  {metrics["n_train"]} train / {metrics["n_heldout"]} held-out turns;
  routing metrics use the {metrics["n_heldout_routing"]} held-out turns labeled for all 3 tiers.
- Training data hash: `{train.get("data_hash")}`
- Embedder: {m.embedder.name}, max {m.embedder.max_length} tokens, served as **{shipped}** ONNX;
  heads trained on sentence-transformers fp32 embeddings + {len(m.features)} structure features
  ({", ".join(m.features)}).
- Heads (chosen per tier by {train.get("cv_folds", 3)}-fold CV log loss): `{m.classifier.head}`.
  sklearn {train.get("sklearn")}, skl2onnx {train.get("skl2onnx")}.
- Bundle size: {size_mb:.1f} MB.

## Held-out routing (shipped {shipped} embedder, {m.policy} policy at {m.knob:.4g})

The default threshold is the cheapest held-out operating point that keeps
{metrics["quality_target"]:.0%} of always-top quality. Quality = mean 0/1 score of the chosen
tier's stand-in; {cost_rule} (router/core/tiers.toml), relative to
always sending to opus. A turn no tier answers has opus as its "true" tier.

{chr(10).join(_routing_table(routing[shipped]))}

{_reading_notes(routing[shipped])}

## int8 vs fp32 embedder

Same classifier and threshold; only the ONNX embedder differs.

{chr(10).join(_embedder_table(routing))}

## Per-tier heads (held-out)

| tier | head | train rows | AUC | Brier | adequate rate |
|---|---|---|---|---|---|
{head_rows}

## Operating curve (held-out; `quality_target` picks from this)

| {m.policy} knob | quality vs always-top | cost vs always-top |
|---|---|---|
{curve}

## Limits

- MMLU-Pro is multiple-choice exam questions; real traffic (chat, code, agents, tool results)
  looks different. Retrain on labeled logs of your own traffic (`tierwise train`).
- Stand-in gaps are not Claude gaps: Gemini-1.5-Flash vs Pro differ less than Sonnet vs Opus
  may, so the sonnet/opus split is the least trustworthy part.
- Created {m.created_at}.
"""


def write_model_card(bundle_dir: Path, stand_ins: dict[str, str]) -> Path:
    manifest = read_manifest(bundle_dir)
    files = {name: (bundle_dir / name).stat().st_size for name in manifest.files}
    path = bundle_dir / "README.md"
    path.write_text(render_model_card(manifest, files, stand_ins))
    return path
