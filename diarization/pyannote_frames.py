"""pyannote's frame-level steps between the two models, as array operations.

Between the segmentation and the embeddings, and after the clustering, pyannote turns
window scores into decisions, windows into one timeline and the timeline into an
annotation, each with a Python loop over windows or frames (over a second per step on
an hour of audio, and gigabytes of temporaries on four hours). Here each is the same
function on arrays, with the same result (tests compare them with pyannote's); inputs
they do not cover go to pyannote's own.
"""

from __future__ import annotations

import functools

import numpy as np
from pyannote.audio.core.inference import Inference
from pyannote.audio.utils.signal import Binarize, binarize
from pyannote.core import Annotation, Segment, SlidingWindow, SlidingWindowFeature
from pyannote.core import segment as segment_module
from pyannote.core.utils.generators import string_generator

#: Windows binarized at a time (see `binarize_in_blocks`).
BINARIZE_BLOCK_WINDOWS = 2048
#: Windows aggregated at a time (see `aggregate_whole_numbers`).
AGGREGATE_BLOCK_WINDOWS = 2048


def binarize_in_blocks(scores, onset=0.5, offset=None, initial_state=None):
    """pyannote's `binarize` of (window, frame, speaker) scores: the same values, faster
    and in half the memory.

    pyannote builds a Python list of every row's well-defined frame indices (1.0 s
    on 1 hour, and 1.5 GB of temporaries on 4 hours); here `_hysteresis` finds each
    frame's state with array operations, over blocks of `BINARIZE_BLOCK_WINDOWS`
    windows. The 0.0 and 1.0 are float32 where pyannote's are float64 (0.6 GB on 4
    hours, alive to the end of the pipeline). Anything but 3-d scores and a single
    initial state goes to pyannote's.
    """
    data = getattr(scores, "data", None)
    if data is None or data.ndim != 3 or not isinstance(initial_state, bool | None):
        return binarize(scores, onset=onset, offset=offset, initial_state=initial_state)
    # 0.0 or 1.0, shaped as the scores
    binarized = np.empty(data.shape, dtype=np.float32)
    for i in range(0, len(data), BINARIZE_BLOCK_WINDOWS):
        block = data[i : i + BINARIZE_BLOCK_WINDOWS].transpose(0, 2, 1)
        state = _hysteresis(block, onset, offset, initial_state)
        binarized[i : i + BINARIZE_BLOCK_WINDOWS] = state.transpose(0, 2, 1)
    return SlidingWindowFeature(binarized, scores.sliding_window)


def _hysteresis(scores: np.ndarray, onset: float, offset: float | None, initial_state):
    """pyannote's `binarize_ndarray` along the last axis (frames): a frame is on when
    the last frame at or before it with a score above `onset` or below `offset` is
    above `onset`; before any such frame, the initial state (None: the first score
    against the mean of the two thresholds)."""
    offset = offset or onset  # as pyannote reads it
    scores = np.nan_to_num(scores)
    if initial_state is None:
        initial = scores[..., 0] >= 0.5 * (onset + offset)
    else:
        initial = np.full(scores.shape[:-1], initial_state)
    return _switched_state(scores, onset, offset, initial)


def _switched_state(scores: np.ndarray, onset: float, offset: float, initial: np.ndarray):
    """(..., num_frames) each frame's state along the last axis: switched on above
    `onset`, off below `offset`, else (NaN too) the state of the frame before; before
    any switch, `initial` (shaped as the scores without their last axis)."""
    on = scores > onset
    defined = (scores < offset) | on
    if defined.all():  # each frame is its own last defined frame (the usual case: 1 h
        return on  # of segmentation scores 0.13 -> 0.02 s on 2 cores)
    # (..., num_frames) the last defined frame at or before each frame, else -1
    last = np.maximum.accumulate(np.where(defined, np.arange(scores.shape[-1]), -1), axis=-1)
    state = np.take_along_axis(on, np.maximum(last, 0), axis=-1)
    return np.where(last >= 0, state, initial[..., None])


def aggregate_whole_numbers(
    scores: SlidingWindowFeature, frames, missing: float = np.nan, skip_average: bool = False
) -> SlidingWindowFeature:
    """pyannote's `Inference.aggregate(scores, frames, hamming=False, missing=missing,
    skip_average=skip_average)` (the overlap-add of windows' frame scores into one
    timeline) with array operations, for whole-number scores (0, 1, counts, NaN): the
    two aggregations of a diarization (7200 windows, 1 hour: 0.26 s -> 0.08 s each on 2
    cores). pyannote adds the windows one at a time in Python; here `np.bincount` adds
    `AGGREGATE_BLOCK_WINDOWS` at a time. Sums of whole numbers do not depend on their
    order, so the result is the same; other scores go to pyannote's. Unlike pyannote's,
    the scores' NaN are left as they are."""
    data = scores.data
    num_chunks, per_chunk, num_classes = data.shape
    pyannotes = functools.partial(
        Inference.aggregate,
        scores,
        frames,
        hamming=False,
        missing=missing,
        skip_average=skip_average,
    )
    if num_chunks == 0:
        return pyannotes()
    chunks = scores.sliding_window
    frames = SlidingWindow(start=chunks.start, duration=frames.duration, step=frames.step)
    num_frames = (
        frames.closest_frame(
            chunks.start + chunks.duration + (num_chunks - 1) * chunks.step + 0.5 * frames.duration
        )
        + 1
    )
    starts = _first_frames(chunks, frames, num_chunks)
    # (per_chunk * num_classes,) where a window's values land after its first frame's
    offsets = (np.arange(per_chunk)[:, None] * num_classes + np.arange(num_classes)).ravel()
    # sums and counts of values per (frame, class), exact in float64
    total = np.zeros(num_frames * num_classes)
    count = np.zeros(num_frames * num_classes)
    for first in range(0, num_chunks, AGGREGATE_BLOCK_WINDOWS):
        rows = slice(first, first + AGGREGATE_BLOCK_WINDOWS)
        valid = ~np.isnan(data[rows].ravel())
        values = np.where(valid, data[rows].ravel(), 0)
        if np.any(values != np.round(values)):
            return pyannotes()
        index = (starts[rows, None] * num_classes + offsets).ravel()
        total += np.bincount(index, weights=values, minlength=len(total))
        count += np.bincount(index, weights=valid, minlength=len(count))
    total = total.reshape(num_frames, num_classes).astype(np.float32)
    count = count.reshape(num_frames, num_classes).astype(np.float32)
    average = total if skip_average else total / np.maximum(count, 1e-12)
    average[count == 0] = missing
    return SlidingWindowFeature(average, frames)


def _first_frames(chunks: SlidingWindow, frames: SlidingWindow, num_chunks: int) -> np.ndarray:
    """(num_chunks,) the frame of `frames` each window of `chunks` starts at, as
    pyannote's aggregation finds it (`frames.closest_frame(chunks[c].start + 0.5 *
    frames.duration)`), with the same float64 operations in the same order on all the
    windows at once (a Python call per window took 0.08 s of each aggregation of 1 hour)."""
    half = 0.5 * frames.duration
    starts = chunks.start + np.arange(num_chunks) * chunks.step
    return np.rint((starts + half - frames.start - half) / frames.step).astype(np.int64)


class FastBinarize(Binarize):
    """pyannote's `Binarize` (scores to an annotation of active regions) with its loop
    over frames as array operations: the same regions, the same annotation (the
    annotation stage of 1 hour: 0.81 s -> 0.25 s on 2 cores). pyannote builds a
    `Segment` per frame for its timestamps and walks every frame of every speaker in
    Python, then fills the gaps shorter than `min_duration_off` with
    `Annotation.support`, a Python loop over every region; here the gaps are filled on
    the regions' arrays, with the same comparisons and the same track names. Anything
    its loop does not reduce to a frame's last defined state (an onset below the offset,
    fewer than two frames, padded regions, repeated labels, rounded segment times) goes
    to pyannote's."""

    def __call__(self, scores: SlidingWindowFeature) -> Annotation:
        num_frames, num_classes = scores.data.shape
        labels = list(range(num_classes)) if scores.labels is None else list(scores.labels)
        if (
            num_frames < 2
            or self.onset < self.offset
            or self.pad_onset
            or self.pad_offset
            or len(set(labels)) < len(labels)
            or segment_module.AUTO_ROUND_TIME
        ):
            return super().__call__(scores)
        window = scores.sliding_window
        # each frame's middle, computed as pyannote's `window[i].middle`
        starts = window.start + np.arange(num_frames) * window.step
        timestamps = 0.5 * (starts + (starts + window.duration))
        # label: (starts, ends) of its regions, in time order
        regions = {}
        for k, k_scores in enumerate(scores.data.T):
            # pyannote's loop keeps a frame's state through NaN; before any switch, off
            state = _switched_state(k_scores, self.onset, self.offset, np.array(False))
            state = np.concatenate([[False], state, [False]])
            # (regions, 2) first active frame, first inactive frame after it
            edges = np.flatnonzero(state[1:] != state[:-1]).reshape(-1, 2)
            # a region still active at the end ends on the last frame
            region_starts = timestamps[edges[:, 0]]
            region_ends = timestamps[np.minimum(edges[:, 1], num_frames - 1)]
            # what an annotation keeps: segments longer than pyannote's precision
            kept = region_ends - region_starts > segment_module.SEGMENT_PRECISION
            regions[k] = (region_starts[kept], region_ends[kept])
        active = Annotation()
        if self.min_duration_off > 0.0:
            # pyannote's `active.support(collar=min_duration_off)`: per label (in the
            # order of `Annotation.labels`), gaps filled, tracks named by one generator
            names = string_generator()
            present = [k for k in regions if len(regions[k][0])]
            for k in sorted(present, key=lambda k: str(labels[k])):
                region_starts, region_ends = _gaps_filled(*regions[k], self.min_duration_off)
                for start, end in zip(region_starts.tolist(), region_ends.tolist(), strict=True):
                    active[Segment(start, end), next(names)] = labels[k]
        else:
            for k, (region_starts, region_ends) in regions.items():
                for start, end in zip(region_starts.tolist(), region_ends.tolist(), strict=True):
                    active[Segment(start, end), k] = labels[k]
        if self.min_duration_on > 0:
            for segment, track in list(active.itertracks()):
                if segment.duration < self.min_duration_on:
                    del active[segment, track]
        return active


def _gaps_filled(
    starts: np.ndarray, ends: np.ndarray, collar: float
) -> tuple[np.ndarray, np.ndarray]:
    """pyannote's `Timeline.support(collar)` of sorted, disjoint, non-empty segments:
    each one joins the one before when the gap between them is not a segment (at most
    `SEGMENT_PRECISION`) or shorter than `collar`; a joined run spans from its first
    start to its last end."""
    gaps = starts[1:] - ends[:-1]
    joined = (gaps <= segment_module.SEGMENT_PRECISION) | (gaps < collar)
    first = np.concatenate([[True], ~joined])
    last = np.concatenate([~joined, [True]])
    return starts[first], ends[last]
