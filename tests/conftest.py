"""Shared fixtures: random-weight models in the real layouts, real speech, test audio."""

from __future__ import annotations

import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

TIMESTAMP = re.compile(r"^\d+:\d\d:\d\d\.\d{6}$")


def parse_timestamp(text: str) -> float:
    hours, minutes, seconds = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def check_output_shape(output: dict, duration: float) -> None:
    """The reference output.json shape, and the invariants every answer keeps."""
    assert list(output) == ["segments", "speakers"]
    assert list(output["speakers"]) == ["count", "labels", "embeddings"]
    labels = output["speakers"]["labels"]
    assert output["speakers"]["count"] == len(labels)
    assert list(output["speakers"]["embeddings"]) == labels
    for vector in output["speakers"]["embeddings"].values():
        assert len(vector) == 192 and all(np.isfinite(vector))
    starts = []
    for segment in output["segments"]:
        assert list(segment) == ["speaker", "start", "stop"]
        assert segment["speaker"] in labels
        assert TIMESTAMP.match(segment["start"]) and TIMESTAMP.match(segment["stop"])
        start, stop = parse_timestamp(segment["start"]), parse_timestamp(segment["stop"])
        assert 0 <= start < stop <= duration + 1e-6
        starts.append(start)
    assert starts == sorted(starts)
    first_seen = list(dict.fromkeys(s["speaker"] for s in output["segments"]))
    assert first_seen == labels


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = 16000) -> Path:
    """Write mono or (num_samples, channels) float samples in [-1, 1] as 16-bit PCM."""
    data = np.clip(np.asarray(samples), -1.0, 1.0)
    channels = 1 if data.ndim == 1 else data.shape[1]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes((data * 32767).astype("<i2").tobytes())
    return path


def shared_file(relative: str) -> Path:
    """A file of ../shared/data; the test is skipped when the folder is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """A weights folder holding random-valued models in the published layouts."""
    from diarization.random_weights import write_random_weights

    return write_random_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture
def weights_copy(random_weights, tmp_path):
    """A private copy of the random weights that a test may damage."""
    from diarization.weights import WeightsLayout

    shutil.copytree(random_weights.root, tmp_path / "weights")
    return WeightsLayout(tmp_path / "weights")


@pytest.fixture(scope="session")
def diarizer(random_weights):
    """The seed pipeline loaded on the CPU from the random weights."""
    from diarization import Diarizer

    return Diarizer.load(random_weights, device="cpu")
