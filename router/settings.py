"""Service configuration: one Settings(BaseSettings), env prefix ROUTER_.

Tier -> model id and prices come from tiers.toml (or ROUTER_TIERS_FILE); any single value can be
overridden by env with `__` nesting, e.g. ROUTER_TIERS__HAIKU__INPUT_PER_MTOK=0.8.
"""

from __future__ import annotations

import json
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from router.core.tiers import DEFAULT_TIERS_FILE, TIER_ORDER, PricingSpec, Tier, TierSpec


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ROUTER_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    # A bundle folder (with manifest.json) or a folder of bundles with a DEFAULT file naming one.
    model_dir: Path = Path("models")
    tiers_file: Path = DEFAULT_TIERS_FILE
    tiers: dict[Tier, TierSpec] = Field(default_factory=dict)
    pricing: PricingSpec | None = None

    # A threshold-policy threshold for every request that sets no knob; None -> the bundle's
    # own policy and default knob from manifest.json.
    threshold: float | None = Field(default=None, ge=0, le=1)
    # Bodies above this are refused with 413 before parsing; 1 MB fits ~250k tokens of text.
    max_body_bytes: int = Field(default=1_000_000, gt=0)
    # One /route/batch call may hold this many turns; bounds memory and latency per call.
    max_batch: int = Field(default=256, gt=0)
    # Output tokens assumed when pricing a turn whose caller gave no max_tokens.
    expected_output_tokens: int = Field(default=500, ge=0)
    # onnxruntime intra-op threads per process; 1 keeps latency flat under concurrency on 2 cores.
    onnx_threads: int = Field(default=1, ge=1)
    # Scoring slower than this answers the fallback tier instead of making the caller wait.
    deadline_ms: float = Field(default=50.0, gt=0)
    # The effective deadline is at least this times a full 256-token turn's scoring time, as
    # measured when a bundle loads (router.core.warmup): with 2-4 requests scoring at once on 2
    # cores each takes 2-3x as long as alone. 0 keeps deadline_ms whatever the machine.
    deadline_floor_factor: float = Field(default=3.0, ge=0)
    # Tier answered when scoring fails or misses the deadline: the middle tier is the safe bet.
    fallback_tier: Tier = Tier.SONNET

    # Gateway (POST /v1/messages): where routed calls go. Read timeout is per chunk, so long
    # streams are fine; 600 s matches the Anthropic SDK's default for non-streaming calls.
    upstream_url: str = "https://api.anthropic.com"
    upstream_connect_timeout_s: float = Field(default=10.0, gt=0)
    upstream_read_timeout_s: float = Field(default=600.0, gt=0)
    # Gateway bodies carry base64 images and PDFs: Anthropic's own Messages limit is 32 MB.
    gateway_max_body_bytes: int = Field(default=32_000_000, gt=0)
    # Call log: a SQLite file path (or sqlite:///path) or postgresql://...; None disables it.
    calllog_url: str | None = None
    # Store only the request hash, never the prompt text, in the call log.
    redact_prompts: bool = False

    # Dollar value of a turn the chosen tier answers inadequately: the utility policy's knob V
    # (router.core.policy) for every request that sets none. None -> the bundle's default knob,
    # tuned to keep its quality target on held-out data. Threshold bundles' agent path prices
    # (1 - P(adequate)) x this as risk (unset: $0.10, redoing a 20k-token Opus turn).
    failed_turn_usd: float | None = Field(default=None, ge=0)
    # Session and run state: None keeps it in process memory (one process); sqlite:///var/state.db
    # shares it between the worker processes of one machine, redis://host:port/db between
    # machines. Several workers refuse to start without one (router.agent.stores).
    session_url: str | None = None
    # A session outlives its last call by Anthropic's prompt-cache TTL (5 min, refreshed on every
    # hit): after that the old model's cache is cold and there is nothing left to stay for.
    session_ttl_s: float = Field(default=300.0, gt=0)
    # Runs keep their budget and spend this long after their last call; agent runs rarely pause
    # for a day, and a forgotten run must not hold memory forever.
    run_ttl_s: float = Field(default=86_400.0, gt=0)
    # In-memory stores keep at most this many sessions (and as many runs); least recent go first.
    session_max_entries: int = Field(default=10_000, gt=0)
    # Redis calls on the routing path give up after this; below deadline_ms, so a slow Redis
    # means "no session state" (said in the reason) rather than a fallback decision.
    session_timeout_ms: float = Field(default=20.0, gt=0)
    # Budget step-down, as the spent share of a run's budget_usd: from the first, cap the tier at
    # sonnet; from the second, at haiku (the run can still finish its last few turns cheaply).
    budget_cap_sonnet_at: float = Field(default=0.80, ge=0, le=1)
    budget_cap_haiku_at: float = Field(default=0.95, ge=0, le=1)

    # Slow clients (docs/reliability.md). Headers must arrive within this of a connection opening
    # or a request's first byte (408 after; `tierwise serve` only, see router.http.protocol).
    header_timeout_s: float = Field(default=10.0, gt=0)
    # A body must arrive within this of its headers (408 after): a 32 MB gateway body needs
    # about 9 Mbit/s; agents send kilobytes.
    body_timeout_s: float = Field(default=30.0, gt=0)
    # Bodies being received at once per process (503 beyond): each may buffer up to its body
    # limit, and trickled bodies must not pile up.
    max_pending_bodies: int = Field(default=64, gt=0)

    # Reliability (docs/reliability.md). Scoring calls running at once, counting ones abandoned
    # past their deadline: a hung model then answers fallbacks instead of piling up threads.
    max_inflight_scoring: int = Field(default=16, gt=0)
    # A second bundle scored off the request path: decisions logged and counted, never returned.
    shadow_model_dir: Path | None = None
    # Seconds between checks of the models folder's DEFAULT pointer; when it changes to another
    # bundle, reload it (so every worker process follows `tierwise deploy`). 0 turns it off.
    reload_poll_s: float = Field(default=0.0, ge=0)
    # Bearer tokens for every route but /healthz, /readyz: comma-separated or a JSON list; empty
    # leaves them open. ROUTER_ADMIN_TOKENS guard /admin/* (empty: the caller tokens do).
    auth_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    admin_tokens: Annotated[tuple[SecretStr, ...], NoDecode] = ()

    @model_validator(mode="before")
    @classmethod
    def _load_tiers_file(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        path = Path(data.get("tiers_file") or DEFAULT_TIERS_FILE)
        try:
            base = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"tiers_file {str(path)!r} cannot be read: {exc}") from exc
        data = dict(data)
        data["tiers"] = _deep_merge(base.get("tiers", {}), dict(data.get("tiers") or {}))
        data["pricing"] = _deep_merge(base.get("pricing", {}), dict(data.get("pricing") or {}))
        return data

    @field_validator("auth_tokens", "admin_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        """Env gives one string: a JSON list or comma-separated tokens. Never raises on the
        content, so a token cannot end up in an error message; router.http.middleware.auth checks each one."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                return tuple(str(t).strip() for t in parsed)
        return tuple(t.strip() for t in text.split(",") if t.strip())

    @field_validator("tiers")
    @classmethod
    def _all_tiers_present(cls, tiers: dict[Tier, TierSpec]) -> dict[Tier, TierSpec]:
        missing = [t.value for t in TIER_ORDER if t not in tiers]
        if missing:
            raise ValueError(f"tiers: missing {missing}; every tier of {list(Tier)} needs a spec")
        return tiers

    @field_validator("calllog_url", "session_url")
    @classmethod
    def _off_means_none(cls, url: str | None) -> str | None:
        # scripts/serve turns the call log (and, for several workers, SQLite session state) on
        # by default; "" or "off" is how to turn it off.
        return None if url is None or url.strip().lower() in ("", "off") else url

    def tier_spec(self, tier: Tier) -> TierSpec:
        return self.tiers[tier]

    @property
    def prices(self) -> PricingSpec:
        assert self.pricing is not None  # always filled by _load_tiers_file
        return self.pricing


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
