"""How rows are assigned to the train / validation / test splits (used by prepare.py).

Every function works on integer class ids and returns, per row, the index of its split:
0 train, 1 validation, 2 test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["SPLIT_NAMES", "assign_splits"]

#: The splits by index: :func:`assign_splits` gives each row the position of its split here.
SPLIT_NAMES = ("train", "val", "test")


def assign_splits(
    labels: np.ndarray,
    fractions: np.ndarray,
    *,
    seed: int,
    stratify: bool = True,
    groups: np.ndarray | None = None,
    keep_in_train: Sequence[int] = (),
) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of every row.

    Args:
        labels: Class id of every row.
        fractions: Shares of (train, val, test), summing to 1.
        seed: Seed of the shuffles.
        stratify: Split each class on its own (within one image of its share).
        groups: Group of every row; a group is never split (overrides the rest).
        keep_in_train: Class ids that go wholly to train (stratified only).

    Example:
        >>> assign_splits(np.array([0] * 8 + [1] * 2), np.array([0.8, 0.0, 0.2]), seed=0)
        array([0, 2, 0, 0, 0, 0, 0, 2, 0, 0])
    """
    rng = np.random.default_rng(seed)
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    if groups is not None:
        return _assign_groups(labels, groups, fractions, rng, n_classes, stratify)
    if not stratify:
        order = rng.permutation(len(labels))
        bounds = np.cumsum(_targets(len(labels), fractions))
        assignment = np.zeros(len(labels), dtype=np.int64)
        assignment[order[bounds[0] : bounds[1]]] = 1
        assignment[order[bounds[1] :]] = 2
        return assignment
    assignment = np.zeros(len(labels), dtype=np.int64)
    index = np.flatnonzero(~np.isin(labels, list(keep_in_train)))
    if len(index):
        _, dense = np.unique(labels[index], return_inverse=True)
        assignment[index] = _assign_stratified(dense, fractions, rng, int(dense.max()) + 1)
    return assignment


def _round_shares(shares: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Round a classes x splits matrix of shares to integers.

    Every entry becomes the floor or the ceiling of its share (so it is within one image
    of it), each row keeps its (integer) sum, and the column sums come as close to
    ``targets`` as those two rules allow.
    """
    floors = np.floor(shares + 1e-9).astype(np.int64)
    fracs = np.clip(shares - floors, 0.0, None)
    remaining = np.rint(shares.sum(axis=1)).astype(np.int64) - floors.sum(axis=1)
    counts = floors.copy()
    last = shares.shape[1] - 1
    for j in range(last):
        need = int(targets[j] - floors[:, j].sum())
        # A row must not leave more ups than there are columns left to take them.
        forced = [i for i in range(len(shares)) if remaining[i] >= last - j + 1]
        optional = [i for i in range(len(shares)) if 0 < remaining[i] < last - j + 1]
        optional.sort(key=lambda i: (-round(fracs[i, j], 9), -remaining[i], i))
        for i in forced + optional[: max(0, need - len(forced))]:
            counts[i, j] += 1
            remaining[i] -= 1
    counts[:, -1] += remaining
    _repair_columns(counts, floors, fracs, targets)
    return counts


def _repair_columns(
    counts: np.ndarray, floors: np.ndarray, fracs: np.ndarray, targets: np.ndarray
) -> None:
    """Move rounded-up images between columns until every column sum meets its target.

    The greedy pass in :func:`_round_shares` can hand a row's only extra image to an early
    column that another row could have served, leaving a later column one short (classes
    of 3, 3 and 85 images split 0.6365/0.3135/0.05). Each fix is a shortest chain of moves
    "row r gives its extra image in column a to column b" from a column over its target to
    one under it; every entry stays the floor or the ceiling of its share and every row
    keeps its sum. Rows whose share in the receiving column is not whole are preferred, so
    entries stay within one image of their share wherever the table allows it.
    """
    columns = counts.shape[1]
    for strict in (True, False):
        while True:
            surplus = [c for c in range(columns) if counts[:, c].sum() > targets[c]]
            deficit = {c for c in range(columns) if counts[:, c].sum() < targets[c]}
            if not surplus or not deficit:
                return
            # Breadth-first search over columns; an edge a -> b is a row that can move
            # its extra image from a to b.
            previous: dict[int, tuple[int, int]] = {}
            frontier, seen, end = list(surplus), set(surplus), None
            while frontier and end is None:
                following = []
                for a in frontier:
                    for b in range(columns):
                        if b in seen:
                            continue
                        movable = (counts[:, a] > floors[:, a]) & (counts[:, b] == floors[:, b])
                        if strict:
                            movable &= fracs[:, b] > 1e-9
                        rows = np.flatnonzero(movable)
                        if len(rows):
                            previous[b] = (a, int(rows[0]))
                            seen.add(b)
                            following.append(b)
                            if b in deficit:
                                end = b
                                break
                    if end is not None:
                        break
                frontier = following
            if end is None:
                break
            b = end
            while b in previous:
                a, row = previous[b]
                counts[row, a] -= 1
                counts[row, b] += 1
                b = a


def _targets(n: int, fractions: np.ndarray) -> np.ndarray:
    """Rows per split (train, val, test) for n rows: test and validation rounded.

    Where both shares end in .5 and both round up, train would fall below its share's floor
    (30 rows at 0.6/0.15/0.25 would give 17/5/8); validation is then rounded together with
    test instead (``round(n * (val + test share))`` minus test: 18/4/8), so every split is
    the floor or the ceiling of its share.
    """
    test = round(n * float(fractions[2]))
    val = round(n * float(fractions[1]))
    if n - test - val < math.floor(n * float(fractions[0]) + 1e-9):
        val = round(n * float(fractions[1] + fractions[2])) - test
    return np.array([n - test - val, val, test], dtype=np.int64)


def _assign_stratified(
    labels: np.ndarray, fractions: np.ndarray, rng: np.random.Generator, n_classes: int
) -> np.ndarray:
    """Split index per row; every class is split on its own by largest-remainder rounding."""
    assignment = np.zeros(len(labels), dtype=np.int64)
    sizes = np.bincount(labels, minlength=n_classes)
    shares = sizes[:, None] * fractions[None, :]
    # Round test, then validation; train (the largest) absorbs the remainders.
    counts = _round_shares(shares[:, ::-1], _targets(len(labels), fractions)[::-1])[:, ::-1]
    for c in range(n_classes):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        start = 0
        for s in range(len(fractions)):
            assignment[members[start : start + counts[c, s]]] = s
            start += counts[c, s]
    return assignment


def _assign_groups(
    labels: np.ndarray,
    groups: np.ndarray,
    fractions: np.ndarray,
    rng: np.random.Generator,
    n_classes: int,
    stratify: bool,
) -> np.ndarray:
    """Split index per row, keeping each group whole; greedy on per-class targets."""
    unique, inverse = np.unique(groups, return_inverse=True)
    n_groups = len(unique)
    histogram = np.zeros((n_groups, n_classes), dtype=np.float64)
    np.add.at(histogram, (inverse, labels), 1.0)
    if not stratify:
        histogram = histogram.sum(axis=1, keepdims=True)
    targets = histogram.sum(axis=0)[None, :] * fractions[:, None]
    filled = np.zeros_like(targets)
    order = rng.permutation(n_groups)
    order = order[np.argsort(-histogram[order].sum(axis=1), kind="stable")]
    group_split = np.zeros(n_groups, dtype=np.int64)
    for g in order:
        h = histogram[g][None, :]
        # Increase of the squared distance to the targets if g goes to each split.
        cost = ((filled + h - targets) ** 2 - (filled - targets) ** 2).sum(axis=1)
        split = int(np.argmin(cost))
        group_split[g] = split
        filled[split] += histogram[g]
    return group_split[inverse]
