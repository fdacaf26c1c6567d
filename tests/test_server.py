"""The real Cog HTTP server (`python -m cog.server.http`) on loopback, with random weights."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import pytest

from conftest import ROOT, CogServer, check_output_shape, data_uri, shared_file


@pytest.fixture(scope="module")
def server(random_weights, tmp_path_factory):
    server = CogServer(random_weights.root, tmp_path_factory.mktemp("server") / "server.log")
    health = server.wait_for_setup()
    assert health["status"] == "READY", health
    yield server
    server.close()


def test_prediction_returns_output_json(server):
    audio = shared_file("real/fw_stereo_diarization.wav")
    status, body = server.predict({"audio": data_uri(audio)})
    assert status == 200 and body["status"] == "succeeded", body
    header, payload = body["output"].split(",", 1)
    assert header.startswith("data:") and header.endswith(";base64")
    check_output_shape(json.loads(base64.b64decode(payload)), duration=5.0)


def test_speaker_count_inputs_reach_the_pipeline(server):
    audio = shared_file("real/fw_stereo_diarization.wav")
    status, answer = server.predict({"audio": data_uri(audio), "num_speakers": 1})
    assert status == 200 and answer["status"] == "succeeded", answer
    output = json.loads(base64.b64decode(answer["output"].split(",", 1)[1]))
    assert output["speakers"]["labels"] == ["A"]


@pytest.mark.parametrize(
    "inputs",
    [{}, {"audio": "data:audio/wav;base64,AAAA", "num_speakers": "two"}, {"num_speakers": 2}],
)
def test_missing_or_mistyped_input_is_422(server, inputs):
    status, _ = server.predict(inputs)
    assert status == 422


def test_out_of_range_speaker_count_is_422(server):
    audio = shared_file("real/fw_stereo_diarization.wav")
    status, _ = server.predict({"audio": data_uri(audio), "num_speakers": 0})
    assert status == 422


def test_undecodable_audio_fails_with_a_clear_message(server):
    text = base64.b64encode(b"definitely not audio\n" * 50).decode()
    status, body = server.predict({"audio": f"data:audio/wav;base64,{text}"})
    assert status == 200
    assert body["status"] == "failed"
    assert "could not decode" in body["error"]
    assert body.get("output") is None
    server.wait_until_ready()
    assert server.health() == "READY"


def test_contradictory_speaker_counts_fail_with_a_clear_message(server):
    audio = shared_file("real/fw_stereo_diarization.wav")
    inputs = {"audio": data_uri(audio), "min_speakers": 3, "max_speakers": 2}
    status, body = server.predict(inputs)
    assert status == 200 and body["status"] == "failed"
    assert "min_speakers (3) is larger than max_speakers (2)" in body["error"]


def predict_output(server, **inputs) -> bytes:
    """The decoded output file of a prediction that must succeed."""
    audio = shared_file("real/fw_stereo_diarization.wav")
    status, body = server.predict({"audio": data_uri(audio), **inputs})
    assert status == 200 and body["status"] == "succeeded", body
    return base64.b64decode(body["output"].split(",", 1)[1])


def test_rttm_output(server):
    lines = predict_output(server, output_format="rttm").decode().splitlines()
    assert lines and all(len(line.split()) == 10 for line in lines)
    assert all(line.startswith("SPEAKER audio 1 ") for line in lines)


def test_zip_output_holds_json_rttm_and_timeline(server):
    with zipfile.ZipFile(io.BytesIO(predict_output(server, output_format="zip"))) as archive:
        assert sorted(archive.namelist()) == ["output.json", "output.rttm", "timeline.png"]
        check_output_shape(json.loads(archive.read("output.json")), duration=5.0)
        assert archive.read("timeline.png")[:4] == b"\x89PNG"


def test_postprocessing_controls_reach_the_post_processor(server):
    default = json.loads(predict_output(server, num_speakers=2))
    kept = json.loads(
        predict_output(
            server, num_speakers=2, min_segment_duration=0, min_speaker_share=0, max_merge_gap=0
        )
    )
    # with every rule off, nothing is dropped or merged: at least as many segments
    assert len(kept["segments"]) >= len(default["segments"])
    assert kept["speakers"]["count"] >= default["speakers"]["count"]


def test_progress_is_logged_per_stage(server):
    audio = shared_file("real/fw_stereo_diarization.wav")
    _, body = server.predict({"audio": data_uri(audio)})
    for stage in ("decode", "segmentation", "embeddings", "clustering", "postprocess"):
        assert f"stage {stage}:" in body["logs"]
    # logged by the thread that collects ffmpeg's output (a stereo file: ffmpeg decodes it)
    assert "s of audio in" in body["logs"] and "2 channels at 16000 Hz" in body["logs"]
    assert "embeddings: 100%" in body["logs"]


def test_server_still_ready_after_failures(server):
    server.wait_until_ready()
    assert server.health() == "READY"


def test_missing_weights_fail_setup_naming_the_file(tmp_path):
    # A deployment that requires the seed pipeline says so; "auto" would fall back.
    server = CogServer(
        tmp_path / "no-weights", tmp_path / "server.log", {"DIARIZATION_PIPELINE": "pyannote"}
    )
    try:
        health = server.wait_for_setup()
    finally:
        server.close()
    assert health["status"] == "SETUP_FAILED"
    expected = tmp_path / "no-weights" / "pyannote-segmentation" / "pytorch_model.bin"
    assert str(expected) in health["setup"]["logs"]
    assert "scripts/download_weights.py" in health["setup"]["logs"]


def test_known_speakers_take_their_names(server, tmp_path):
    first = json.loads(predict_output(server, num_speakers=2, min_speaker_share=0))
    labels = first["speakers"]["labels"]
    known = {"Alice": first["speakers"]["embeddings"][labels[0]]}
    path = tmp_path / "known.json"
    path.write_text(json.dumps(known))
    named = json.loads(
        predict_output(
            server,
            num_speakers=2,
            min_speaker_share=0,
            known_speakers=data_uri(path, "application/json"),
        )
    )
    # the same recording gives the same embedding: similarity 1 with Alice's
    assert named["speakers"]["labels"][0] == "Alice"
    assert named["speakers"]["labels"][1:] == labels[1:]
    match = named["identification"]["speakers"][labels[0]]
    assert match["name"] == "Alice" and match["similarity"] == pytest.approx(1.0, abs=1e-6)
    assert {s["speaker"] for s in named["segments"]} == set(named["speakers"]["labels"])
    check_output_shape(named, duration=5.0)


def test_invalid_known_speakers_fail_clearly(server, tmp_path):
    path = tmp_path / "known.json"
    path.write_text(json.dumps({"Alice": [1.0, 2.0]}))
    audio = shared_file("real/fw_stereo_diarization.wav")
    inputs = {"audio": data_uri(audio), "known_speakers": data_uri(path, "application/json")}
    status, body = server.predict(inputs)
    assert status == 200 and body["status"] == "failed"
    assert "have 2 numbers but this pipeline's have 192" in body["error"]


CRASH_ONCE = """
import sys

sys.path.insert(0, {root!r})  # sitecustomize runs before the project is on sys.path
import diarization.diarizer as d

_original = d.Diarizer.diarize_waveform
_calls = []


def _crash_once(self, *args, **kwargs):
    _calls.append(1)
    if len(_calls) == 1:
        raise RuntimeError("injected crash inside the pipeline")
    return _original(self, *args, **kwargs)


d.Diarizer.diarize_waveform = _crash_once
"""


def test_a_crash_inside_the_pipeline_fails_that_prediction_only(random_weights, tmp_path):
    # sitecustomize runs in every Python the server starts, the Cog worker included
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sitecustomize.py").write_text(CRASH_ONCE.format(root=str(ROOT)))
    server = CogServer(
        random_weights.root, tmp_path / "server.log", {"PYTHONPATH": str(tmp_path / "inject")}
    )
    try:
        assert server.wait_for_setup()["status"] == "READY"
        audio = {"audio": data_uri(shared_file("real/fw_stereo_diarization.wav"))}
        status, crashed = server.predict(audio)
        assert status == 200 and crashed["status"] == "failed"
        assert "injected crash inside the pipeline" in crashed["error"]
        status, after = server.predict(audio)
        assert status == 200 and after["status"] == "succeeded", after
        server.wait_until_ready()
        assert server.health() == "READY"
    finally:
        server.close()
