from pathlib import Path

import pytest
from pydantic import ValidationError

from router.core.tiers import Tier, parse_tier
from router.errors import UnknownTierError
from router.settings import Settings


def test_defaults_come_from_tiers_file() -> None:
    s = Settings()
    assert s.tiers[Tier.HAIKU].input_per_mtok == 1.0
    assert s.tiers[Tier.OPUS].output_per_mtok == 25.0
    assert s.prices.cache_read_multiplier == 0.1


def test_env_overrides_one_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_TIERS__OPUS__MODEL", "claude-opus-test")
    monkeypatch.setenv("ROUTER_PRICING__BATCH_MULTIPLIER", "0.4")
    s = Settings()
    assert s.tiers[Tier.OPUS].model == "claude-opus-test"
    assert s.tiers[Tier.OPUS].input_per_mtok == 5.0
    assert s.prices.batch_multiplier == 0.4


def test_tiers_file_missing_a_tier(tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text(
        "[pricing]\ncache_write_multiplier=1\ncache_read_multiplier=1\nbatch_multiplier=1\n"
        '[tiers.haiku]\nmodel="h"\ninput_per_mtok=1\noutput_per_mtok=1\n'
    )
    with pytest.raises(ValidationError, match=r"tiers: missing \['sonnet', 'opus'\]"):
        Settings(tiers_file=path)


def test_unknown_tier_message_lists_choices() -> None:
    with pytest.raises(UnknownTierError, match=r"'gpt'.*haiku.*sonnet.*opus"):
        parse_tier("gpt", "min_tier")
    assert parse_tier(" Opus ") is Tier.OPUS
