from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.fakes import FakeEmbedder
from tests.training.conftest import CountingEmbedder, synthetic_turns
from training.data.embed_cache import EmbedCache


def test_retrain_only_embeds_new_turns(tmp_path: Path) -> None:
    turns = synthetic_turns(30)
    first = CountingEmbedder()
    a = EmbedCache(tmp_path, first, "fake", batch_size=8, progress=False).embed_turns(turns[:20])
    assert first.texts == 20 and first.calls == 3  # batches of 8, 8, 4

    second = CountingEmbedder()  # a new process: only the disk cache carries over
    b = EmbedCache(tmp_path, second, "fake", batch_size=8, progress=False).embed_turns(turns)
    assert second.texts == 10
    assert np.array_equal(a, b[:20])
    assert np.allclose(b, FakeEmbedder().embed([t.turn().text for t in turns]))

    third = CountingEmbedder()
    EmbedCache(tmp_path, third, "fake", progress=False).embed_turns(list(reversed(turns)))
    assert third.texts == 0


def test_cache_is_per_embedder_name(tmp_path: Path) -> None:
    turns = synthetic_turns(5)
    EmbedCache(tmp_path, CountingEmbedder(), "fake-a", progress=False).embed_turns(turns)
    other = CountingEmbedder()
    EmbedCache(tmp_path, other, "fake-b", progress=False).embed_turns(turns)
    assert other.texts == 5


def test_empty_input_and_duplicate_texts(tmp_path: Path) -> None:
    emb = CountingEmbedder()
    cache = EmbedCache(tmp_path, emb, "fake", progress=False)
    assert cache.embed_texts([], []).shape == (0, emb.dim)
    out = cache.embed_texts(["k1", "k1", "k2"], ["same", "same", "other"])
    assert out.shape == (3, emb.dim) and emb.texts == 2
    assert not list(tmp_path.rglob("*.partial"))


def test_long_runs_are_flushed_in_shards(tmp_path: Path) -> None:
    turns = synthetic_turns(25)
    cache = EmbedCache(
        tmp_path, CountingEmbedder(), "fake", batch_size=4, progress=False, flush_every=10
    )
    cache.embed_turns(turns)
    assert len(list(tmp_path.rglob("*.npz"))) == 3  # 10 + 10 + 5
    again = CountingEmbedder()
    EmbedCache(tmp_path, again, "fake", progress=False).embed_turns(turns)
    assert again.texts == 0
