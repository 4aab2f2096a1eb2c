"""Seeded, stratified train/held-out splits and samples of labeled turns (`tierwise convert
--split/--limit`), so nobody hand-slices a file whose rows come one category at a time.

Stratum of a turn: source, category and label pattern (per tier in TIER_ORDER: 1 adequate, 0 not,
- unlabeled). Each source/category, then each stratum within it, gives its share of the held-out
part, whole turns allotted by largest remainder so the total is exact; strata too small to be
split in proportion are pooled per source/category. The same seed gives the same split on the
same records. `fold_ids` deals the same strata into K cross-validation folds (`tierwise cv`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from router.core.tiers import TIER_ORDER
from training.data.logs import DataError, LabeledTurn, normalize_text

# Score >= this counts as adequate in the stratification key when a record does not say
# (training's default adequacy threshold).
STRATUM_ADEQUACY = 0.5


def label_pattern(turn: LabeledTurn, adequacy: float = STRATUM_ADEQUACY) -> str:
    """'10-': haiku adequate, sonnet not, opus unlabeled."""
    return "".join(
        "-" if (s := turn.scores.get(tier)) is None else str(int(s.is_adequate(adequacy)))
        for tier in TIER_ORDER
    )


def strata(turns: Sequence[LabeledTurn], fraction: float) -> list[str]:
    """Stratum key per turn; label patterns with fewer than 1/min(fraction, 1 - fraction) turns
    in their source/category are pooled into "<source>|<category>|rare"."""
    group = [f"{t.source or '-'}|{t.category or '-'}" for t in turns]
    keys = [f"{g}|{label_pattern(t)}" for g, t in zip(group, turns, strict=True)]
    counts = Counter(keys)
    smallest = math.ceil(1 / min(fraction, 1 - fraction))
    return [k if counts[k] >= smallest else f"{g}|rare" for k, g in zip(keys, group, strict=True)]


def allot(sizes: Sequence[int], total: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """Whole counts per stratum proportional to `sizes`, summing to `total` (largest remainder,
    ties broken at random)."""
    sizes_arr = np.asarray(sizes, dtype=np.float64)
    quota = sizes_arr * total / sizes_arr.sum()
    counts = np.floor(quota).astype(np.int64)
    remainder = quota - counts
    order = np.lexsort((rng.random(len(sizes_arr)), -remainder))
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def stratified_pick(keys: Sequence[str], n_pick: int, seed: int) -> NDArray[np.int64]:
    """Sorted indices of `n_pick` rows: first each source/category (the key up to its last "|")
    gets its share, then each stratum within it, so every category is in proportion to within
    one row and its label patterns are too."""
    rng = np.random.default_rng(seed)
    rows: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, key in enumerate(keys):
        rows[key.rsplit("|", 1)[0]][key].append(i)
    groups = sorted(rows)
    sizes = [sum(len(r) for r in rows[g].values()) for g in groups]
    picked: list[NDArray[np.int64]] = [np.zeros(0, dtype=np.int64)]
    for group, quota in zip(groups, allot(sizes, n_pick, rng), strict=True):
        names = sorted(rows[group])
        counts = allot([len(rows[group][k]) for k in names], int(quota), rng)
        picked += [rng.permutation(rows[group][k])[:c] for k, c in zip(names, counts, strict=True)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def dedupe(turns: Sequence[LabeledTurn]) -> tuple[list[LabeledTurn], int]:
    """Turns unique by id and normalized text, first one wins (as load_labeled keeps them), and
    how many were dropped."""
    seen_ids: set[str] = set()
    seen_text: set[str] = set()
    kept = []
    for t in turns:
        text = normalize_text(t.turn().text)
        if t.id in seen_ids or text in seen_text:
            continue
        seen_ids.add(t.id)
        seen_text.add(text)
        kept.append(t)
    return kept, len(turns) - len(kept)


def split_turns(
    turns: Sequence[LabeledTurn], fraction: float, seed: int
) -> tuple[list[LabeledTurn], list[LabeledTurn]]:
    """(train, held-out): the held-out part is round(fraction * n) turns, stratified; both keep
    the input order."""
    if not 0 < fraction < 1:
        raise DataError(f"split fraction {fraction!r} must be between 0 and 1 (exclusive)")
    n_held = round(fraction * len(turns))
    if len(turns) < 2 or not 0 < n_held < len(turns):
        raise DataError(
            f"cannot split {len(turns)} turns with fraction {fraction}: each side needs a turn"
        )
    held = set(stratified_pick(strata(turns, fraction), n_held, seed).tolist())
    train = [t for i, t in enumerate(turns) if i not in held]
    return train, [t for i, t in enumerate(turns) if i in held]


def sample(turns: Sequence[LabeledTurn], n: int, seed: int) -> list[LabeledTurn]:
    """A seeded, stratified sample of `n` turns (all of them when n >= len), in input order."""
    if n >= len(turns):
        return list(turns)
    fraction = n / len(turns)
    picked = stratified_pick(strata(turns, fraction), n, seed)
    return [turns[i] for i in picked.tolist()]


def fold_ids(turns: Sequence[LabeledTurn], n_folds: int, seed: int) -> NDArray[np.int64]:
    """(n,) the fold, 0..n_folds-1, of each turn: each source/category's strata (as `strata`
    pools them for a 1/n_folds held-out part), each shuffled, are dealt round the folds in turn
    from a random start, so every fold holds each stratum and each source/category to within
    one turn, and every turn is in exactly one fold."""
    if n_folds < 2 or n_folds > len(turns):
        raise DataError(f"cannot deal {len(turns)} turns into {n_folds} folds: need 2..n folds")
    rng = np.random.default_rng(seed)
    keys = strata(turns, 1 / n_folds)
    rows: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, key in enumerate(keys):
        rows[key.rsplit("|", 1)[0]][key].append(i)
    order = [rng.permutation(rows[g][k]) for g in sorted(rows) for k in sorted(rows[g])]
    dealt = np.concatenate(order).astype(np.int64)
    out = np.empty(len(turns), dtype=np.int64)
    out[dealt] = (int(rng.integers(n_folds)) + np.arange(len(dealt))) % n_folds
    return out
