"""Tests of `diarization.schema`: timestamps, the output document, speaker-count checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diarization.schema import (
    MAX_SPEAKERS_LIMIT,
    DiarizationResult,
    InputError,
    Overlap,
    PipelineInfo,
    Segment,
    SpeakerCount,
    format_timestamp,
)

# --- format_timestamp -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0:00:00.000000"),
        (0.0, "0:00:00.000000"),
        (-0.0, "0:00:00.000000"),
        (5.0, "0:00:05.000000"),
        (5, "0:00:05.000000"),
        (0.1, "0:00:00.100000"),
        (0.497812, "0:00:00.497812"),
        (12.345678, "0:00:12.345678"),
        (3725.5, "1:02:05.500000"),
        (1e-6, "0:00:00.000001"),
        (4e-7, "0:00:00.000000"),  # rounds down to the microsecond
        (6e-7, "0:00:00.000001"),  # rounds up to the microsecond
        (1.0000004, "0:00:01.000000"),
        (1.9999996, "0:00:02.000000"),  # rounding carries into the seconds
        (59.9999996, "0:01:00.000000"),  # ... into the minutes
        (3599.9999996, "1:00:00.000000"),  # ... into the hours
        # Beyond a day, datetime.timedelta's own spelling (as the reference prints it).
        (86400, "1 day, 0:00:00.000000"),
        (90000, "1 day, 1:00:00.000000"),
        (172800.5, "2 days, 0:00:00.500000"),
        (np.float64(2.25), "0:00:02.250000"),
    ],
)
def test_format_timestamp(seconds, expected):
    assert format_timestamp(seconds) == expected


@pytest.mark.parametrize("seconds", [-1e-9, -0.5, -1, -3725.5])
def test_format_timestamp_rejects_negative(seconds):
    with pytest.raises(ValueError, match="never negative") as excinfo:
        format_timestamp(seconds)
    assert str(excinfo.value) == f"timestamps are never negative, got {seconds}"


# --- DiarizationResult ----------------------------------------------------------------

SMALL = DiarizationResult(
    segments=[Segment("A", 0.5, 3.0), Segment("B", 2.25, 10.0), Segment("A", 12.0, 13.497812)],
    labels=["A", "B"],
    # Deliberately not in label order: the document follows `labels`.
    embeddings={"B": [0.5, -1.0], "A": [1.0, 2.25]},
    exclusive=[Segment("A", 0.5, 2.25), Segment("B", 2.25, 10.0), Segment("A", 12.0, 13.497812)],
    overlaps=[Overlap(2.25, 3.0, ("A", "B"))],
    pipeline=PipelineInfo("bundled", "resemblyzer GE2E", 2),
)


def times(start: str, stop: str, start_s: float, stop_s: float) -> dict:
    return {"start": start, "stop": stop, "start_seconds": start_s, "stop_seconds": stop_s}


def test_to_dict_exact():
    assert SMALL.to_dict() == {
        "segments": [
            {"speaker": "A", **times("0:00:00.500000", "0:00:03.000000", 0.5, 3.0)},
            {"speaker": "B", **times("0:00:02.250000", "0:00:10.000000", 2.25, 10.0)},
            {"speaker": "A", **times("0:00:12.000000", "0:00:13.497812", 12.0, 13.497812)},
        ],
        "speakers": {
            "count": 2,
            "labels": ["A", "B"],
            "embeddings": {"A": [1.0, 2.25], "B": [0.5, -1.0]},
        },
        "exclusive_segments": [
            {"speaker": "A", **times("0:00:00.500000", "0:00:02.250000", 0.5, 2.25)},
            {"speaker": "B", **times("0:00:02.250000", "0:00:10.000000", 2.25, 10.0)},
            {"speaker": "A", **times("0:00:12.000000", "0:00:13.497812", 12.0, 13.497812)},
        ],
        "overlaps": [
            {"speakers": ["A", "B"], **times("0:00:02.250000", "0:00:03.000000", 2.25, 3.0)}
        ],
        "pipeline": {
            "name": "bundled",
            "embedding_model": "resemblyzer GE2E",
            "embedding_dimension": 2,
        },
    }


def test_to_dict_key_order_starts_with_the_reference_keys():
    document = SMALL.to_dict()
    assert list(document) == ["segments", "speakers", "exclusive_segments", "overlaps", "pipeline"]
    reference_keys = ["speaker", "start", "stop"]
    assert [list(s)[:3] for s in document["segments"]] == [reference_keys] * 3
    assert list(document["speakers"]) == ["count", "labels", "embeddings"]
    assert list(document["speakers"]["embeddings"]) == ["A", "B"]


def test_to_json_is_the_indented_document():
    text = SMALL.to_json()
    assert text.startswith('{\n  "segments": [\n    {\n      "speaker": "A",\n')
    assert json.loads(text) == SMALL.to_dict()


def test_to_dict_does_not_share_lists_with_the_result():
    document = SMALL.to_dict()
    document["speakers"]["labels"].append("Z")
    document["speakers"]["embeddings"]["A"].append(9.0)
    assert SMALL.labels == ["A", "B"]
    assert SMALL.embeddings["A"] == [1.0, 2.25]


def test_empty_result_document():
    empty = DiarizationResult(segments=[], labels=[])
    assert empty.to_dict() == {
        "segments": [],
        "speakers": {"count": 0, "labels": [], "embeddings": {}},
        "exclusive_segments": [],
        "overlaps": [],
    }
    assert json.loads(empty.to_json()) == empty.to_dict()


# --- SpeakerCount ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num", "lo", "hi"),
    [
        (None, None, None),
        (1, None, None),
        (MAX_SPEAKERS_LIMIT, None, None),
        (None, 1, None),
        (None, None, MAX_SPEAKERS_LIMIT),
        (None, 1, MAX_SPEAKERS_LIMIT),
        (None, 2, 2),
        (None, 2, 5),
        (2, 2, 2),
        (3, 2, 5),
        (2, 2, None),
        (5, None, 5),
        (np.int64(3), np.int32(2), np.int16(4)),
    ],
)
def test_speaker_count_accepts(num, lo, hi):
    count = SpeakerCount(num_speakers=num, min_speakers=lo, max_speakers=hi)
    assert (count.num_speakers, count.min_speakers, count.max_speakers) == (num, lo, hi)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_speakers": 0}, "num_speakers must be between 1 and 50, got 0"),
        ({"num_speakers": 51}, "num_speakers must be between 1 and 50, got 51"),
        ({"num_speakers": -1}, "num_speakers must be between 1 and 50, got -1"),
        ({"min_speakers": 0}, "min_speakers must be between 1 and 50, got 0"),
        ({"min_speakers": 51}, "min_speakers must be between 1 and 50, got 51"),
        ({"max_speakers": -1}, "max_speakers must be between 1 and 50, got -1"),
        ({"max_speakers": 51}, "max_speakers must be between 1 and 50, got 51"),
        ({"num_speakers": 2.5}, "num_speakers must be a whole number, got 2.5"),
        ({"num_speakers": True}, "num_speakers must be a whole number, got True"),
        ({"min_speakers": False}, "min_speakers must be a whole number, got False"),
        ({"max_speakers": "3"}, "max_speakers must be a whole number, got '3'"),
        (
            {"num_speakers": np.bool_(True)},
            f"num_speakers must be a whole number, got {np.bool_(True)!r}",
        ),
        (
            {"min_speakers": 5, "max_speakers": 3},
            "min_speakers (5) is larger than max_speakers (3)",
        ),
        (
            {"min_speakers": 4, "max_speakers": 3},
            "min_speakers (4) is larger than max_speakers (3)",
        ),
        (
            {"num_speakers": 2, "min_speakers": 3},
            "num_speakers (2) is smaller than min_speakers (3)",
        ),
        (
            {"num_speakers": 4, "max_speakers": 3},
            "num_speakers (4) is larger than max_speakers (3)",
        ),
        (
            {"num_speakers": 4, "min_speakers": 1, "max_speakers": 3},
            "num_speakers (4) is larger than max_speakers (3)",
        ),
    ],
)
def test_speaker_count_rejects(kwargs, message):
    with pytest.raises(InputError) as excinfo:
        SpeakerCount(**kwargs)
    assert str(excinfo.value) == message


def test_input_error_is_a_value_error():
    with pytest.raises(ValueError):
        SpeakerCount(num_speakers=0)
