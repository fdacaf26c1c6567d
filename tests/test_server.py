"""The real Cog HTTP server (`python -m cog.server.http`) on loopback, with random weights."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, check_output_shape, shared_file

STARTUP_TIMEOUT_S = 180


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

    def __init__(self, weights_dir: Path, log_path: Path):
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

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(random_weights, tmp_path_factory):
    server = CogServer(random_weights.root, tmp_path_factory.mktemp("server") / "server.log")
    health = server.wait_for_setup()
    assert health["status"] == "READY", health
    yield server
    server.close()


def test_prediction_returns_output_json(server):
    audio = shared_file("real/fw_stereo_diarization.wav")
    status, body = request(server.port, "/predictions", {"input": {"audio": data_uri(audio)}})
    assert status == 200 and body["status"] == "succeeded", body
    header, payload = body["output"].split(",", 1)
    assert header.startswith("data:") and header.endswith(";base64")
    check_output_shape(json.loads(base64.b64decode(payload)), duration=5.0)


def test_speaker_count_inputs_reach_the_pipeline(server):
    audio = shared_file("real/fw_stereo_diarization.wav")
    body = {"input": {"audio": data_uri(audio), "num_speakers": 1}}
    status, answer = request(server.port, "/predictions", body)
    assert status == 200 and answer["status"] == "succeeded", answer
    output = json.loads(base64.b64decode(answer["output"].split(",", 1)[1]))
    assert output["speakers"]["labels"] == ["A"]


@pytest.mark.parametrize(
    "inputs",
    [{}, {"audio": "data:audio/wav;base64,AAAA", "num_speakers": "two"}, {"num_speakers": 2}],
)
def test_missing_or_mistyped_input_is_422(server, inputs):
    status, _ = request(server.port, "/predictions", {"input": inputs})
    assert status == 422


def test_out_of_range_speaker_count_is_422(server):
    audio = shared_file("real/fw_stereo_diarization.wav")
    status, _ = request(
        server.port, "/predictions", {"input": {"audio": data_uri(audio), "num_speakers": 0}}
    )
    assert status == 422


def test_undecodable_audio_fails_with_a_clear_message(server):
    text = base64.b64encode(b"definitely not audio\n" * 50).decode()
    status, body = request(
        server.port, "/predictions", {"input": {"audio": f"data:audio/wav;base64,{text}"}}
    )
    assert status == 200
    assert body["status"] == "failed"
    assert "could not decode" in body["error"]
    assert body.get("output") is None
    _, health = request(server.port, "/health-check")
    assert health["status"] == "READY"


def test_contradictory_speaker_counts_fail_with_a_clear_message(server):
    audio = shared_file("real/fw_stereo_diarization.wav")
    inputs = {"audio": data_uri(audio), "min_speakers": 3, "max_speakers": 2}
    status, body = request(server.port, "/predictions", {"input": inputs})
    assert status == 200 and body["status"] == "failed"
    assert "min_speakers (3) is larger than max_speakers (2)" in body["error"]


def test_server_still_ready_after_failures(server):
    _, health = request(server.port, "/health-check")
    assert health["status"] == "READY"


def test_missing_weights_fail_setup_naming_the_file(tmp_path):
    server = CogServer(tmp_path / "no-weights", tmp_path / "server.log")
    try:
        health = server.wait_for_setup()
    finally:
        server.close()
    assert health["status"] == "SETUP_FAILED"
    expected = tmp_path / "no-weights" / "pyannote-segmentation" / "pytorch_model.bin"
    assert str(expected) in health["setup"]["logs"]
    assert "scripts/download_weights.py" in health["setup"]["logs"]
