"""From speech regions and per-window speaker scores to speaker turns.

Pure numpy, no models: where embedding windows go, how window scores become a
speaker per 10 ms frame (Viterbi smoothing), bridging of short same-speaker
pauses, cross-talk at speaker changes, and the conversion to `Turn`s.
All frame indices here are 10 ms frames (`FRAME_DURATION`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from diarization.schema import Turn

#: Seconds per frame: the mel hop of the speaker encoder (10 ms).
FRAME_DURATION = 0.01


def to_frame(seconds: float) -> int:
    """The 10 ms frame index nearest to a time in seconds."""
    return int(round(seconds / FRAME_DURATION))


def region_windows(
    regions: Sequence[tuple[float, float]], window: float, step: float, num_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Embedding windows inside speech regions, never across a pause.

    A region longer than `window` gets windows every `step` seconds plus one that
    ends with the region. A shorter region gets one window made of its own frames
    repeated until `window` is filled: padding with the surrounding silence would
    pull the embedding towards "quiet" (GE2E is loudness-sensitive), and padding
    with neighbouring speech would mix in another speaker.

    Args:
        regions: speech regions in seconds.
        window: window length in seconds.
        step: hop between windows in seconds.
        num_frames: frames in the audio (regions are clipped to it).

    Returns:
        indices: (num_windows, window_frames) frame indices of each window.
        spans: (num_windows, 2) start and end in seconds of the audio each covers.
    """
    size, hop = to_frame(window), max(1, to_frame(step))
    indices: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    for start, end in regions:
        first, last = to_frame(start), min(to_frame(end), num_frames)
        if last <= first:
            continue
        if last - first <= size:
            indices.append(np.resize(np.arange(first, last), size))
            spans.append((first * FRAME_DURATION, last * FRAME_DURATION))
            continue
        onsets = list(range(first, last - size + 1, hop))
        if onsets[-1] + size < last:
            onsets.append(last - size)
        for onset in onsets:
            indices.append(np.arange(onset, onset + size))
            spans.append((onset * FRAME_DURATION, (onset + size) * FRAME_DURATION))
    if not indices:
        return np.zeros((0, size), dtype=np.int64), np.zeros((0, 2))
    return np.stack(indices), np.array(spans)


def frame_scores(spans: np.ndarray, scores: np.ndarray, num_frames: int) -> np.ndarray:
    """Per-frame mean of the scores of the windows that cover each frame.

    Args:
        spans: (num_windows, 2) window bounds in seconds.
        scores: (num_windows, num_speakers).
        num_frames: frames in the audio.

    Returns:
        (num_frames, num_speakers); zero rows where no window covers the frame.
    """
    sums = np.zeros((num_frames + 1, scores.shape[1]))
    counts = np.zeros(num_frames + 1)
    first = np.clip(np.round(spans[:, 0] / FRAME_DURATION).astype(int), 0, num_frames)
    last = np.clip(np.round(spans[:, 1] / FRAME_DURATION).astype(int), 0, num_frames)
    # Each window adds its scores to frames [first, last): difference arrays.
    np.add.at(sums, first, scores)
    np.add.at(sums, last, -scores)
    np.add.at(counts, first, 1)
    np.add.at(counts, last, -1)
    totals = np.cumsum(sums[:-1], axis=0)
    coverage = np.cumsum(counts[:-1])
    return totals / np.maximum(coverage, 1)[:, None]


def viterbi(scores: np.ndarray, switch_penalty: float) -> np.ndarray:
    """The speaker sequence maximising (sum of scores - penalty x speaker changes).

    Args:
        scores: (num_steps, num_speakers), higher is better.
        switch_penalty: cost of one change of speaker, in score units.

    Returns:
        (num_steps,) speaker index per step.
    """
    num_steps, num_speakers = scores.shape
    back = np.zeros((num_steps, num_speakers), dtype=int)
    value = scores[0].astype(np.float64).copy()
    speakers = np.arange(num_speakers)
    for t in range(1, num_steps):
        best = int(value.argmax())
        switch = value[best] - switch_penalty
        stay = value >= switch
        back[t] = np.where(stay, speakers, best)
        value = np.where(stay, value, switch) + scores[t]
    path = np.zeros(num_steps, dtype=int)
    path[-1] = int(value.argmax())
    for t in range(num_steps - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def label_frames(
    regions: Sequence[tuple[float, float]],
    scores: np.ndarray,
    step_frames: int,
    switch_penalty: float,
) -> np.ndarray:
    """Speaker of each frame: -1 outside `regions`, else Viterbi over `scores`
    sampled every `step_frames` frames, run separately in each region.

    Args:
        regions: speech regions in seconds.
        scores: (num_frames, num_speakers) from `frame_scores`.
        step_frames: decision granularity in frames.
        switch_penalty: see `viterbi`.

    Returns:
        (num_frames,) int labels.
    """
    num_frames = len(scores)
    labels = np.full(num_frames, -1, dtype=int)
    for start, end in regions:
        first, last = to_frame(start), min(to_frame(end), num_frames)
        if last <= first:
            continue
        path = viterbi(scores[first:last:step_frames], switch_penalty)
        labels[first:last] = np.repeat(path, step_frames)[: last - first]
    return labels


def restore_speakers(
    labels: np.ndarray, spans: np.ndarray, window_labels: np.ndarray, fit: np.ndarray
) -> np.ndarray:
    """Give every cluster that won no frame the frames of its best-fitting window.

    Used when the caller fixed the number of speakers: a cluster the caller asked
    for must appear in the output even where frame labelling prefers a neighbour.

    Args:
        labels: (num_frames,) frame labels, -1 outside speech.
        spans: (num_windows, 2) clustering window bounds in seconds.
        window_labels: (num_windows,) cluster of each window.
        fit: (num_windows,) similarity of each window to its own cluster centroid.

    Returns:
        New (num_frames,) labels.
    """
    restored = labels.copy()
    for k in np.unique(window_labels):
        if (restored == k).any():
            continue
        members = np.flatnonzero(window_labels == k)
        best = members[np.argmax(fit[members])]
        first, last = to_frame(spans[best, 0]), to_frame(spans[best, 1])
        segment = restored[first:last]
        speech = segment >= 0
        segment[speech if speech.any() else slice(None)] = k
    return restored


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, label) of each run of equal labels."""
    change = np.flatnonzero(np.diff(labels)) + 1
    bounds = np.concatenate([[0], change, [len(labels)]])
    return [(int(a), int(b), int(labels[a])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def fill_pauses(labels: np.ndarray, max_pause_frames: int) -> np.ndarray:
    """Pauses (runs of -1) shorter than `max_pause_frames` between two runs of the
    same speaker become that speaker's: a pause inside one person's turn."""
    filled = labels.copy()
    runs = _runs(labels)
    for i in range(1, len(runs) - 1):
        start, end, label = runs[i]
        if label == -1 and end - start < max_pause_frames and runs[i - 1][2] == runs[i + 1][2]:
            filled[start:end] = runs[i - 1][2]
    return filled


def frames_to_turns(labels: np.ndarray, names: Sequence[str]) -> list[Turn]:
    """Runs of equal non-negative labels as turns, sorted by start."""
    return [
        Turn(a * FRAME_DURATION, b * FRAME_DURATION, names[label])
        for a, b, label in _runs(labels)
        if label >= 0
    ]


def crosstalk_turns(labels: np.ndarray, names: Sequence[str], extension_frames: int) -> list[Turn]:
    """Extra turns where one speaker follows another with no pause: each speaker's
    turn is extended `extension_frames` into the other's (bounded by that run),
    since people talk over each other when they take the floor."""
    extra: list[Turn] = []
    runs = _runs(labels)
    for (a0, a1, left), (b0, b1, right) in zip(runs[:-1], runs[1:], strict=True):
        if left < 0 or right < 0:
            continue
        forward = min(b1, a1 + extension_frames)
        backward = max(a0, b0 - extension_frames)
        extra.append(Turn(a1 * FRAME_DURATION, forward * FRAME_DURATION, names[left]))
        extra.append(Turn(backward * FRAME_DURATION, b0 * FRAME_DURATION, names[right]))
    return extra


def merge_turns(turns: Sequence[Turn]) -> list[Turn]:
    """Each speaker's overlapping or touching turns joined; sorted by (start, end)."""
    by_speaker: dict[str, list[list[float]]] = {}
    for t in sorted(turns, key=lambda t: (t.start, t.end)):
        spans = by_speaker.setdefault(t.speaker, [])
        if spans and t.start <= spans[-1][1] + 1e-9:
            spans[-1][1] = max(spans[-1][1], t.end)
        else:
            spans.append([t.start, t.end])
    merged = [Turn(a, b, s) for s, spans in by_speaker.items() for a, b in spans]
    return sorted(merged, key=lambda t: (t.start, t.end, t.speaker))
