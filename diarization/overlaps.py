"""Overlapped speech in a list of segments: where it is, and a one-speaker-at-a-time view.

Pure functions on `Segment`s (seconds), no I/O. The reference `segments` list keeps
overlaps as they are (two speakers' segments may cover the same time); captioning
wants one speaker at a time, and analysis wants to know where speech overlaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from diarization.schema import Overlap, Segment


def _regions(segments: Sequence[Segment]) -> list[tuple[float, float, list[Segment]]]:
    """Elementary stretches between consecutive segment boundaries, with the segments
    covering each (stretches covered by no segment are left out). One sweep in time.
    """
    ordered = sorted(segments, key=lambda s: s.start)
    bounds = sorted({t for s in segments for t in (s.start, s.stop)})
    regions: list[tuple[float, float, list[Segment]]] = []
    active: list[Segment] = []
    following = 0
    for start, stop in pairwise(bounds):
        while following < len(ordered) and ordered[following].start <= start:
            active.append(ordered[following])
            following += 1
        # boundaries are segment ends, so a segment either covers [start, stop] or ended
        active = [s for s in active if s.stop >= stop]
        if active:
            regions.append((start, stop, list(active)))
    return regions


def find_overlaps(segments: Sequence[Segment]) -> list[Overlap]:
    """Every stretch where at least two speakers' segments cover the same time.

    Adjacent stretches with the same set of speakers are joined.
    """
    found: list[Overlap] = []
    for start, stop, covering in _regions(segments):
        speakers = tuple(sorted({s.speaker for s in covering}, key=lambda x: (len(x), x)))
        if len(speakers) < 2:
            continue
        if found and found[-1].stop == start and found[-1].speakers == speakers:
            found[-1] = Overlap(found[-1].start, stop, speakers)
        else:
            found.append(Overlap(start, stop, speakers))
    return found


def exclusive_segments(segments: Sequence[Segment]) -> list[Segment]:
    """One speaker at a time: each overlapped stretch goes to one of its speakers.

    The stretch goes to the speaker whose covering segment is the longest (the one
    holding the floor; the shorter one is usually a backchannel or an interruption),
    ties going to the segment that started first. Touching pieces of the same
    speaker are joined. Nothing outside the input segments is ever covered.
    """
    pieces: list[Segment] = []
    for start, stop, covering in _regions(segments):
        owner = max(covering, key=lambda s: (s.stop - s.start, -s.start))
        if pieces and pieces[-1].speaker == owner.speaker and pieces[-1].stop == start:
            pieces[-1] = Segment(owner.speaker, pieces[-1].start, stop)
        else:
            pieces.append(Segment(owner.speaker, start, stop))
    return pieces
