"""Overlaps and the one-speaker-at-a-time view: exact tables and invariants."""

from __future__ import annotations

import numpy as np
import pytest

from diarization.overlaps import exclusive_segments, find_overlaps
from diarization.schema import Overlap
from diarization.schema import Segment as S

CASES = [
    # (segments, overlaps, exclusive)
    ([], [], []),
    ([S("A", 0, 2), S("B", 3, 5)], [], [S("A", 0, 2), S("B", 3, 5)]),
    # touching segments of one speaker are joined in the exclusive view
    ([S("A", 0, 2), S("A", 2, 4)], [], [S("A", 0, 4)]),
    # a backchannel inside a long turn: the long turn keeps the floor
    ([S("A", 0, 10), S("B", 4, 6)], [Overlap(4, 6, ("A", "B"))], [S("A", 0, 10)]),
    # an interruption: the overlap goes to the longer segment (B)
    ([S("A", 0, 3), S("B", 2, 8)], [Overlap(2, 3, ("A", "B"))], [S("A", 0, 2), S("B", 2, 8)]),
    # equal lengths: the segment that started first keeps the overlap
    ([S("A", 0, 4), S("B", 2, 6)], [Overlap(2, 4, ("A", "B"))], [S("A", 0, 4), S("B", 4, 6)]),
    # three speakers at once, then two
    (
        [S("A", 0, 10), S("B", 2, 6), S("C", 4, 8)],
        [Overlap(2, 4, ("A", "B")), Overlap(4, 6, ("A", "B", "C")), Overlap(6, 8, ("A", "C"))],
        [S("A", 0, 10)],
    ),
    # labels past Z sort after single letters
    ([S("AA", 0, 5), S("B", 1, 2)], [Overlap(1, 2, ("B", "AA"))], [S("AA", 0, 5)]),
]


@pytest.mark.parametrize(("segments", "overlaps", "exclusive"), CASES)
def test_overlaps_and_exclusive_view(segments, overlaps, exclusive):
    assert find_overlaps(segments) == overlaps
    assert exclusive_segments(segments) == exclusive


def covered(segments, t):
    return {s.speaker for s in segments if s.start <= t < s.stop}


@pytest.mark.parametrize("seed", range(50))
def test_invariants_on_random_segments(seed):
    rng = np.random.default_rng(seed)
    segments = []
    for _ in range(rng.integers(1, 15)):
        start = float(rng.integers(0, 100)) / 4
        segments.append(S(str(rng.choice(["A", "B", "C"])), start, start + rng.integers(1, 20) / 4))
    exclusive = exclusive_segments(segments)
    overlaps = find_overlaps(segments)
    ordered = sorted(exclusive, key=lambda s: s.start)
    assert ordered == exclusive
    for a, b in zip(exclusive, exclusive[1:], strict=False):
        assert a.stop <= b.start  # one speaker at a time
    # probe every quarter second (all boundaries are multiples of 0.25): the exclusive
    # view covers exactly the speech, with a speaker who talks there; overlaps exactly
    # the times with two or more speakers
    for t in np.arange(0, 35, 0.125):
        speaking = covered(segments, t)
        owners = covered(exclusive, t)
        assert len(owners) == (1 if speaking else 0) and owners <= speaking
        in_overlap = [o for o in overlaps if o.start <= t < o.stop]
        assert len(in_overlap) == (1 if len(speaking) >= 2 else 0)
        if in_overlap:
            assert set(in_overlap[0].speakers) == speaking
