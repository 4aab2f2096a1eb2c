"""End to end: evaluate() on the fake bundle (real onnxruntime) with synthetic two-judge labels,
writing HTML/JSON/Markdown and logging to a real MLflow sqlite store in tmp_path."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from eval.evaluation import EvalConfig, EvalResult, embedding_cache, evaluate
from eval.peers import PEER_NAMES
from router.core.bundle import ModelBundle
from tests.fakes import FakeEmbedder, synthetic_labels, synthetic_texts
from training.data.embed_cache import served_cache_name
from training.data.logs import load_labeled, normalize_text

JUDGES = ("claude-sonnet-4-6", "claude-opus-4-6")
CATEGORIES = ("chat", "math", "code")


def synthetic_records(n: int, seed: int, prefix: str) -> list[dict[str, object]]:
    """Labeled turns whose tier k is adequate when difficulty <= k (10% noise), scored by two
    judges on a 1-10 scale that mostly agree; sonnet is unlabeled on every 7th turn."""
    texts, difficulty = synthetic_texts(n, seed)
    labels = synthetic_labels(difficulty, seed)
    rng = np.random.default_rng(seed)
    out = []
    for i, (text, row) in enumerate(zip(texts, labels, strict=True)):
        scores: dict[str, object] = {}
        for tier, ok in zip(("haiku", "sonnet", "opus"), row, strict=True):
            if tier == "sonnet" and i % 7 == 0:
                continue
            a = float(np.clip((8 if ok else 3) + rng.normal(0, 1.2), 1, 10))
            b = float(np.clip(a + rng.normal(0, 0.8), 1, 10))
            judges = {
                JUDGES[0]: {"score": a, "adequate": a >= 6},
                JUDGES[1]: {"score": b, "adequate": b >= 6},
            }
            scores[tier] = {
                "score": ((a + b) / 2 - 1) / 9,
                "source": "judge:sonnet+opus",
                "adequate": bool(ok),
                "judges": judges,
            }
        out.append(
            {
                "id": f"{prefix}:{i}",
                "request": {"prompt": f"{text} please" * (1 + int(difficulty[i]))},
                "scores": scores,
                "category": CATEGORIES[int(difficulty[i] + i) % 3],
                "source": "synthetic",
            }
        )
    return out


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def eval_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """(eval file, train file, how many eval turns training already holds)."""
    root = tmp_path_factory.mktemp("evaldata")
    train = synthetic_records(300, seed=1, prefix="train")
    held_out = synthetic_records(240, seed=2, prefix="eval")
    # Three training turns re-logged under new ids with different case and spacing.
    for k, rec in enumerate(train[:3]):
        copy = dict(rec, id=f"eval:copy{k}")
        copy["request"] = {"prompt": "  " + str(rec["request"]["prompt"]).upper() + " "}  # type: ignore[index]
        held_out.append(copy)
    eval_path = write_jsonl(root / "eval.jsonl", held_out)
    train_path = write_jsonl(root / "train.jsonl", train)
    train_texts = {normalize_text(t.turn().text) for t in load_labeled([train_path]).turns}
    unique_eval = load_labeled([eval_path]).turns
    overlap = sum(normalize_text(t.turn().text) in train_texts for t in unique_eval)
    return eval_path, train_path, overlap


@pytest.fixture(scope="module")
def result(
    eval_files: tuple[Path, Path, int],
    fake_bundle_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> EvalResult:
    root = tmp_path_factory.mktemp("evalrun")
    eval_path, train_path, _ = eval_files
    cfg = EvalConfig(
        model=fake_bundle_dir,
        data=(eval_path,),
        train_data=(train_path,),
        out=root / "reports",
        cache_dir=root / "cache",
        bootstrap=100,  # a fifth of the default: the same code, a fast suite
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
    )
    return evaluate(cfg, embedder=FakeEmbedder())


def test_drops_eval_turns_seen_in_training(
    result: EvalResult, eval_files: tuple[Path, Path, int]
) -> None:
    _, _, overlap = eval_files
    assert overlap >= 3
    assert result.dataset["overlap_removed"] == overlap
    assert result.metrics.n == result.dataset["n_loaded"] - overlap


def test_metrics_cover_router_peers_baselines_judges_and_partial_labels(
    result: EvalResult,
) -> None:
    m = result.metrics
    r = m.routing
    assert r is not None
    names = [c.name for c in r.curves]
    assert names == ["router", *PEER_NAMES, "random", "length", "coin", "oracle"]
    assert r.n_partial > 0  # sonnet unlabeled on every 7th turn: routed among haiku/opus
    assert r.n == m.n and r.n_unrouted == 0
    sonnet = m.tier_quality[1]
    assert sonnet.n == m.n - r.n_partial and m.tier_quality[0].n == m.n
    assert r.oracle.pgr >= 0.99  # the oracle is at least as good as always-top here
    assert r.curve("router").apgr > r.curve("random").apgr  # type: ignore[union-attr]
    pooled = r.comparison[0]
    assert pooled.name == "all" and pooled.n == r.n
    assert [s.name for s in r.comparison[1:]] == ["all tiers labeled", "chat", "code", "math"]
    # always-sonnet only where sonnet is labeled on every turn
    assert pooled.method("always_sonnet") is None
    assert r.comparison[1].method("always_sonnet") is not None
    assert set(m.peer_params) == set(PEER_NAMES) and set(m.peer_calibration) == set(PEER_NAMES)
    router = pooled.method("router")
    assert router is not None and router.apgr_ci is not None and router.router_minus_apgr is None
    for name in PEER_NAMES:
        peer = pooled.method(name)
        assert peer is not None and peer.router_minus_apgr is not None
    (agree,) = m.judges
    assert (agree.judge_a, agree.judge_b) == tuple(sorted(JUDGES))
    assert agree.n == sum(q.n for q in m.tier_quality)
    assert agree.pearson > 0.5 and agree.kappa > 0.3


def test_writes_self_contained_html_json_and_markdown(result: EvalResult) -> None:
    page = result.files.html.read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "http://" not in page and "https://" not in page and "<script" not in page
    summary = json.loads(result.files.json.read_text())
    assert summary["headline"]["router.apgr"] == pytest.approx(
        result.metrics.routing.curves[0].apgr  # type: ignore[union-attr]
    )
    assert summary["context"]["dataset"]["overlap_removed"] == result.dataset["overlap_removed"]
    md = result.files.markdown.read_text()
    assert md.splitlines()[4].startswith("**Winner on APGR: ")  # the verdict opens the report
    assert "Winner on APGR: " in page.split("<h2>")[0]


def test_every_peer_is_listed_in_html_markdown_and_json(result: EvalResult) -> None:
    from eval.tables import label

    page = result.files.html.read_text()
    md = result.files.markdown.read_text()
    summary = json.loads(result.files.json.read_text())
    pooled = summary["metrics"]["routing"]["comparison"][0]
    in_json = {m["name"] for m in pooled["methods"]}
    baselines = {"random", "length", "coin", "always_haiku", "always_opus", "oracle"}
    assert in_json == {"router", *PEER_NAMES, *baselines}
    for name in (*PEER_NAMES, *baselines):
        assert f"<td>{html.escape(label(name))}</td>" in page, name
        assert f"| {label(name)} |" in md, name
    for name in PEER_NAMES:
        assert summary["headline"][f"router_minus_{name}.apgr_low"] is not None
        assert name in summary["metrics"]["peer_params"]


def test_logs_metrics_and_report_artifacts_to_mlflow(result: EvalResult) -> None:
    from mlflow.tracking import MlflowClient

    assert result.run_id is not None and result.tracking_uri is not None
    client = MlflowClient(tracking_uri=result.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.metrics["router.apgr"] == pytest.approx(result.headline["router.apgr"])
    assert run.data.metrics["n_eval"] == result.metrics.n
    assert "knn.aiq" in run.data.metrics and "calibration.opus.ece" in run.data.metrics
    assert "router_minus_irt.apgr_high" in run.data.metrics
    assert "subset.math.router.saving" in run.data.metrics
    assert run.data.params["bootstrap"] == "100"
    names = {a.path for a in client.list_artifacts(result.run_id, "report")}
    assert names == {"report/report.html", "report/summary.json", "report/summary.md"}


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,2000",
)
# Injected into a copy of the page only: records each image's decoded size once loading ends.
PROBE = (
    "<script>addEventListener('load', () => document.body.setAttribute('data-images', "
    "[...document.images].map(i => i.naturalWidth + 'x' + i.naturalHeight).join(',')));</script>"
)


def chromium(*args: str, profile: Path) -> str:
    assert CHROMIUM is not None
    proc = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return proc.stdout


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (scripts/system-deps installs it)"
)
def test_report_renders_in_headless_chromium(result: EvalResult, tmp_path: Path) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text(result.files.html.read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium(
        "--virtual-time-budget=5000", "--dump-dom", probe.as_uri(), profile=tmp_path / "p1"
    )
    found = re.search(r'data-images="([^"]*)"', dom)
    assert found, "the load handler never ran"
    sizes = [tuple(int(v) for v in s.split("x")) for s in found.group(1).split(",")]
    assert len(sizes) == 4 and all(w > 100 and h > 100 for w, h in sizes), sizes

    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", result.files.html.as_uri(), profile=tmp_path / "p2")
    from PIL import Image

    with Image.open(shot) as im:
        small = im.convert("RGB").resize((64, 100))
    colors = small.getcolors(maxcolors=64 * 100)
    assert colors is not None and len(colors) > 50  # text, plots and cards, not a blank page


def test_embedding_cache_is_per_max_length(fake_bundle: ModelBundle, tmp_path: Path) -> None:
    """One ONNX file serves any max_length, so the peers' embedding cache must be keyed by it
    too (as training's is): otherwise a bundle reads vectors truncated at another length."""
    m = fake_bundle.manifest
    short = m.model_copy(update={"embedder": m.embedder.model_copy(update={"max_length": 128})})
    other = dataclasses.replace(fake_bundle, manifest=short)
    assert embedding_cache(fake_bundle, tmp_path).dir != embedding_cache(other, tmp_path).dir
    assert embedding_cache(fake_bundle, tmp_path).name == served_cache_name(
        m.embedder, m.files.get(m.embedder.file)
    )


class CountingEmbedder(FakeEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.texts += texts
        return super().embed(texts)


def test_each_turn_is_embedded_once(
    eval_files: tuple[Path, Path, int], fake_bundle_dir: Path, tmp_path: Path
) -> None:
    """Scoring and the peers share the eval turns' embeddings."""
    eval_path, train_path, _ = eval_files
    cfg = EvalConfig(
        model=fake_bundle_dir,
        data=(eval_path,),
        train_data=(train_path,),
        out=tmp_path / "reports",
        cache_dir=None,
        bootstrap=0,
        peers=("knn",),
        track=False,
    )
    embedder = CountingEmbedder()
    result = evaluate(cfg, embedder=embedder)
    assert result.metrics.routing is not None
    assert "knn" in [c.name for c in result.metrics.routing.curves]
    n_train = result.dataset["n_train"]
    assert len(embedder.texts) == result.dataset["n_eval"] + n_train
