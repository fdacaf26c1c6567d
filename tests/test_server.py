"""The real Cog HTTP server (`python -m cog.server.http`) on loopback, with random weights."""

from __future__ import annotations

import base64
import json

import pytest

from conftest import CogServer, check_output_shape, data_uri, request, shared_file


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
