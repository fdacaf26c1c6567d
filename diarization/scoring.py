"""Scoring diarization against a reference: RTTM/UEM files, DER, JER, speaker counts.

Pure functions over pyannote.core Annotations (and our Turn/Segment lists), so the
evaluation command and the tests share them. pyannote.metrics does the scoring;
this module adds the reading/writing of files, the per-file record and the
duration-weighted total. No torch, no models.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyannote.core import Annotation, Timeline
from pyannote.core import Segment as Interval
from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

from diarization.formats import rttm_line
from diarization.schema import Segment, Turn

#: Collars scored, in seconds (total width: collar / 2 on each side of every reference
#: boundary, so 0.5 is md-eval's `-c 0.25`).
COLLARS = (0.0, 0.5)


class RttmError(ValueError):
    """An RTTM or UEM file is malformed; the message names the file and line."""


def read_rttm(path: str | Path) -> dict[str, Annotation]:
    """Read an RTTM file (UTF-8) into one Annotation per uri.

    Only `SPEAKER` lines are read: `SPEAKER <uri> <channel> <onset> <duration> <NA>
    <NA> <speaker> <NA> <NA>`. Speaker names are kept as written (AMI has `MÉO069`).

    Raises:
        RttmError: a SPEAKER line has too few fields or a non-numeric time.
    """
    path = Path(path)
    annotations: dict[str, Annotation] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise RttmError(f"{path}:{number}: expected at least 8 fields, got {len(fields)}")
        uri, speaker = fields[1], fields[7]
        try:
            onset, duration = float(fields[3]), float(fields[4])
        except ValueError as e:
            raise RttmError(f"{path}:{number}: onset/duration are not numbers: {line!r}") from e
        annotation = annotations.setdefault(uri, Annotation(uri=uri))
        if duration > 0:
            annotation[Interval(onset, onset + duration), len(annotation)] = speaker
    return annotations


def read_uem(path: str | Path) -> dict[str, Timeline]:
    """Read a UEM file (`<uri> <channel> <start> <end>` per line) into one Timeline per uri."""
    path = Path(path)
    timelines: dict[str, Timeline] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 4:
            raise RttmError(f"{path}:{number}: expected 4 UEM fields, got {len(fields)}")
        try:
            start, end = float(fields[2]), float(fields[3])
        except ValueError as e:
            raise RttmError(f"{path}:{number}: start/end are not numbers: {line!r}") from e
        timeline = timelines.setdefault(fields[0], Timeline(uri=fields[0]))
        timeline.add(Interval(start, end))
    return timelines


def rttm_lines(annotation: Annotation) -> list[str]:
    """The RTTM lines of an annotation, sorted by onset, times with 3 decimals."""
    return [
        rttm_line(str(annotation.uri), segment.start, segment.duration, str(label))
        for segment, _, label in annotation.itertracks(yield_label=True)
    ]


def write_rttm(annotation: Annotation, path: str | Path) -> None:
    """Write one annotation as an RTTM file (UTF-8)."""
    lines = rttm_lines(annotation)
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def turns_to_annotation(turns: Iterable[Turn], uri: str) -> Annotation:
    """Raw turns as an Annotation (one track per turn)."""
    annotation = Annotation(uri=uri)
    for k, t in enumerate(turns):
        if t.end > t.start:
            annotation[Interval(t.start, t.end), k] = t.speaker
    return annotation


def segments_to_annotation(segments: Iterable[Segment], uri: str) -> Annotation:
    """Post-processed segments as an Annotation (one track per segment)."""
    annotation = Annotation(uri=uri)
    for k, s in enumerate(segments):
        if s.stop > s.start:
            annotation[Interval(s.start, s.stop), k] = s.speaker
    return annotation


@dataclass(frozen=True)
class Components:
    """DER's parts for one file (or a sum of files), in seconds.

    Attributes:
        total: reference speech scored (overlapping speakers counted once each).
        missed: reference speech with no hypothesis speaker.
        false_alarm: hypothesis speech where the reference has none.
        confusion: speech given to the wrong speaker.
    """

    total: float
    missed: float
    false_alarm: float
    confusion: float

    @property
    def der(self) -> float:
        """(missed + false alarm + confusion) / total.

        With no reference speech, pyannote.metrics gives 1.0 when there is any
        error (false alarm) and 0.0 when there is none; so does this.
        """
        error = self.missed + self.false_alarm + self.confusion
        if self.total == 0:
            return 1.0 if error > 0 else 0.0
        return error / self.total

    def __add__(self, other: Components) -> Components:
        return Components(
            self.total + other.total,
            self.missed + other.missed,
            self.false_alarm + other.false_alarm,
            self.confusion + other.confusion,
        )


@dataclass(frozen=True)
class FileScore:
    """Scores of one hypothesis for one file (or a total over files).

    Attributes:
        uri: file name (or "TOTAL").
        duration: seconds of audio scored (the UEM's extent).
        components: DER's parts per collar (keys: `COLLARS`).
        jaccard: (speaker error sum, reference speaker count): JER is their ratio;
            None when the reference has no speaker (JER is undefined there).
        reference_speakers: speakers in the reference.
        hypothesis_speakers: speakers in the hypothesis.
        files: files summed in this record; `count_matches` of them had the
            reference's number of speakers.
    """

    uri: str
    duration: float
    components: dict[float, Components]
    jaccard: tuple[float, float] | None
    reference_speakers: int
    hypothesis_speakers: int
    files: int = 1
    count_matches: int = 0

    @property
    def jer(self) -> float | None:
        """Jaccard error rate, None when undefined."""
        if self.jaccard is None or self.jaccard[1] == 0:
            return None
        return self.jaccard[0] / self.jaccard[1]

    def der(self, collar: float) -> float:
        """DER at `collar` (one of `COLLARS`)."""
        return self.components[collar].der


def score_file(
    reference: Annotation,
    hypothesis: Annotation,
    uem: Timeline,
    collars: Sequence[float] = COLLARS,
) -> FileScore:
    """Score one hypothesis with pyannote.metrics: overlap scored, no skipped regions.

    Args:
        reference: the true speaker turns.
        hypothesis: the system's turns (any labels; the best mapping is found).
        uem: the regions scored (pass the whole audio when there is no UEM file).
        collars: DER collars in seconds.
    """
    components = {}
    with warnings.catch_warnings():
        # pyannote warns about uri mismatches and approximated UEMs; we pass both.
        warnings.simplefilter("ignore", UserWarning)
        for collar in collars:
            metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
            detail = metric(reference, hypothesis, uem=uem, detailed=True)
            components[collar] = Components(
                total=detail["total"],
                missed=detail["missed detection"],
                false_alarm=detail["false alarm"],
                confusion=detail["confusion"],
            )
        jaccard = None
        if reference.crop(uem).labels():
            detail = JaccardErrorRate(collar=0.0, skip_overlap=False)(
                reference, hypothesis, uem=uem, detailed=True
            )
            jaccard = (detail["speaker error"], detail["speaker count"])
    reference_speakers = len(reference.labels())
    hypothesis_speakers = len(hypothesis.labels())
    return FileScore(
        uri=reference.uri or hypothesis.uri or "",
        duration=float(uem.duration()),
        components=components,
        jaccard=jaccard,
        reference_speakers=reference_speakers,
        hypothesis_speakers=hypothesis_speakers,
        count_matches=int(reference_speakers == hypothesis_speakers),
    )


def total_score(scores: Sequence[FileScore]) -> FileScore:
    """Sum of the files' components: DER weighted by reference speech, as
    `abs(metric)` in pyannote.metrics; JER weighted by reference speakers (also
    pyannote's accumulation). Speaker counts are summed; `count_matches` counts
    the files whose count was right.
    """
    if not scores:
        raise ValueError("total_score needs at least one file score")
    collars = scores[0].components.keys()
    components = {
        c: sum((s.components[c] for s in scores), Components(0.0, 0.0, 0.0, 0.0)) for c in collars
    }
    jaccards = [s.jaccard for s in scores if s.jaccard is not None]
    jaccard = (sum(j[0] for j in jaccards), sum(j[1] for j in jaccards)) if jaccards else None
    return FileScore(
        uri="TOTAL",
        duration=sum(s.duration for s in scores),
        components=components,
        jaccard=jaccard,
        reference_speakers=sum(s.reference_speakers for s in scores),
        hypothesis_speakers=sum(s.hypothesis_speakers for s in scores),
        files=sum(s.files for s in scores),
        count_matches=sum(s.count_matches for s in scores),
    )


def equal_error_rate(same: np.ndarray, different: np.ndarray) -> tuple[float, float]:
    """Equal error rate of a similarity score, and the threshold where it is reached.

    A trial is accepted when its score is >= the threshold. Every distinct score is
    tried as the threshold; the EER is the mean of the false-rejection and
    false-acceptance rates where they are closest.

    Args:
        same: scores of same-speaker trials.
        different: scores of different-speaker trials.

    Returns:
        (eer, threshold), eer in [0, 1].
    """
    same = np.asarray(same, dtype=np.float64)
    different = np.asarray(different, dtype=np.float64)
    if len(same) == 0 or len(different) == 0:
        raise ValueError(
            f"EER needs both kinds of trials, got {len(same)} same and {len(different)} different"
        )
    thresholds = np.unique(np.concatenate([same, different]))
    thresholds = np.append(thresholds, np.inf)
    # (num_thresholds,)
    false_reject = (same[None, :] < thresholds[:, None]).mean(axis=1)
    false_accept = (different[None, :] >= thresholds[:, None]).mean(axis=1)
    best = int(np.argmin(np.abs(false_reject - false_accept)))
    return float((false_reject[best] + false_accept[best]) / 2), float(thresholds[best])
