"""Data shapes shared by every stage: speaker-count options, raw and final results.

Pure Python and numpy: no torch, no I/O. Seconds are the unit of every time.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass, field

import numpy as np

#: Largest speaker count accepted as an input. The segmentation model sees at most
#: three speakers per 5 s window; a recording can hold many more, but a request for
#: more than this is almost certainly a typo.
MAX_SPEAKERS_LIMIT = 50


class InputError(ValueError):
    """An input value is invalid; the message says which and what is allowed."""


@dataclass(frozen=True)
class SpeakerCount:
    """What the caller knows about the number of speakers.

    Attributes:
        num_speakers: exact number of speakers, or None when unknown.
        min_speakers: lower bound, or None for no bound.
        max_speakers: upper bound, or None for no bound.
    """

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None

    def __post_init__(self) -> None:
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise InputError(f"{name} must be a whole number, got {value!r}")
            if not 1 <= value <= MAX_SPEAKERS_LIMIT:
                raise InputError(f"{name} must be between 1 and {MAX_SPEAKERS_LIMIT}, got {value}")
        lo, hi, n = self.min_speakers, self.max_speakers, self.num_speakers
        if lo is not None and hi is not None and lo > hi:
            raise InputError(f"min_speakers ({lo}) is larger than max_speakers ({hi})")
        if n is not None and lo is not None and n < lo:
            raise InputError(f"num_speakers ({n}) is smaller than min_speakers ({lo})")
        if n is not None and hi is not None and n > hi:
            raise InputError(f"num_speakers ({n}) is larger than max_speakers ({hi})")


@dataclass(frozen=True)
class Turn:
    """One stretch of speech by one (raw, unnamed) speaker.

    Attributes:
        start: onset in seconds from the start of the audio.
        end: offset in seconds.
        speaker: the clustering's label for the speaker, e.g. "SPEAKER_00".
    """

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


@dataclass(frozen=True)
class WindowEmbeddings:
    """Speaker embeddings computed on sliding windows, before clustering.

    Attributes:
        starts: (num_windows,) window onsets in seconds.
        duration: length of every window in seconds.
        embeddings: (num_windows, local_num_speakers, dimension) embedding of each
            local speaker of each window; all-NaN rows for local speakers that were
            not active (or too briefly) in that window.
    """

    starts: np.ndarray
    duration: float
    embeddings: np.ndarray

    @property
    def dimension(self) -> int:
        """Length of one embedding."""
        return int(self.embeddings.shape[-1])


@dataclass(frozen=True)
class RawDiarization:
    """What a pipeline produces before post-processing.

    Attributes:
        turns: speech turns sorted by start.
        windows: the per-window embeddings the clustering saw.
        centroids: clustering centroid of each raw speaker label.
        duration: length of the audio in seconds.
    """

    turns: list[Turn]
    windows: WindowEmbeddings
    centroids: dict[str, np.ndarray]
    duration: float


@dataclass(frozen=True)
class Segment:
    """One output segment.

    Attributes:
        speaker: output label ("A", "B", ...).
        start: onset in seconds.
        stop: offset in seconds.
    """

    speaker: str
    start: float
    stop: float


@dataclass(frozen=True)
class Overlap:
    """A stretch of time in which two or more speakers talk at once.

    Attributes:
        start: onset in seconds.
        stop: offset in seconds.
        speakers: the speakers talking, in label order.
    """

    start: float
    stop: float
    speakers: tuple[str, ...]


@dataclass(frozen=True)
class PipelineInfo:
    """Which pipeline and speaker-embedding model produced a result.

    Attributes:
        name: "pyannote" (the seed pipeline) or "bundled".
        embedding_model: the speaker-embedding model, e.g. "speechbrain/spkrec-ecapa-voxceleb".
        embedding_dimension: length of every speaker embedding in the output.
    """

    name: str
    embedding_model: str
    embedding_dimension: int


@dataclass(frozen=True)
class Match:
    """How one detected speaker compares with the known speakers.

    Attributes:
        name: the known speaker it was identified as, or None.
        similarity: cosine similarity with `closest` (-1..1; NaN with no known speakers).
        closest: the most similar known speaker, identified or not.
    """

    name: str | None
    similarity: float
    closest: str | None


@dataclass(frozen=True)
class Identification:
    """The outcome of matching detected speakers against known ones.

    Attributes:
        threshold: least cosine similarity that counted as a match.
        matches: detected label ("A", ...) -> its match.
    """

    threshold: float
    matches: dict[str, Match]


@dataclass(frozen=True)
class DiarizationResult:
    """The post-processed answer: the reference model's keys plus documented additions.

    Attributes:
        segments: output segments sorted by start (overlapping speakers overlap here).
        labels: speaker labels in order of first appearance.
        embeddings: one embedding per label (same dimension for all).
        exclusive: the same speech with one speaker at a time (for captions).
        overlaps: stretches where two or more speakers talk at once.
        pipeline: what produced the result, when known.
        duration: length of the audio in seconds (0 when unknown; not in the JSON).
        identification: known-speaker matches, when known speakers were given.
    """

    segments: list[Segment]
    labels: list[str]
    embeddings: dict[str, list[float]] = field(default_factory=dict)
    exclusive: list[Segment] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    pipeline: PipelineInfo | None = None
    duration: float = 0.0
    identification: Identification | None = None

    def to_json(self) -> str:
        """`output.json`'s text: `to_dict()`, indented."""
        return json.dumps(self.to_dict(), indent=2)

    def to_dict(self) -> dict:
        """`output.json`: the reference's `segments` and `speakers` keys, unchanged in
        meaning and order, then the added keys."""
        output = {
            "segments": [_segment_dict(s) for s in self.segments],
            "speakers": {
                "count": len(self.labels),
                "labels": list(self.labels),
                "embeddings": {label: list(self.embeddings[label]) for label in self.labels},
            },
            "exclusive_segments": [_segment_dict(s) for s in self.exclusive],
            "overlaps": [
                {"speakers": list(o.speakers), **_times(o.start, o.stop)} for o in self.overlaps
            ],
        }
        if self.identification is not None:
            output["identification"] = {
                "threshold": self.identification.threshold,
                "speakers": {
                    label: {
                        "name": m.name,
                        "similarity": None if math.isnan(m.similarity) else m.similarity,
                        "closest": m.closest,
                    }
                    for label, m in self.identification.matches.items()
                },
            }
        if self.pipeline is not None:
            output["pipeline"] = {
                "name": self.pipeline.name,
                "embedding_model": self.pipeline.embedding_model,
                "embedding_dimension": self.pipeline.embedding_dimension,
            }
        return output


def _times(start: float, stop: float) -> dict:
    return {
        "start": format_timestamp(start),
        "stop": format_timestamp(stop),
        "start_seconds": round(float(start), 6),
        "stop_seconds": round(float(stop), 6),
    }


def _segment_dict(segment: Segment) -> dict:
    return {"speaker": segment.speaker, **_times(segment.start, segment.stop)}


def format_timestamp(seconds: float) -> str:
    """`H:MM:SS.ffffff`, always with six decimals (the reference drops them on whole seconds).

    >>> format_timestamp(5.0)
    '0:00:05.000000'
    """
    if seconds < 0:
        raise ValueError(f"timestamps are never negative, got {seconds}")
    micros = round(seconds * 1_000_000)
    whole, frac = divmod(micros, 1_000_000)
    return f"{datetime.timedelta(seconds=whole)}.{frac:06d}"
