"""The segmentation run on audio while ffmpeg decodes it: stock's outputs, stock's errors."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pyannote.audio.core.inference import Inference

from conftest import segmentation_out_of_memory_over, shared_file
from diarization import AudioDecodeError, InputError, SpeakerCount, audio
from diarization.audio import AudioLimitError, DecodeLimits, decode_audio, open_audio
from diarization.pyannote_pipeline import PyannotePipeline, load_models
from diarization.streamed_segmentation import slide_while_decoding

SPEECH = shared_file("real/pyannote_sample.wav")

# ffmpeg's output passed on 32 000 bytes (0.5 s of audio) every 10 ms: decoding that
# lasts as long as the segmentation, so that the two overlap in every test
_SLOW_PIPE = (
    "import sys, time\n"
    "while chunk := sys.stdin.buffer.read(32000):\n"
    "    sys.stdout.buffer.write(chunk); sys.stdout.buffer.flush(); time.sleep(0.01)\n"
)


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def slow_ffmpeg(tmp_path, monkeypatch) -> None:
    """ffmpeg, its output trickling out (`_SLOW_PIPE`)."""
    pipe = tmp_path / "slow_pipe.py"
    pipe.write_text(_SLOW_PIPE)
    real = shutil.which("ffmpeg")
    script = f"#!/bin/sh\nset -e\n'{real}' \"$@\" | '{sys.executable}' '{pipe}'\n"
    monkeypatch.setattr(audio, "_FFMPEG", str(_executable(tmp_path / "ffmpeg", script)))


def _encode(tmp_path: Path, seconds: float, suffix: str) -> Path:
    """`seconds` of real speech (looped) in a compressed format: only ffmpeg reads it."""
    path = tmp_path / f"speech{suffix}"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-stream_loop", "-1", "-i", str(SPEECH)]
        + ["-t", str(seconds), "-ac", "2", str(path)],
        check=True,
    )
    return path


@pytest.fixture(scope="module")
def pipeline(random_weights):
    return load_models(random_weights, torch.device("cpu"))


def _watch_batches(monkeypatch, decoding) -> list[tuple[int, bool]]:
    """(windows, whether decoding had ended) of each segmentation batch."""
    batches = []
    original = Inference.infer

    def infer(self, chunks):
        batches.append((len(chunks), decoding.finished))
        return original(self, chunks)

    monkeypatch.setattr(Inference, "infer", infer)
    return batches


# shorter than a window; whole windows to the end (5 s + 30 steps); several batches
# and a last window padded with zeros
@pytest.mark.parametrize(
    ("seconds", "suffix", "batch_size", "batches"),
    [
        (3.2, ".mp3", 4, [1]),
        (20.0, ".flac", 8, [8, 8, 8, 7]),
        (37.3, ".mp3", 16, [16] * 4 + [1, 1]),
    ],
)
def test_streamed_segmentation_is_stocks_to_the_bit(
    pipeline, slow_ffmpeg, tmp_path, monkeypatch, seconds, suffix, batch_size, batches
):
    path = _encode(tmp_path, seconds, suffix)
    inference = pipeline._segmentation
    monkeypatch.setattr(inference, "batch_size", batch_size)
    progress = []
    with torch.inference_mode(), open_audio(path) as decoding, monkeypatch.context() as patch:
        seen = _watch_batches(patch, decoding)
        got = slide_while_decoding(inference, decoding, lambda **kw: progress.append(kw))
    with torch.inference_mode():
        waveform = decoding.waveform()
        expected = inference({"waveform": torch.from_numpy(waveform)[None], "sample_rate": 16000})
    np.testing.assert_array_equal(waveform, decode_audio(path))
    assert got.data.dtype == expected.data.dtype
    np.testing.assert_array_equal(got.data, expected.data)
    frames = (got.sliding_window.start, got.sliding_window.duration, got.sliding_window.step)
    assert frames == (0.0, inference.duration, inference.step)
    assert frames == (
        expected.sliding_window.start,
        expected.sliding_window.duration,
        expected.sliding_window.step,
    )
    assert [size for size, _ in seen] == batches
    if len(batches) > 2:  # the first batches ran while ffmpeg was decoding the rest
        assert not seen[0][1]
    windows = len(expected.data)
    assert progress[-1] == {"completed": windows, "total": windows}
    assert all(step["completed"] < step["total"] for step in progress[:-1])


def test_without_a_declared_duration_progress_comes_at_the_end(
    pipeline, slow_ffmpeg, tmp_path, monkeypatch
):
    path = _encode(tmp_path, 30.0, ".mp3")
    monkeypatch.setattr(pipeline._segmentation, "batch_size", 8)
    progress = []
    with torch.inference_mode(), open_audio(path) as decoding:
        assert decoding.declared_duration_s == pytest.approx(30.0, abs=0.1)
        decoding.declared_duration_s = None  # as a stream that does not say
        got = slide_while_decoding(
            pipeline._segmentation, decoding, lambda **kw: progress.append(kw)
        )
    # about 51 windows in batches of 8, and no guess of how many are to come
    assert progress == [{"completed": len(got.data), "total": len(got.data)}]


def test_a_waveform_is_slid_over_the_same_way(pipeline, monkeypatch):
    # the audio given decoded (a WAV read directly, a library call) takes the same
    # path: pyannote's scores, exact progress, the file's waveform left as it was
    from pyannote.audio.pipelines import SpeakerDiarization

    from diarization import pyannote_stages

    slid = []
    original = pyannote_stages.slide_while_decoding
    monkeypatch.setattr(
        pyannote_stages,
        "slide_while_decoding",
        lambda inference, audio, hook: (
            slid.append(audio.finished) or original(inference, audio, hook)
        ),
    )
    monkeypatch.setattr(pipeline._segmentation, "batch_size", 16)
    waveform = torch.from_numpy(decode_audio(SPEECH))[None]
    file = {"waveform": waveform, "sample_rate": 16000}
    progress = []
    with torch.inference_mode():
        got = pipeline.get_segmentations(file, lambda *args, **kw: progress.append(kw))
        expected = SpeakerDiarization.get_segmentations(pipeline, file)
    assert slid == [True] and file["waveform"] is waveform
    np.testing.assert_array_equal(got.data, expected.data)
    # batches of 16: each step says how many windows there are
    windows = len(expected.data)
    assert windows > 32
    assert [step["completed"] for step in progress] == [*range(16, windows, 16), windows]
    assert {step["total"] for step in progress} == {windows}


def test_samples_read_while_decoding_are_the_final_waveform(slow_ffmpeg, tmp_path):
    path = _encode(tmp_path, 12.0, ".mp3")
    with open_audio(path) as decoding:
        assert not decoding.finished and decoding.seconds is None
        assert decoding.declared_duration_s == pytest.approx(12.0, abs=0.1)
        assert decoding.available(16000) == 16000
        early = decoding.read(0, 16000)
        assert not decoding.finished
        waveform = decoding.waveform()
        assert decoding.finished and decoding.seconds > 0
        assert decoding.available(10**9) == len(waveform)
        np.testing.assert_array_equal(decoding.read(16000, 10**9), waveform[16000:])
    np.testing.assert_array_equal(early, waveform[:16000])
    np.testing.assert_array_equal(waveform, decode_audio(path))


def test_non_finite_samples_read_while_decoding_are_cleaned(tmp_path, monkeypatch):
    samples = np.full(32000, 0.25, np.float32)
    samples[[5, 70, 31999]] = [np.nan, np.inf, -np.inf]
    raw = tmp_path / "samples.f32"
    raw.write_bytes(samples.astype("<f4").tobytes())
    stub = f"#!/bin/sh\ncat '{raw}'\nsleep 0.5\n"
    monkeypatch.setattr(audio, "_FFMPEG", str(_executable(tmp_path / "ffmpeg", stub)))
    expected = np.where(np.isfinite(samples), samples, 0)
    with open_audio(_encode(tmp_path, 2.0, ".mp3")) as decoding:
        assert decoding.available(32000) == 32000
        np.testing.assert_array_equal(decoding.read(0, 32000), expected)
        np.testing.assert_array_equal(decoding.waveform(), expected)


def _failing_ffmpeg(tmp_path: Path, monkeypatch, seconds: float) -> None:
    """An ffmpeg that writes `seconds` of silence (slowly), then fails on a damaged packet."""
    pipe = tmp_path / "slow_pipe.py"
    pipe.write_text(_SLOW_PIPE)
    script = (
        f"#!/bin/sh\nhead -c {int(seconds * 16000) * 4} /dev/zero | '{sys.executable}' '{pipe}'\n"
        "echo 'Invalid data found when processing input' >&2\nexit 1\n"
    )
    monkeypatch.setattr(audio, "_FFMPEG", str(_executable(tmp_path / "ffmpeg", script)))


def test_ffmpeg_failing_mid_stream_fails_the_diarization(diarizer, tmp_path, monkeypatch):
    path = _encode(tmp_path, 2.0, ".mp3")
    _failing_ffmpeg(tmp_path, monkeypatch, 40)
    segmented = []
    original = Inference.infer
    monkeypatch.setattr(
        Inference,
        "infer",
        lambda self, chunks: segmented.append(len(chunks)) or original(self, chunks),
    )
    with pytest.raises(AudioDecodeError, match="Invalid data found when processing input"):
        diarizer.diarize(path)
    # the first batch (20.5 s) was segmented before the error came, the second (36.5 s)
    # too unless the error came first
    assert segmented in ([32], [32, 32])


def test_the_duration_limit_stops_a_streamed_segmentation(pipeline, slow_ffmpeg, tmp_path):
    path = _encode(tmp_path, 30.0, ".mp3")
    limits = DecodeLimits(max_duration_s=12)
    with (
        torch.inference_mode(),
        open_audio(path, limits=limits) as decoding,
        pytest.raises(AudioLimitError, match="longer than the limit of 12 s"),
    ):
        slide_while_decoding(pipeline._segmentation, decoding)


def _hung_ffmpeg(tmp_path: Path, monkeypatch) -> Path:
    pid_file = tmp_path / "ffmpeg.pid"
    script = f"#!/bin/sh\necho $$ > '{pid_file}'\nexec sleep 600\n"
    monkeypatch.setattr(audio, "_FFMPEG", str(_executable(tmp_path / "ffmpeg", script)))
    return pid_file


def _started_pid(pid_file: Path, wait_s: float = 5) -> int | None:
    """The stub's PID once it has written it; None if it never ran that far."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text().strip():
            return int(pid_file.read_text())
        time.sleep(0.05)
    return None


def _assert_killed(pid_file: Path) -> None:
    # a stub killed before it wrote its PID never runs; one left running writes it
    pid = _started_pid(pid_file, wait_s=1)
    if pid is not None:
        with pytest.raises(ProcessLookupError):  # killed and reaped, not a zombie
            os.kill(pid, 0)


def test_closing_stops_ffmpeg(tmp_path, monkeypatch):
    pid_file = _hung_ffmpeg(tmp_path, monkeypatch)
    decoding = open_audio(_encode(tmp_path, 2.0, ".mp3"))
    assert _started_pid(pid_file) is not None
    started = time.monotonic()
    decoding.close()
    assert time.monotonic() - started < 5
    assert decoding.finished
    _assert_killed(pid_file)


def test_a_refused_option_stops_the_decoding(diarizer, tmp_path, monkeypatch):
    pid_file = _hung_ffmpeg(tmp_path, monkeypatch)
    path = _encode(tmp_path, 2.0, ".mp3")
    for option in ({"identification_threshold": 3.0}, {"clustering_threshold": 7.0}):
        pid_file.unlink(missing_ok=True)
        with pytest.raises(InputError, match=next(iter(option))):
            diarizer.diarize(path, **option)
        _assert_killed(pid_file)


def _same_diarization(got, expected) -> None:
    assert got.turns == expected.turns
    assert got.duration == expected.duration
    assert got.centroids.keys() == expected.centroids.keys()
    for label, centroid in expected.centroids.items():
        np.testing.assert_array_equal(got.centroids[label], centroid)


# the fast pipeline segments the first 32 windows while ffmpeg decodes the rest, stock's
# waits for the waveform
@pytest.mark.parametrize(
    ("stock", "seconds", "batches"),
    [(False, 21.0, [(32, False), (1, True)]), (True, 8.0, [(7, True)])],
    ids=["fast", "stock-waits"],
)
def test_pipeline_on_audio_being_decoded_gives_the_waveforms_result(
    random_weights, slow_ffmpeg, tmp_path, monkeypatch, stock, seconds, batches
):
    runner = PyannotePipeline(load_models(random_weights, torch.device("cpu"), stock=stock))
    path = _encode(tmp_path, seconds, ".flac")
    waveform = decode_audio(path)
    speakers = SpeakerCount(num_speakers=2)  # random weights alone find one speaker
    expected = runner(waveform, 16000, speakers)
    with open_audio(path) as decoding:
        seen = _watch_batches(monkeypatch, decoding)
        got = runner(decoding, 16000, speakers)
    _same_diarization(got, expected)
    assert len(got.turns) > 1
    assert seen == batches


def test_out_of_memory_while_decoding_retries_on_the_waveform(
    diarizer, slow_ffmpeg, tmp_path, monkeypatch, caplog
):
    path = _encode(tmp_path, 12.0, ".mp3")
    expected = diarizer.pipeline(decode_audio(path), 16000)
    segmentation_out_of_memory_over(monkeypatch, 2)
    with open_audio(path) as decoding:
        got = diarizer.pipeline(decoding, 16000)
    assert "segmentation ran out of memory: retrying after the decoding" in caplog.text
    assert "retrying with batch size 2" in caplog.text
    _same_diarization(got, expected)


@pytest.mark.gpu
def test_on_a_gpu_streamed_segmentation_is_pyannotes_from_the_audio_there(
    random_weights, slow_ffmpeg, tmp_path
):
    # 256 windows a batch (GPU_SEGMENTATION_BATCH_SIZE), against pyannote's stage on the
    # whole waveform put on the GPU first (`_audio_on`), as the waveform was segmented
    # before it went through `slide_while_decoding` too
    from pyannote.audio.pipelines import SpeakerDiarization

    pipeline = load_models(random_weights, torch.device("cuda"))
    path = _encode(tmp_path, 140.0, ".mp3")
    with torch.inference_mode():
        with open_audio(path) as decoding:
            file = {"decoding": decoding, "sample_rate": 16000}
            got = pipeline.get_segmentations(file)
        assert file["waveform"].shape == (1, len(decoding.waveform()))
        from_waveform = pipeline.get_segmentations(dict(file))
        there = pipeline._audio_on(dict(file), torch.device("cuda"))
        assert there["waveform"].is_cuda
        expected = SpeakerDiarization.get_segmentations(pipeline, there)
    assert got.data.shape == expected.data.shape
    assert got.data.shape[0] > 256  # more than one batch
    np.testing.assert_array_equal(got.data, expected.data)
    np.testing.assert_array_equal(from_waveform.data, expected.data)


def test_an_uninstantiated_pipeline_refuses_audio_being_decoded(pipeline, tmp_path):
    # as pyannote's own call refuses a waveform, before anything runs
    from diarization.pyannote_stages import FastSpeakerDiarization

    fresh = FastSpeakerDiarization(pipeline._segmentation.model, pipeline._embedding)
    with open_audio(_encode(tmp_path, 2.0, ".mp3")) as decoding:
        file = {"decoding": decoding, "sample_rate": 16000, "uri": "x"}
        with pytest.raises(RuntimeError, match="instantiate"):
            fresh(file)
        assert file["decoding"] is decoding  # nothing read it
