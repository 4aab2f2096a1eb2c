from __future__ import annotations

import numpy as np
import pytest

from router.core.tier_mix import length_at_mix, mix_counts, random_at_mix, tier_mix


@pytest.mark.parametrize("n", [1, 7, 100])
def test_mix_baselines_keep_the_mix(n: int) -> None:
    mix = (0.5, 0.3, 0.2)
    counts = mix_counts(mix, n)
    assert counts.sum() == n
    assert np.bincount(random_at_mix(mix, n, seed=1), minlength=3).tolist() == counts.tolist()
    lengths = np.arange(n, 0, -1).astype(float)  # longest first
    chosen = length_at_mix(lengths, mix)
    assert np.bincount(chosen, minlength=3).tolist() == counts.tolist()
    assert chosen[0] == chosen.max() and chosen[-1] == chosen.min()


def test_tier_mix_is_the_share_per_tier() -> None:
    assert tier_mix(np.array([0, 0, 2, 1]), 3) == (0.5, 0.25, 0.25)
    assert tier_mix(np.array([], dtype=np.int64), 3) == (0.0, 0.0, 0.0)
