"""Known-speaker identification: match detected speakers against named reference embeddings.

Pure numpy and scipy, no I/O but `load_known_speakers`. Each detected speaker's
embedding is compared (cosine similarity) with every reference; speakers and
references are paired one to one (the assignment with the highest total
similarity), and a pair counts only when its similarity reaches the threshold.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from diarization.schema import (
    DiarizationResult,
    Identification,
    InputError,
    Match,
    Overlap,
    Segment,
)

#: Default cosine-similarity threshold per pipeline. bundled (resemblyzer GE2E):
#: measured on ../shared/data/speakers (docs/identification.md). pyannote (ECAPA):
#: SpeechBrain's own verification threshold for this model; not measured here, since
#: the real ECAPA weights cannot be downloaded on the machines this project is tested on.
DEFAULT_THRESHOLDS = {"bundled": 0.75, "pyannote": 0.25}
MAX_KNOWN_SPEAKERS = 200


def parse_known_speakers(data: object, source: str = "known_speakers") -> dict[str, np.ndarray]:
    """Validate `{name: [floats]}` and return name -> float64 vector.

    Raises:
        InputError: not a JSON object of equal-length lists of finite numbers, an
            empty or duplicate name, or too many speakers; the message says which.
    """
    if not isinstance(data, dict) or not data:
        raise InputError(f"{source} must be a JSON object {{name: [numbers]}}, got {_kind(data)}")
    if len(data) > MAX_KNOWN_SPEAKERS:
        raise InputError(f"{source} has {len(data)} speakers; at most {MAX_KNOWN_SPEAKERS}")
    known: dict[str, np.ndarray] = {}
    for name, vector in data.items():
        clean = str(name).strip()
        if not clean:
            raise InputError(f"{source}: a speaker name is empty")
        if clean in known:
            raise InputError(f"{source}: speaker name {clean!r} appears twice")
        ok = isinstance(vector, list) and vector and all(_is_number(x) for x in vector)
        if not ok or not np.all(np.isfinite(np.asarray(vector, dtype=np.float64))):
            raise InputError(f"{source}: {clean!r} must be a non-empty list of finite numbers")
        known[clean] = np.asarray(vector, dtype=np.float64)
    lengths = {len(v) for v in known.values()}
    if len(lengths) > 1:
        raise InputError(f"{source}: vectors have different lengths {sorted(lengths)}")
    return known


def load_known_speakers(path: str | Path) -> dict[str, np.ndarray]:
    """Read and validate a JSON file of named embeddings (see `parse_known_speakers`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"known speakers file {path.name!r} is not valid JSON: {e}") from e
    return parse_known_speakers(data, source=f"known speakers file {path.name!r}")


def match_speakers(
    embeddings: dict[str, list[float]], known: dict[str, np.ndarray], threshold: float
) -> dict[str, Match]:
    """Pair detected speakers with known ones, one to one, above `threshold`.

    Args:
        embeddings: detected label -> embedding (the output's speaker embeddings).
        known: name -> reference embedding, from the same model.
        threshold: least cosine similarity for a pair to count.

    Raises:
        InputError: the reference and detected embeddings differ in length (they come
            from different models).
    """
    labels = list(embeddings)
    if not labels or not known:
        return {label: Match(None, float("nan"), None) for label in labels}
    names = list(known)
    detected = np.asarray([embeddings[label] for label in labels], dtype=np.float64)
    references = np.stack([known[name] for name in names])
    if detected.shape[1] != references.shape[1]:
        raise InputError(
            f"known speaker embeddings have {references.shape[1]} numbers but this pipeline's "
            f"have {detected.shape[1]}: they must come from the same model (use this "
            f"pipeline's output embeddings, or reference recordings)"
        )
    similarity = _unit(detected) @ _unit(references).T
    # (num_labels, num_names)
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    paired = {int(r): int(c) for r, c in zip(rows, cols, strict=True)}
    matches = {}
    for i, label in enumerate(labels):
        best = int(np.argmax(similarity[i]))
        j = paired.get(i)
        if j is not None and similarity[i, j] >= threshold:
            matches[label] = Match(names[j], float(similarity[i, j]), names[j])
        else:
            matches[label] = Match(None, float(similarity[i, best]), names[best])
    return matches


def apply_names(
    result: DiarizationResult, matches: dict[str, Match], threshold: float
) -> DiarizationResult:
    """`result` with identified speakers renamed everywhere, and `matches` recorded.

    Raises:
        InputError: a known speaker's name equals the label of a speaker that was not
            identified (both would read the same).
    """
    names = {label: m.name for label, m in matches.items() if m.name is not None}
    kept = {label for label in result.labels if label not in names}
    clash = sorted(set(names.values()) & kept)
    if clash:
        raise InputError(
            f"known speaker name {clash[0]!r} is also the label of an unidentified speaker; "
            "rename that known speaker"
        )

    def rename(label: str) -> str:
        return names.get(label, label)

    def segments(items: list[Segment]) -> list[Segment]:
        return [replace(s, speaker=rename(s.speaker)) for s in items]

    return replace(
        result,
        segments=segments(result.segments),
        exclusive=segments(result.exclusive),
        overlaps=[
            Overlap(o.start, o.stop, tuple(rename(s) for s in o.speakers)) for o in result.overlaps
        ],
        labels=[rename(label) for label in result.labels],
        embeddings={rename(label): v for label, v in result.embeddings.items()},
        identification=Identification(
            threshold, {label: matches[label] for label in result.labels if label in matches}
        ),
    )


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _kind(data: object) -> str:
    return "an empty object" if data == {} else type(data).__name__
