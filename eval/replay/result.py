"""What a replay is asked (ReplayConfig) and what it gives (ReplayResult): its own module so the
report, tables and verdict read results without importing the replay that writes them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from eval.replay.sources import Loaded
from eval.replay.strategies import SessionReplay
from eval.replay.summary import QUALITY_TARGET, Difficulty, GroupSummary, TargetCheck


class ReplayConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    paths: tuple[Path, ...] = Field(min_length=1)
    # None: write nothing (the caller only wants the numbers).
    out: Path | None = None
    # None: ROUTER_MODEL_DIR if it holds a bundle, else the repo's shipped models/ (DEFAULT).
    model_dir: Path | None = None
    # None: the one *tools.json next to OpenAI-format trajectories, if there is one.
    tools_file: Path | None = None
    # auto: each session's own TTL, from its recorded cache writes (1-hour or 5-minute); 5m for
    # sources without usage. 5m/1h: force one for every session.
    ttl: Literal["auto", "5m", "1h"] = "auto"
    # The bar for the target check and the headroom bound: share of always-Opus quality.
    quality_floor: float = Field(default=QUALITY_TARGET, gt=0, le=1)
    progress: bool = True  # a progress bar on stderr


@dataclass(frozen=True)
class ReplayResult:
    config: ReplayConfig
    bundle: str  # the routing bundle's version
    bundle_dir: Path
    loaded: Loaded
    replays: list[SessionReplay]
    groups: list[GroupSummary]
    target: TargetCheck | None
    difficulty: Difficulty | None
    seconds: float  # routing and pricing, reading excluded

    @property
    def calls(self) -> int:
        return sum(r.session.n_calls for r in self.replays)

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else float("inf")
