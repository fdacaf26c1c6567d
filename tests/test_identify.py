"""Known-speaker identification on hand-made vectors: parsing, matching, renaming."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diarization.identify import apply_names, load_known_speakers, match_speakers
from diarization.identify import parse_known_speakers as parse
from diarization.schema import DiarizationResult, InputError, Match, Overlap, Segment

ALICE, BOB, CARL = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "must be a JSON object {name: [numbers]}, got list"),
        ({}, "got an empty object"),
        ({"Alice": []}, "'Alice' must be a non-empty list of finite numbers"),
        ({"Alice": [1, "x"]}, "'Alice' must be a non-empty list of finite numbers"),
        ({"Alice": [1, True]}, "'Alice' must be a non-empty list of finite numbers"),
        ({"Alice": [1, float("nan")]}, "'Alice' must be a non-empty list of finite numbers"),
        ({" ": [1.0]}, "a speaker name is empty"),
        ({"Alice": [1.0], "Alice ": [2.0]}, "speaker name 'Alice' appears twice"),
        ({"Alice": [1.0, 2.0], "Bob": [1.0]}, "vectors have different lengths [1, 2]"),
    ],
)
def test_invalid_known_speakers_are_input_errors(data, message):
    with pytest.raises(InputError) as error:
        parse(data)
    assert message in str(error.value)


def test_known_speakers_file(tmp_path):
    path = tmp_path / "team.json"
    path.write_text(json.dumps({"Alice": ALICE, "Bob": BOB}))
    known = load_known_speakers(path)
    assert list(known) == ["Alice", "Bob"] and known["Bob"].tolist() == BOB
    path.write_text("{not json")
    with pytest.raises(InputError, match="'team.json' is not valid JSON"):
        load_known_speakers(path)


def test_matches_are_one_to_one_and_above_the_threshold():
    detected = {"A": [0.9, 0.1, 0.0], "B": [0.8, 0.3, 0.0], "C": [0.0, 0.1, 1.0]}
    known = parse({"Alice": ALICE, "Bob": BOB})
    matches = match_speakers(detected, known, threshold=0.25)
    # A and B both resemble Alice most; the pairing gives Alice to A, Bob to B.
    assert matches["A"].name == "Alice" and matches["B"].name == "Bob"
    assert matches["A"].similarity == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert matches["B"].similarity == pytest.approx(0.3 / np.hypot(0.8, 0.3))
    # C is closest to Bob, but Bob is taken: C stays unidentified, closest recorded
    assert matches["C"] == Match(None, pytest.approx(0.1 / np.hypot(0.1, 1.0)), "Bob")


def test_below_threshold_keeps_the_letter_and_records_the_closest():
    matches = match_speakers({"A": [0.6, 0.8, 0.0]}, parse({"Alice": ALICE}), threshold=0.7)
    assert matches["A"] == Match(None, pytest.approx(0.6), "Alice")
    assert match_speakers({"A": [0.6, 0.8, 0.0]}, parse({"Alice": ALICE}), 0.6)["A"].name == "Alice"


def test_embeddings_from_another_model_are_refused():
    with pytest.raises(InputError, match="have 3 numbers but this pipeline's have 2"):
        match_speakers({"A": [1.0, 0.0]}, parse({"Alice": ALICE}), 0.5)


RESULT = DiarizationResult(
    segments=[Segment("A", 0, 5), Segment("B", 4, 9), Segment("A", 9, 12)],
    labels=["A", "B"],
    embeddings={"A": ALICE, "B": [0.0, 0.6, 0.8]},
    exclusive=[Segment("A", 0, 5), Segment("B", 5, 9), Segment("A", 9, 12)],
    overlaps=[Overlap(4, 5, ("A", "B"))],
)


def test_identified_speakers_are_renamed_everywhere():
    known = parse({"Alice": ALICE, "Bob": BOB})
    matches = match_speakers(RESULT.embeddings, known, threshold=0.7)
    named = apply_names(RESULT, matches, 0.7)
    assert named.labels == ["Alice", "B"]  # B's similarity to Bob is 0.6 < 0.7
    assert [s.speaker for s in named.segments] == ["Alice", "B", "Alice"]
    assert [s.speaker for s in named.exclusive] == ["Alice", "B", "Alice"]
    assert named.overlaps == [Overlap(4, 5, ("Alice", "B"))]
    assert list(named.embeddings) == ["Alice", "B"]
    output = named.to_dict()
    assert output["speakers"]["labels"] == ["Alice", "B"]
    assert output["identification"] == {
        "threshold": 0.7,
        "speakers": {
            "A": {"name": "Alice", "similarity": 1.0, "closest": "Alice"},
            "B": {"name": None, "similarity": pytest.approx(0.6), "closest": "Bob"},
        },
    }


def test_a_known_name_equal_to_an_unidentified_label_is_refused():
    known = parse({"B": ALICE})
    matches = match_speakers(RESULT.embeddings, known, threshold=0.7)
    with pytest.raises(InputError, match="known speaker name 'B' is also the label"):
        apply_names(RESULT, matches, 0.7)
