"""Embeddings cached on disk by (embedder name, LabeledTurn.content_hash()); training and eval
share it (any router.core.embedder.Embedder, identified by name).

A retrain only embeds turns it has not seen: the cache is a folder of .npz shards (keys +
float32 vectors) per embedder name; each run appends at most one shard. Shards are written to a
temporary name and renamed, so an interrupted run never leaves a half shard behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from router.core.embedder import Embedder
from router.core.manifest import EmbedderSpec

if TYPE_CHECKING:
    from training.data.logs import LabeledTurn

log = logging.getLogger(__name__)

# Outside the repo so a `git add` never picks it up and worktrees share one cache.
DEFAULT_CACHE_DIR = Path(os.environ.get("TIERWISE_CACHE", Path.home() / ".cache" / "tierwise"))


def served_cache_name(spec: EmbedderSpec, file_sha256: str | None) -> str:
    """Cache name of a bundle's serving embedder, from all that changes its vectors: name,
    quantization, max_length (one ONNX file serves any) and the file's sha256 (None: no file)."""
    tag = file_sha256[:16] if file_sha256 else "nofile"
    return f"bundle:{spec.name}:{spec.quantization}:{spec.max_length}:{tag}"


def _slug(name: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


class EmbedCache:
    """Embeddings of `embedder` (identified by `name`) for texts keyed by content hash."""

    def __init__(
        self,
        root: Path,
        embedder: Embedder,
        name: str,
        batch_size: int = 256,
        progress: bool = True,
        flush_every: int = 2048,
    ) -> None:
        self.dir = root / _slug(name)
        self.embedder = embedder
        self.name = name
        self.batch_size = batch_size
        self.progress = progress
        # Texts per shard written during one call; bounds the work lost to a crash mid-run.
        self.flush_every = flush_every
        self.embedded = 0  # texts actually sent to the embedder by this instance

    def _load(self) -> dict[str, NDArray[np.float32]]:
        vectors: dict[str, NDArray[np.float32]] = {}
        for shard in sorted(self.dir.glob("*.npz")):
            with np.load(shard, allow_pickle=False) as data:
                keys, vecs = data["keys"], data["vectors"]
                if vecs.shape[1] != self.embedder.dim:
                    log.warning(
                        "ignoring %s: dim %d != %d", shard, vecs.shape[1], self.embedder.dim
                    )
                    continue
                vectors.update(zip(keys.tolist(), vecs, strict=True))
        return vectors

    def _save(self, keys: list[str], vecs: NDArray[np.float32]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.dir / f"{uuid.uuid4().hex}.npz"
        tmp = final.with_suffix(".partial")
        with tmp.open("wb") as fh:
            np.savez(fh, keys=np.asarray(keys, dtype=str), vectors=vecs)
        tmp.replace(final)

    def _embed_batches(self, texts: list[str], bar: Any) -> NDArray[np.float32]:
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            chunks.append(np.asarray(self.embedder.embed(batch), dtype=np.float32))
            bar.update(len(batch))
        return np.vstack(chunks)

    def embed_texts(self, keys: Sequence[str], texts: Sequence[str]) -> NDArray[np.float32]:
        """(n, dim) float32 rows for `texts`; only keys missing from the cache are embedded."""
        cached = self._load()
        todo: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in cached:
                todo.setdefault(key, text)
        if todo:
            new_keys = list(todo)
            bar = tqdm(
                total=len(new_keys),
                desc=f"embed {self.name}",
                unit="text",
                disable=not self.progress,
            )
            with bar:
                for start in range(0, len(new_keys), self.flush_every):
                    part = new_keys[start : start + self.flush_every]
                    vecs = self._embed_batches([todo[k] for k in part], bar)
                    # One shard per flush_every texts: a crash loses at most one part.
                    self._save(part, vecs)
                    cached.update(zip(part, vecs, strict=True))
            self.embedded += len(new_keys)
        log.info("%s: %d cached, %d embedded", self.name, len(keys) - len(todo), len(todo))
        if not keys:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.vstack([cached[k] for k in keys]).astype(np.float32)

    def embed_turns(self, turns: Sequence[LabeledTurn]) -> NDArray[np.float32]:
        """(n, dim) embeddings of each labeled turn's routing text, in order."""
        return self.embed_texts([t.content_hash() for t in turns], [t.turn().text for t in turns])
