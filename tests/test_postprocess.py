"""Tests of `diarization.postprocess`: the reference model's rules, the fixes, invariants.

Times in the tables are chosen to be exact in binary floating point (or to sit on
the intended side of a boundary after float arithmetic) so every expectation is exact.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from diarization.postprocess import (
    PostprocessOptions,
    clip_turns,
    postprocess,
    speaker_embeddings,
    speaker_label,
)
from diarization.schema import DiarizationResult, RawDiarization, Segment, Turn, WindowEmbeddings

DIM = 4
WINDOW_DURATION = 5.0
LOCAL_SPEAKERS = 3


def make_windows(
    entries: list[tuple[float, dict[int, np.ndarray]]],
    dim: int = DIM,
    duration: float = WINDOW_DURATION,
) -> WindowEmbeddings:
    """Windows from (start, {local speaker slot: embedding}); absent slots are all-NaN."""
    starts = np.array([start for start, _ in entries], dtype=np.float64)
    # (num_windows, local_num_speakers, dimension)
    embeddings = np.full((len(entries), LOCAL_SPEAKERS, dim), np.nan, dtype=np.float32)
    for i, (_, slots) in enumerate(entries):
        for slot, vector in slots.items():
            embeddings[i, slot] = vector
    return WindowEmbeddings(starts=starts, duration=duration, embeddings=embeddings)


def centroid(speaker: str, dim: int = DIM) -> np.ndarray:
    """A recognisable centroid per raw speaker: 1000 + the speaker's number, everywhere."""
    return np.full(dim, 1000.0 + int(speaker.lstrip("s")))


def make_raw(
    turns: list[tuple[float, float, str]],
    duration: float = 1000.0,
    windows: WindowEmbeddings | None = None,
    centroids: dict[str, np.ndarray] | None = None,
) -> RawDiarization:
    speakers = {speaker for _, _, speaker in turns}
    return RawDiarization(
        turns=[Turn(start, end, speaker) for start, end, speaker in turns],
        windows=windows if windows is not None else make_windows([]),
        centroids=centroids if centroids is not None else {s: centroid(s) for s in speakers},
        duration=duration,
    )


def segment_tuples(result: DiarizationResult) -> list[tuple[str, float, float]]:
    return [(s.speaker, s.start, s.stop) for s in result.segments]


def v(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


# --- rule 1: turns shorter than 1.0 s are dropped -------------------------------------


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        pytest.param([(0.0, 1.0, "s0")], [("A", 0.0, 1.0)], id="exactly-1.0-kept"),
        pytest.param([(0.0, 0.999, "s0")], [], id="0.999-dropped"),
        pytest.param([(2.0, 3.0, "s0")], [("A", 2.0, 3.0)], id="exactly-1.0-not-at-zero"),
        pytest.param([(10.0, 10.5, "s0")], [], id="half-second-dropped"),
        pytest.param(
            [(0.0, 0.999, "s0"), (5.0, 6.0, "s1")], [("A", 5.0, 6.0)], id="short-dropped-long-kept"
        ),
        pytest.param(
            [(0.0, 3.0, "s0"), (3.5, 4.2, "s0"), (8.0, 9.5, "s0")],
            [("A", 0.0, 3.0), ("A", 8.0, 9.5)],
            id="short-turn-does-not-bridge-a-gap",
        ),
    ],
)
def test_short_turns_are_dropped(turns, expected):
    assert segment_tuples(postprocess(make_raw(turns))) == expected


# --- rule 2: speakers with at most 1 % of the kept speech are dropped -----------------


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        pytest.param(
            [(0.0, 99.0, "s0"), (100.0, 101.0, "s1")],
            [("A", 0.0, 99.0)],
            id="exactly-1-percent-dropped",
        ),
        pytest.param(
            [(0.0, 98.9, "s0"), (100.0, 101.0, "s1")],
            [("A", 0.0, 98.9), ("B", 100.0, 101.0)],
            id="just-above-1-percent-kept",
        ),
        pytest.param(
            [(0.0, 198.0, "s0"), (200.0, 201.0, "s1"), (205.0, 206.0, "s1")],
            [("A", 0.0, 198.0)],
            id="share-summed-over-turns-exactly-1-percent",
        ),
        pytest.param(
            [(0.0, 197.0, "s0"), (200.0, 201.5, "s1"), (205.0, 206.5, "s1")],
            [("A", 0.0, 197.0), ("B", 200.0, 201.5), ("B", 205.0, 206.5)],
            id="share-summed-over-turns-1.5-percent",
        ),
        pytest.param(
            # Raw share 1.5 / 100.5 would keep s1; only kept speech counts: 1 / 100.
            [(0.0, 99.0, "s0"), (100.0, 100.5, "s1"), (102.0, 103.0, "s1")],
            [("A", 0.0, 99.0)],
            id="share-counts-only-kept-turns",
        ),
        pytest.param(
            # Total is 100 s including both small speakers: s1 at 1 % goes, s2 at 1.5 % stays.
            [(0.0, 97.5, "s0"), (100.0, 101.0, "s1"), (110.0, 111.5, "s2")],
            [("A", 0.0, 97.5), ("B", 110.0, 111.5)],
            id="three-speakers-one-dropped",
        ),
    ],
)
def test_small_speakers_are_dropped(turns, expected):
    assert segment_tuples(postprocess(make_raw(turns))) == expected


# --- rule 3: labels in order of first kept turn ---------------------------------------


@pytest.mark.parametrize(
    ("turns", "expected_segments", "expected_labels"),
    [
        pytest.param(
            [(0.0, 2.0, "s1"), (5.0, 7.0, "s0")],
            [("A", 0.0, 2.0), ("B", 5.0, 7.0)],
            ["A", "B"],
            id="first-turn-not-raw-name",
        ),
        pytest.param(
            [(0.0, 0.5, "s0"), (1.0, 3.0, "s1"), (4.0, 6.0, "s0")],
            [("A", 1.0, 3.0), ("B", 4.0, 6.0)],
            ["A", "B"],
            id="first-kept-turn-counts-not-first-raw-turn",
        ),
        pytest.param(
            [(0.0, 3.0, "s0"), (3.0, 3.5, "s1"), (10.0, 12.0, "s2")],
            [("A", 0.0, 3.0), ("B", 10.0, 12.0)],
            ["A", "B"],
            id="speaker-with-only-dropped-turns-gets-no-label",
        ),
        pytest.param(
            [(0.0, 1.0, "s1"), (2.0, 100.0, "s0"), (200.0, 202.0, "s2")],
            [("A", 2.0, 100.0), ("B", 200.0, 202.0)],
            ["A", "B"],
            id="speaker-dropped-by-share-gets-no-label",
        ),
        pytest.param(
            # Both first turns are clipped to start at 0; the shorter one (s1) sorts first,
            # although s0 started earlier before clipping.
            [(-2.0, 6.0, "s0"), (-1.0, 3.0, "s1")],
            [("A", 0.0, 3.0), ("B", 0.0, 6.0)],
            ["A", "B"],
            id="tie-at-zero-after-clipping-broken-by-end",
        ),
        pytest.param(
            [(0.0, 2.0, "s2"), (3.0, 5.0, "s0"), (6.0, 8.0, "s2"), (9.0, 11.0, "s1")],
            [("A", 0.0, 2.0), ("B", 3.0, 5.0), ("A", 6.0, 8.0), ("C", 9.0, 11.0)],
            ["A", "B", "C"],
            id="three-speakers-interleaved",
        ),
    ],
)
def test_labels_follow_first_kept_turn(turns, expected_segments, expected_labels):
    result = postprocess(make_raw(turns))
    assert segment_tuples(result) == expected_segments
    assert result.labels == expected_labels
    assert list(result.embeddings) == expected_labels


# --- rule 4: merging with the previous output segment ---------------------------------


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        pytest.param(
            [(0.0, 2.0, "s0"), (4.0, 6.0, "s0")],
            [("A", 0.0, 2.0), ("A", 4.0, 6.0)],
            id="gap-exactly-2.0-not-merged",
        ),
        pytest.param(
            [(0.0, 2.0, "s0"), (3.999, 6.0, "s0")], [("A", 0.0, 6.0)], id="gap-1.999-merged"
        ),
        pytest.param([(0.0, 2.0, "s0"), (2.0, 4.0, "s0")], [("A", 0.0, 4.0)], id="touching"),
        pytest.param(
            [(0.0, 2.0, "s0"), (3.0, 5.0, "s0"), (6.0, 8.0, "s0")],
            [("A", 0.0, 8.0)],
            id="chain-gap-measured-from-merged-stop",
        ),
        pytest.param(
            [(0.0, 5.0, "s0"), (1.0, 3.0, "s0")], [("A", 0.0, 5.0)], id="nested-does-not-shrink"
        ),
        pytest.param(
            [(0.0, 3.0, "s0"), (3.5, 4.5, "s1"), (4.5, 6.0, "s0")],
            [("A", 0.0, 3.0), ("B", 3.5, 4.5), ("A", 4.5, 6.0)],
            id="A-B-A-not-merged-across-B",
        ),
        pytest.param(
            [(0.0, 5.0, "s0"), (1.0, 3.0, "s1"), (5.5, 8.0, "s0")],
            [("A", 0.0, 5.0), ("B", 1.0, 3.0), ("A", 5.5, 8.0)],
            id="A-B-A-with-overlap-not-merged",
        ),
        pytest.param(
            [(0.0, 3.0, "s0"), (3.2, 3.8, "s1"), (4.0, 6.0, "s0")],
            [("A", 0.0, 6.0)],
            id="dropped-turn-between-does-not-block-merge",
        ),
        pytest.param(
            [(0.0, 2.0, "s0"), (2.5, 4.0, "s1"), (4.5, 6.0, "s1"), (6.5, 9.0, "s0")],
            [("A", 0.0, 2.0), ("B", 2.5, 6.0), ("A", 6.5, 9.0)],
            id="merge-inside-B-only",
        ),
    ],
)
def test_merge_with_previous_output_segment(turns, expected):
    assert segment_tuples(postprocess(make_raw(turns))) == expected


@pytest.mark.parametrize(
    ("options", "turns", "expected"),
    [
        pytest.param(
            PostprocessOptions(min_segment_duration=0.5),
            [(0.0, 0.5, "s0"), (10.0, 10.499, "s0")],
            [("A", 0.0, 0.5)],
            id="min-duration-0.5",
        ),
        pytest.param(
            PostprocessOptions(min_speaker_share=0.0),
            [(0.0, 999.0, "s0"), (999.0, 1000.0, "s1")],
            [("A", 0.0, 999.0), ("B", 999.0, 1000.0)],
            id="share-0-keeps-everyone",
        ),
        pytest.param(
            PostprocessOptions(min_speaker_share=0.5),
            [(0.0, 2.0, "s0"), (3.0, 5.0, "s1")],
            [],
            id="share-0.5-two-equal-speakers-both-dropped",
        ),
        pytest.param(
            PostprocessOptions(max_merge_gap=0.0),
            [(0.0, 2.0, "s0"), (2.0, 4.0, "s0")],
            [("A", 0.0, 2.0), ("A", 2.0, 4.0)],
            id="gap-0-no-merge-even-touching",
        ),
        pytest.param(
            PostprocessOptions(max_merge_gap=10.0),
            [(0.0, 2.0, "s0"), (11.0, 13.0, "s0")],
            [("A", 0.0, 13.0)],
            id="gap-10",
        ),
    ],
)
def test_options_are_honoured(options, turns, expected):
    assert segment_tuples(postprocess(make_raw(turns), options)) == expected


# --- fix: labels past Z ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "label"),
    [
        (0, "A"),
        (1, "B"),
        (25, "Z"),
        (26, "AA"),
        (27, "AB"),
        (51, "AZ"),
        (52, "BA"),
        (701, "ZZ"),
        (702, "AAA"),
        (18277, "ZZZ"),
        (18278, "AAAA"),
    ],
)
def test_speaker_label(index, label):
    assert speaker_label(index) == label


def test_speaker_label_rejects_negative():
    with pytest.raises(ValueError, match="-1"):
        speaker_label(-1)


def test_speaker_labels_are_distinct_and_ordered_by_length_then_alphabet():
    labels = [speaker_label(i) for i in range(2000)]
    assert len(set(labels)) == len(labels)
    assert labels == sorted(labels, key=lambda s: (len(s), s))


def test_more_than_26_speakers_continue_with_double_letters():
    turns = [(3.0 * i, 3.0 * i + 2.0, f"s{i}") for i in range(28)]
    result = postprocess(make_raw(turns))
    assert result.labels[-3:] == ["Z", "AA", "AB"]
    assert [s.speaker for s in result.segments] == result.labels
    assert result.embeddings["AB"] == [1027.0] * DIM


# --- fix: clipping to [0, duration] ---------------------------------------------------


@pytest.mark.parametrize(
    ("turns", "duration", "expected"),
    [
        pytest.param([(-1.0, 2.0, "s0")], 10.0, [("A", 0.0, 2.0)], id="negative-start"),
        pytest.param([(8.0, 12.0, "s0")], 10.0, [("A", 8.0, 10.0)], id="end-past-duration"),
        pytest.param([(-2.0, 0.5, "s0")], 10.0, [], id="clipped-below-1s-dropped"),
        pytest.param([(9.5, 12.0, "s0")], 10.0, [], id="clipped-tail-below-1s-dropped"),
        pytest.param([(11.0, 13.0, "s0")], 10.0, [], id="entirely-after-end"),
        pytest.param([(-3.0, -1.0, "s0")], 10.0, [], id="entirely-before-start"),
        pytest.param([(-5.0, 15.0, "s0")], 10.0, [("A", 0.0, 10.0)], id="covers-everything"),
    ],
)
def test_turns_are_clipped_to_the_audio(turns, duration, expected):
    assert segment_tuples(postprocess(make_raw(turns, duration=duration))) == expected


def test_clip_turns_sorts_and_removes_empty():
    turns = [Turn(5.0, 6.0, "b"), Turn(-1.0, 3.0, "a"), Turn(12.0, 14.0, "c"), Turn(5.0, 5.5, "a")]
    assert clip_turns(turns, 10.0) == [
        Turn(0.0, 3.0, "a"),
        Turn(5.0, 5.5, "a"),
        Turn(5.0, 6.0, "b"),
    ]


# --- rule 5: embeddings ---------------------------------------------------------------

V1 = v(1.0, 2.0, 3.0, 4.0)
V2 = v(3.0, 6.0, 9.0, 12.0)
V3 = v(-8.0, 0.5, 0.25, 100.0)
CENTROID_A = [1000.0] * DIM  # s0 -> A, segment [0, 10]
CENTROID_B = [1001.0] * DIM  # s1 -> B, segment [12, 22]


@pytest.mark.parametrize(
    ("entries", "expected_a", "expected_b"),
    [
        pytest.param([], CENTROID_A, CENTROID_B, id="no-windows-centroids"),
        pytest.param([(0.0, {0: V1})], list(V1), CENTROID_B, id="one-window"),
        pytest.param(
            [(0.0, {0: V1}), (5.0, {2: V2})], [2.0, 4.0, 6.0, 8.0], CENTROID_B, id="mean-of-two"
        ),
        pytest.param(
            [(0.0, {0: V1}), (2.0, {1: V2}), (4.0, {2: V3})],
            [-4.0 / 3.0, 8.5 / 3.0, 12.25 / 3.0, 116.0 / 3.0],
            CENTROID_B,
            id="mean-of-three",
        ),
        pytest.param([(0.0, {0: V1}), (2.0, {})], list(V1), CENTROID_B, id="zero-active-ignored"),
        pytest.param(
            [(0.0, {0: V1}), (3.0, {0: V2, 1: V3})], list(V1), CENTROID_B, id="two-active-ignored"
        ),
        pytest.param(
            [(1.0, {0: V2, 1: V3})], CENTROID_A, CENTROID_B, id="only-two-active-centroid"
        ),
        pytest.param(
            [(0.0, {0: V1}), (3.0, {0: V2, 1: V3, 2: V3})],
            list(V1),
            CENTROID_B,
            id="three-active-ignored",
        ),
        pytest.param(
            [(0.0, {0: V1}), (6.0, {0: V2})], list(V1), CENTROID_B, id="window-past-segment-end"
        ),
        pytest.param(
            [(-1.0, {0: V2}), (5.0, {0: V1})], list(V1), CENTROID_B, id="window-before-segment"
        ),
        pytest.param([(5.0, {1: V1})], list(V1), CENTROID_B, id="window-ends-on-segment-stop"),
        pytest.param([(9.0, {0: V1})], CENTROID_A, CENTROID_B, id="window-spans-the-gap"),
        pytest.param(
            [(0.0, {0: V1}), (13.0, {0: V2}), (17.0, {1: V3})],
            list(V1),
            [-2.5, 3.25, 4.625, 56.0],
            id="slot-does-not-name-speaker-segment-does",
        ),
    ],
)
def test_speaker_embedding_is_mean_of_single_speaker_windows(entries, expected_a, expected_b):
    raw = make_raw(
        [(0.0, 10.0, "s0"), (12.0, 22.0, "s1")], duration=30.0, windows=make_windows(entries)
    )
    result = postprocess(raw)
    assert segment_tuples(result) == [("A", 0.0, 10.0), ("B", 12.0, 22.0)]
    assert result.embeddings == {"A": expected_a, "B": expected_b}


def test_window_inside_merged_segment_counts():
    # Neither raw turn holds [1, 6], the merged segment [0, 8] does.
    raw = make_raw(
        [(0.0, 4.0, "s0"), (5.0, 8.0, "s0")],
        duration=10.0,
        windows=make_windows([(1.0, {0: V1})]),
    )
    result = postprocess(raw)
    assert segment_tuples(result) == [("A", 0.0, 8.0)]
    assert result.embeddings == {"A": list(V1)}


def test_window_in_two_speakers_segments_goes_to_first_in_output_order():
    raw = make_raw(
        [(0.0, 10.0, "s0"), (1.0, 10.0, "s1")],
        duration=10.0,
        windows=make_windows([(2.0, {1: V1})]),
    )
    result = postprocess(raw)
    assert segment_tuples(result) == [("A", 0.0, 10.0), ("B", 1.0, 10.0)]
    assert result.embeddings == {"A": list(V1), "B": CENTROID_B}


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        pytest.param(
            [Segment("B", 0.0, 10.0), Segment("A", 0.0, 10.0)],
            {"B": list(V1), "A": [7.0] * DIM},
            id="B-first",
        ),
        pytest.param(
            [Segment("A", 0.0, 10.0), Segment("B", 0.0, 10.0)],
            {"A": list(V1), "B": [8.0] * DIM},
            id="A-first",
        ),
        pytest.param(
            # The first segment *containing* the window wins, not the first segment.
            [Segment("A", 0.0, 1.0), Segment("B", 0.0, 10.0), Segment("A", 1.5, 10.0)],
            {"A": [7.0] * DIM, "B": list(V1)},
            id="first-containing",
        ),
    ],
)
def test_speaker_embeddings_credit_first_containing_segment(segments, expected):
    windows = make_windows([(2.0, {0: V1})])
    fallback = {"A": np.full(DIM, 7.0), "B": np.full(DIM, 8.0)}
    result = speaker_embeddings(segments, windows, fallback)
    assert result == expected
    assert list(result) == list(expected)  # order of first appearance in segments


@pytest.mark.parametrize("windows_kind", ["no-windows", "only-multi-speaker-windows"])
def test_speaker_without_window_gets_its_centroid(windows_kind):
    dim = 192
    rng = np.random.default_rng(7)
    centroid_0 = rng.standard_normal(dim)
    centroid_1 = rng.standard_normal(dim).astype(np.float32)
    entries = [] if windows_kind == "no-windows" else [(0.0, {0: np.ones(dim), 1: np.ones(dim)})]
    raw = make_raw(
        [(0.0, 10.0, "s1"), (12.0, 22.0, "s0")],
        duration=30.0,
        windows=make_windows(entries, dim=dim),
        centroids={"s0": centroid_0, "s1": centroid_1},
    )
    result = postprocess(raw)
    assert result.labels == ["A", "B"]
    for label, expected in (("A", centroid_1), ("B", centroid_0)):
        embedding = result.embeddings[label]
        assert len(embedding) == dim
        assert all(type(x) is float for x in embedding)
        assert embedding == [float(x) for x in expected]


# --- empty input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("turns", "entries"),
    [
        pytest.param([], [], id="no-turns"),
        pytest.param([], [(0.0, {0: V1})], id="no-turns-with-windows"),
        pytest.param([(0.0, 0.5, "s0"), (3.0, 3.9, "s1")], [(0.0, {0: V1})], id="all-dropped"),
    ],
)
def test_empty_input_gives_empty_result(turns, entries):
    result = postprocess(make_raw(turns, duration=10.0, windows=make_windows(entries)))
    assert result == DiarizationResult(segments=[], labels=[], embeddings={}, duration=10.0)
    assert result.to_dict() == {
        "segments": [],
        "speakers": {"count": 0, "labels": [], "embeddings": {}},
        "exclusive_segments": [],
        "overlaps": [],
    }


# --- invariants over random raw diarizations ------------------------------------------

SEEDS = range(300)


def random_raw(seed: int) -> RawDiarization:
    """A random raw diarization shaped like a pipeline's output.

    Like pyannote's, one speaker's turns never overlap each other (different
    speakers' may); some turns stick out of [0, duration].
    """
    rng = np.random.default_rng(seed)
    duration = float(rng.uniform(3.0, 120.0))
    num_speakers = int(rng.integers(0, 7))
    turns: list[Turn] = []
    for k in range(num_speakers):
        speaker = f"SPEAKER_{k:02d}"
        mean_turn = float(rng.choice([0.8, 2.0, 6.0]))
        mean_gap = float(rng.choice([0.5, 2.0, 10.0, 60.0]))
        t = float(rng.uniform(-3.0, duration / 2))
        while t < duration + 3.0:
            length = float(rng.exponential(mean_turn))
            turns.append(Turn(t, t + length, speaker))
            t += length + float(rng.exponential(mean_gap))
    turns.sort(key=lambda turn: turn.start)
    dim = int(rng.choice([3, 16, 192]))
    step = float(rng.choice([0.5, 1.0, 2.5]))
    starts = np.arange(0.0, max(duration - WINDOW_DURATION, 0.0) + step, step)
    # (num_windows, local_num_speakers, dimension)
    embeddings = rng.standard_normal((len(starts), LOCAL_SPEAKERS, dim)).astype(np.float32)
    inactive = rng.random((len(starts), LOCAL_SPEAKERS)) < float(rng.uniform(0.3, 0.9))
    embeddings[inactive] = np.nan
    return RawDiarization(
        turns=turns,
        windows=WindowEmbeddings(starts=starts, duration=WINDOW_DURATION, embeddings=embeddings),
        centroids={f"SPEAKER_{k:02d}": rng.standard_normal(dim) for k in range(num_speakers)},
        duration=duration,
    )


def expected_kept_turns(raw: RawDiarization) -> dict[str, list[tuple[float, float]]]:
    """Kept turns per raw speaker, computed here independently of the module.

    Speakers (keys) come in label order: by first kept turn, ties on the clipped
    start broken by the end, as `clip_turns` sorts.
    """
    clipped = [(max(0.0, t.start), min(raw.duration, t.end), t.speaker) for t in raw.turns]
    per_speaker: dict[str, list[tuple[float, float]]] = {}
    for start, end, speaker in sorted(clipped, key=lambda c: c[:2]):
        if end - start >= 1.0:
            per_speaker.setdefault(speaker, []).append((start, end))
    speech = {s: sum(e - b for b, e in spans) for s, spans in per_speaker.items()}
    total = sum(speech.values())
    return {s: spans for s, spans in per_speaker.items() if speech[s] > 0.01 * total}


@pytest.fixture(scope="module")
def random_cases() -> list[tuple[RawDiarization, DiarizationResult]]:
    return [(raw, postprocess(raw)) for raw in map(random_raw, SEEDS)]


def test_random_cases_exercise_the_rules(random_cases):
    """Guards the generator: the invariants below must not hold vacuously."""
    results = [result for _, result in random_cases]
    assert sum(not r.segments for r in results) >= 10
    assert sum(len(r.labels) >= 3 for r in results) >= 50
    assert sum(len(r.segments) > len(r.labels) for r in results) >= 100
    assert any(
        len(expected_kept_turns(raw)) < len({t.speaker for t in raw.turns if t.duration >= 1.0})
        for raw, _ in random_cases
    ), "no case drops a speaker for its small share"


def test_segments_sorted_and_within_audio(random_cases):
    for raw, result in random_cases:
        starts = [s.start for s in result.segments]
        assert starts == sorted(starts)
        for s in result.segments:
            assert 0.0 <= s.start < s.stop <= raw.duration
            assert s.stop - s.start >= 1.0


def test_no_self_overlap_and_no_missed_merge(random_cases):
    for _, result in random_cases:
        last_stop: dict[str, float] = {}
        for s in result.segments:
            assert s.start >= last_stop.get(s.speaker, -math.inf)
            last_stop[s.speaker] = s.stop
        for prev, nxt in itertools.pairwise(result.segments):
            if prev.speaker == nxt.speaker:
                assert nxt.start - prev.stop >= 2.0


def test_labels_are_consecutive_in_order_of_first_appearance(random_cases):
    for raw, result in random_cases:
        first_appearance = list(dict.fromkeys(s.speaker for s in result.segments))
        assert result.labels == first_appearance
        assert result.labels == [speaker_label(i) for i in range(len(result.labels))]
        assert len(result.labels) == len(expected_kept_turns(raw))


def test_one_finite_embedding_per_label(random_cases):
    for raw, result in random_cases:
        assert list(result.embeddings) == result.labels
        for embedding in result.embeddings.values():
            assert len(embedding) == raw.windows.dimension
            assert all(math.isfinite(x) for x in embedding)


def test_nothing_lost_and_nothing_invented(random_cases):
    for raw, result in random_cases:
        kept = expected_kept_turns(raw)
        label_of = {speaker: speaker_label(i) for i, speaker in enumerate(kept)}
        for speaker, spans in kept.items():
            mine = [s for s in result.segments if s.speaker == label_of[speaker]]
            for start, end in spans:
                assert any(s.start <= start and end <= s.stop for s in mine)
            # Every segment starts at one of its speaker's turns and stops at one.
            for s in mine:
                assert s.start in {b for b, _ in spans}
                assert s.stop in {e for _, e in spans}
        assert sum(len(spans) for spans in kept.values()) >= len(result.segments)


def test_embedding_is_window_mean_or_centroid(random_cases):
    for raw, result in random_cases:
        windows = raw.windows
        active = ~np.isnan(windows.embeddings).all(axis=2)
        kept = expected_kept_turns(raw)
        for i, speaker in enumerate(kept):
            label = speaker_label(i)
            credited = []
            for w, start in enumerate(windows.starts):
                end = start + windows.duration
                owner = next(
                    (s for s in result.segments if s.start <= start and end <= s.stop), None
                )
                if active[w].sum() == 1 and owner is not None and owner.speaker == label:
                    credited.append(windows.embeddings[w, active[w].argmax()].astype(np.float64))
            expected = np.mean(credited, axis=0) if credited else raw.centroids[speaker]
            np.testing.assert_allclose(result.embeddings[label], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_segment_duration": -1.0}, "min_segment_duration must be a number >= 0"),
        ({"max_merge_gap": "2"}, "max_merge_gap must be a number >= 0"),
        ({"min_speaker_share": 1.0}, "min_speaker_share is a fraction of all speech"),
    ],
)
def test_invalid_options_are_input_errors(kwargs, message):
    from diarization.schema import InputError

    with pytest.raises(InputError, match=message):
        PostprocessOptions(**kwargs)


def test_rules_off_keep_every_turn_as_found():
    turns = [(0.0, 0.4, "s1"), (0.5, 3.0, "s2"), (3.2, 3.5, "s1"), (3.5, 9.0, "s1")]
    result = postprocess(make_raw(turns, duration=10.0), PostprocessOptions.off())
    assert result.labels == ["A", "B"]
    assert result.segments == [
        Segment("A", 0.0, 0.4),
        Segment("B", 0.5, 3.0),
        Segment("A", 3.2, 3.5),
        Segment("A", 3.5, 9.0),
    ]
