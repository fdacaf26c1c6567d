"""Post-processing: from a raw diarization to the reference model's output.

Pure functions, no I/O: the rules of meronym/speaker-diarization's post-processor,
plus three documented fixes (see `postprocess`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from diarization.overlaps import exclusive_segments, find_overlaps
from diarization.schema import (
    DiarizationResult,
    InputError,
    RawDiarization,
    Segment,
    Turn,
    WindowEmbeddings,
)


@dataclass(frozen=True)
class PostprocessOptions:
    """Thresholds of the clean-up rules; the defaults are the reference model's, and 0
    turns a rule off.

    Attributes:
        min_segment_duration: turns shorter than this many seconds are dropped.
        min_speaker_share: a speaker whose kept speech is at most this fraction of
            all kept speech is dropped (the reference's guard against overlap
            fragments clustered as a speaker of their own).
        max_merge_gap: a turn joins the previous output segment when both have
            the same speaker and the silence between them is shorter than this
            many seconds.
    """

    min_segment_duration: float = 1.0
    min_speaker_share: float = 0.01
    max_merge_gap: float = 2.0

    def __post_init__(self) -> None:
        for name in ("min_segment_duration", "min_speaker_share", "max_merge_gap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InputError(
                    f"{name} must be a number >= 0 (0 turns the rule off), got {value!r}"
                )
        if self.min_speaker_share >= 1:
            raise InputError(
                f"min_speaker_share is a fraction of all speech and must be below 1, "
                f"got {self.min_speaker_share}"
            )

    @classmethod
    def off(cls) -> PostprocessOptions:
        """No clean-up at all: every turn kept as the pipeline found it."""
        return cls(min_segment_duration=0.0, min_speaker_share=0.0, max_merge_gap=0.0)


def speaker_label(index: int) -> str:
    """Label of the `index`-th speaker: A..Z, then AA, AB, ... (the reference stops at Z).

    >>> [speaker_label(i) for i in (0, 25, 26, 27, 701, 702)]
    ['A', 'Z', 'AA', 'AB', 'ZZ', 'AAA']
    """
    if index < 0:
        raise ValueError(f"speaker index must be >= 0, got {index}")
    label = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        label = chr(ord("A") + rem) + label
    return label


def clip_turns(turns: Sequence[Turn], duration: float) -> list[Turn]:
    """Turns clipped to [0, duration], empty ones removed, sorted by (start, end)."""
    clipped = (Turn(max(0.0, t.start), min(duration, t.end), t.speaker) for t in turns)
    return sorted((t for t in clipped if t.end > t.start), key=lambda t: (t.start, t.end))


def clean_turns(turns: Sequence[Turn], options: PostprocessOptions) -> list[Turn]:
    """Rules 1 and 2: drop short turns, then speakers with too small a share of speech.

    `turns` must be sorted by start; the order is kept.
    """
    kept = [t for t in turns if t.duration >= options.min_segment_duration]
    speech: dict[str, float] = {}
    for t in kept:
        speech[t.speaker] = speech.get(t.speaker, 0.0) + t.duration
    total = sum(speech.values())
    speakers = {s for s, time in speech.items() if time > total * options.min_speaker_share}
    return [t for t in kept if t.speaker in speakers]


def label_speakers(turns: Sequence[Turn]) -> dict[str, str]:
    """Rule 3: raw speaker -> output label, in order of each speaker's first turn."""
    labels: dict[str, str] = {}
    for t in turns:
        if t.speaker not in labels:
            labels[t.speaker] = speaker_label(len(labels))
    return labels


def merge_turns(turns: Sequence[Turn], labels: dict[str, str], max_gap: float) -> list[Segment]:
    """Rule 4: a turn extends the previous output segment when the speaker is the
    same and the gap is shorter than `max_gap` seconds; otherwise it starts a new one.
    """
    merged: list[Segment] = []
    for t in turns:
        label = labels[t.speaker]
        last = merged[-1] if merged else None
        if last is not None and last.speaker == label and t.start - last.stop < max_gap:
            merged[-1] = Segment(label, last.start, max(last.stop, t.end))
        else:
            merged.append(Segment(label, t.start, t.end))
    return merged


def speaker_embeddings(
    segments: Sequence[Segment],
    windows: WindowEmbeddings,
    fallback: dict[str, np.ndarray],
) -> dict[str, list[float]]:
    """Rule 5: each speaker's embedding is the mean over the windows in which exactly
    one local speaker was active and which lie inside one of its segments.

    A window is credited to the first segment (in output order) that contains it,
    as in the reference. A speaker that gets no window takes `fallback[label]`
    (its clustering centroid) instead of the reference's empty list.
    """
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    active = ~np.all(np.isnan(windows.embeddings), axis=2)
    # (num_windows, local_num_speakers)
    for i in np.flatnonzero(active.sum(axis=1) == 1):
        start = float(windows.starts[i])
        end = start + windows.duration
        owner = next((s for s in segments if s.start <= start and end <= s.stop), None)
        if owner is None:
            continue
        embedding = windows.embeddings[i, int(np.flatnonzero(active[i])[0])]
        sums[owner.speaker] = sums.get(owner.speaker, 0.0) + embedding.astype(np.float64)
        counts[owner.speaker] = counts.get(owner.speaker, 0) + 1
    result: dict[str, list[float]] = {}
    for label in dict.fromkeys(s.speaker for s in segments):
        if label in sums:
            vector = sums[label] / counts[label]
        else:
            vector = np.asarray(fallback[label], dtype=np.float64)
        result[label] = [float(x) for x in vector]
    return result


def postprocess(
    raw: RawDiarization, options: PostprocessOptions = PostprocessOptions()
) -> DiarizationResult:
    """Apply the reference model's rules to a raw diarization.

    1. drop turns shorter than `min_segment_duration`;
    2. drop speakers with at most `min_speaker_share` of the kept speech;
    3. label speakers A, B, C ... in order of their first kept turn;
    4. merge a turn into the previous segment of the same speaker across gaps
       shorter than `max_merge_gap`;
    5. average per speaker the embeddings of single-speaker windows inside its segments.

    Fixes over the reference: a speaker with no qualifying window gets its
    clustering centroid (never an empty list); labels continue AA, AB, ... after Z;
    turns are clipped to the audio. Six-decimal timestamps are `schema`'s job.
    Added: the one-speaker-at-a-time view and the overlaps of the segments.
    """
    turns = clean_turns(clip_turns(raw.turns, raw.duration), options)
    labels = label_speakers(turns)
    segments = merge_turns(turns, labels, options.max_merge_gap)
    fallback = {label: raw.centroids[speaker] for speaker, label in labels.items()}
    embeddings = speaker_embeddings(segments, raw.windows, fallback)
    return DiarizationResult(
        segments=segments,
        labels=list(labels.values()),
        embeddings=embeddings,
        exclusive=exclusive_segments(segments),
        overlaps=find_overlaps(segments),
        duration=raw.duration,
    )
