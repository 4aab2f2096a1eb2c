import pytest

from router.core.loop_quality import LoopQuality
from router.core.tiers import Tier

H, S, O = Tier.HAIKU, Tier.SONNET, Tier.OPUS


def test_a_head_with_no_loop_seen_weighs_its_own_quality() -> None:
    head = {H: 0.1, S: 0.6, O: 0.4}
    assert LoopQuality().at_head(head) == head


def test_a_head_weighs_the_mean_over_the_loop_turns_and_itself() -> None:
    loop = LoopQuality().add({H: 0.1, S: 0.3, O: 0.5}).add({H: 0.2, S: 0.2, O: 0.4})
    assert loop.turns == 2 and loop.sums == pytest.approx((0.3, 0.5, 0.9))
    weighed = loop.at_head({H: 0.0, S: 0.7, O: 0.2})
    assert weighed == pytest.approx({H: 0.1, S: 0.4, O: 0.3666667})
    # A compaction head the router rates Sonnet-friendly no longer outweighs the loop's Opus edge.
    assert weighed[O] < weighed[S]
    long = LoopQuality(60, (6.0, 16.0, 24.0)).at_head({H: 0.0, S: 0.7, O: 0.2})
    assert long[O] > long[S]
