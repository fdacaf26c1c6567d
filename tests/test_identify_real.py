"""Identification on real speech with the bundled pipeline: the right names come back."""

from __future__ import annotations

import zipfile

import pytest

from conftest import shared_file
from diarization import Diarizer
from diarization.scoring import read_rttm


@pytest.fixture(scope="module")
def bundled():
    return Diarizer.load(pipeline="bundled", device="cpu")


@pytest.fixture
def team_zip(tmp_path):
    """One enrolment utterance per known speaker (not one used in the conversation),
    plus a speaker who is not in the conversation at all."""
    path = tmp_path / "team.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, relative in [
            ("Ann", "speakers/LS1688/1688-142285-0005.flac"),
            ("Beth", "speakers/LS1998/1998-15444-0005.flac"),
            ("Cora", "speakers/LS533/533-1066-0001.flac"),
        ]:
            archive.write(shared_file(relative), f"{name}.flac")
    return path


def test_known_speakers_get_their_names_on_a_real_conversation(bundled, team_zip):
    audio = shared_file("sim/dev_sim01_2spk.flac")
    reference = next(iter(read_rttm(shared_file("sim/dev_sim01_2spk.rttm")).values()))
    known = bundled.known_speakers(team_zip)
    assert list(known) == ["Ann", "Beth", "Cora"]
    result = bundled.diarize(audio, known_speakers=known)
    assert sorted(result.labels) == ["Ann", "Beth"]  # Cora never speaks: never named
    matches = result.identification.matches
    assert {m.name for m in matches.values()} == {"Ann", "Beth"}
    assert all(m.similarity >= result.identification.threshold for m in matches.values())
    # every output segment carries the name of the reference speaker talking there
    truth = {"LS1688": "Ann", "LS1998": "Beth"}
    for segment in result.exclusive:
        middle = (segment.start + segment.stop) / 2
        speaking = {
            truth[label]
            for s, _, label in reference.itertracks(yield_label=True)
            if s.start <= middle <= s.end
        }
        assert not speaking or segment.speaker in speaking, (segment, speaking)


def test_strangers_keep_their_letters(bundled, tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(shared_file("speakers/LS533/533-1066-0001.flac"), "Cora.flac")
        archive.write(shared_file("speakers/LS2033/2033-164914-0001.flac"), "Dan.flac")
    result = bundled.diarize(
        shared_file("sim/dev_sim01_2spk.flac"), known_speakers=bundled.known_speakers(path)
    )
    assert result.labels == ["A", "B"]
    assert all(m.name is None for m in result.identification.matches.values())
