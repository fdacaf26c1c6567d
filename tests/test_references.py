"""Known speakers from a zip of recordings, with a stand-in embedding function."""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from diarization.references import read_known_speakers
from diarization.schema import InputError


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def embed_bytes(recording: Path) -> np.ndarray:
    """A stand-in model: the recording's first three bytes as a vector."""
    data = recording.read_bytes()
    if data.startswith(b"silence"):
        raise InputError("no speech found in it")
    return np.frombuffer(data[:3], dtype=np.uint8).astype(float)


def test_each_recording_is_embedded_under_its_file_name(tmp_path):
    archive = make_zip(
        tmp_path / "team.zip",
        {
            "Alice.wav": b"\x01\x02\x03rest",
            "people/Bob Smith.m4a": b"\x04\x05\x06",
            "__MACOSX/._Alice.wav": b"junk",
            ".DS_Store": b"junk",
        },
    )
    before = set(Path(tempfile.gettempdir()).iterdir())
    known = read_known_speakers(archive, embed_bytes)
    assert list(known) == ["Alice", "Bob Smith"]
    assert known["Alice"].tolist() == [1.0, 2.0, 3.0]
    assert set(Path(tempfile.gettempdir()).iterdir()) == before  # nothing left behind


def test_json_file_is_read_as_embeddings(tmp_path):
    path = tmp_path / "known.json"
    path.write_text(json.dumps({"Alice": [0.5, 0.25]}))
    assert read_known_speakers(path, embed_bytes)["Alice"].tolist() == [0.5, 0.25]


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({}, "holds no recordings"),
        ({"a/Alice.wav": b"\x01\x02\x03", "b/Alice.mp3": b"\x01\x02\x03"}, "named 'Alice'"),
        ({"Carl.wav": b"silence..."}, "recording 'Carl.wav': no speech found in it"),
    ],
)
def test_bad_archives_are_input_errors(tmp_path, members, message):
    with pytest.raises(InputError, match=message):
        read_known_speakers(make_zip(tmp_path / "x.zip", members), embed_bytes)


def test_neither_json_nor_zip_is_an_input_error(tmp_path):
    path = tmp_path / "known.bin"
    path.write_bytes(b"\x00\x01 not json")
    with pytest.raises(InputError, match="is not valid JSON"):
        read_known_speakers(path, embed_bytes)
