"""Shared fixtures: random-weight models in the real layouts, real speech, test audio."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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
    """The reference output.json shape plus the added keys, and the invariants every
    answer keeps."""
    added = ["exclusive_segments", "overlaps"]
    added += ["identification"] if "identification" in output else []
    assert list(output) == ["segments", "speakers", *added, "pipeline"]
    assert list(output["speakers"]) == ["count", "labels", "embeddings"]
    labels = output["speakers"]["labels"]
    dimension = output["pipeline"]["embedding_dimension"]
    assert output["speakers"]["count"] == len(labels)
    assert list(output["speakers"]["embeddings"]) == labels
    for vector in output["speakers"]["embeddings"].values():
        assert len(vector) == dimension and all(np.isfinite(vector))
    for key in ("segments", "exclusive_segments"):
        starts = []
        for segment in output[key]:
            assert list(segment) == ["speaker", "start", "stop", "start_seconds", "stop_seconds"]
            assert segment["speaker"] in labels
            start, stop = check_times(segment, duration)
            starts.append(start)
        assert starts == sorted(starts)
    first_seen = list(dict.fromkeys(s["speaker"] for s in output["segments"]))
    assert first_seen == labels
    for overlap in output["overlaps"]:
        assert len(overlap["speakers"]) >= 2 and set(overlap["speakers"]) <= set(labels)
        check_times(overlap, duration)


def check_times(item: dict, duration: float) -> tuple[float, float]:
    """Both time formats of one item agree and lie inside the audio."""
    assert TIMESTAMP.match(item["start"]) and TIMESTAMP.match(item["stop"])
    start, stop = parse_timestamp(item["start"]), parse_timestamp(item["stop"])
    assert (start, stop) == pytest.approx((item["start_seconds"], item["stop_seconds"]), abs=1e-6)
    assert 0 <= start < stop <= duration + 1e-6
    return start, stop


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


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` are skipped where torch sees no CUDA GPU."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu:
        return
    import torch

    if not torch.cuda.is_available():
        for item in gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


def shared_file(relative: str) -> Path:
    """A file of ../shared/data; the test is skipped when the folder is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


# The real Cog HTTP server (`python -m cog.server.http`), shared by the server tests.

STARTUP_TIMEOUT_S = 180


def segmentation_out_of_memory_over(monkeypatch, size: int) -> None:
    """Make the segmentation model run out of memory on batches of more than `size`
    windows, as pyannote reports it on a GPU."""
    from pyannote.audio.core.inference import Inference

    original = Inference.infer

    def infer(self, chunks):
        if len(chunks) > size:
            raise MemoryError("batch_size (32) is probably too large (injected)")
        return original(self, chunks)

    monkeypatch.setattr(Inference, "infer", infer)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, path: str, body: dict | None = None, timeout: float = 300):
    """(status code, decoded JSON body) of a GET, or of a POST when `body` is given."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def data_uri(path: Path, mime: str = "audio/wav") -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


class CogServer:
    """A Cog HTTP server process serving predict.py, stopped on close."""

    def __init__(self, weights_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None):
        """Start the server; `extra_env` adds to (or overrides) the server's environment."""
        subprocess.run([sys.executable, "scripts/openapi_schema.py"], cwd=ROOT, check=True)
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            # The worker is started as `python` from PATH: it must be this venv's.
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            COG_PREDICT_TYPE_STUB="predict.py:Predictor",
            PORT=str(self.port),
            DIARIZATION_WEIGHTS_DIR=str(weights_dir),
            HF_HUB_OFFLINE="1",
        )
        env.update(extra_env or {})
        self.log = open(log_path, "wb")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_for_setup(self) -> dict:
        """The health check once setup has finished (READY or SETUP_FAILED)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                _, health = request(self.port, "/health-check", timeout=5)
                if health["status"] not in ("STARTING", None):
                    return health
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server not ready after {STARTUP_TIMEOUT_S} s")

    def health(self) -> str:
        """The health check's status: READY, BUSY, ..."""
        return request(self.port, "/health-check", timeout=10)[1]["status"]

    def wait_until_ready(self, timeout_s: float = 60) -> None:
        """Return once the health check says READY again.

        coglet 0.23.1 answers a prediction before its slot is back in the pool:
        for a few milliseconds after each response the health check says BUSY
        and a new prediction gets 409 "At capacity".
        """
        deadline = time.monotonic() + timeout_s
        while (status := self.health()) != "READY":
            if time.monotonic() > deadline:
                raise TimeoutError(f"server still {status} after {timeout_s} s")
            time.sleep(0.01)

    def predict(self, inputs: dict, timeout: float = 300) -> tuple[int, dict]:
        """(status code, body) of one prediction, sent once the server is READY."""
        self.wait_until_ready()
        return request(self.port, "/predictions", {"input": inputs}, timeout)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


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


@pytest.fixture
def strict_fp32():
    """fp32 as pyannote runs it: TF32 off for cuBLAS and cuDNN (its `fix_reproducibility`,
    called on every pipeline and segmentation run). Importing SpeechBrain switches both
    on (its `allow_tf32` quirk), so a test that compares fp32 results on a GPU outside
    pyannote's calls needs this. Both flags are restored afterwards."""
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
