"""Tests for diarization.audio: every input is generated here (numpy, wave, ffmpeg)."""

from __future__ import annotations

import logging
import math
import shutil
import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from diarization import audio
from diarization.audio import (
    SAMPLE_RATE,
    AudioDecodeError,
    FFmpegNotFoundError,
    decode_audio,
    duration_seconds,
)

DURATION_S = 1.5
EXPECTED_SAMPLES = int(DURATION_S * SAMPLE_RATE)  # 24000
TONE_HZ = 440.0
AMPLITUDE = 0.5
# The native AAC encoder pads the last frame (1024 samples at the encoding rate)
# and ffmpeg 5.1 does not trim that padding: at 48 kHz that is at most
# ceil(1024 / 3) = 342 extra samples at 16 kHz. Priming at the start is trimmed.
AAC_PADDING_SAMPLES_48K = math.ceil(1024 * SAMPLE_RATE / 48000)

requires_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


# ---------------------------------------------------------------------------
# Input generation
# ---------------------------------------------------------------------------


def _sine(sample_rate: int, freq_hz: float = TONE_HZ, amplitude: float = AMPLITUDE) -> np.ndarray:
    t = np.arange(round(DURATION_S * sample_rate)) / sample_rate
    return amplitude * np.sin(2 * np.pi * freq_hz * t)


def _write_pcm16_wav(path: Path, samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Write (num_samples,) or (num_samples, num_channels) floats; return what was stored."""
    frames = samples if samples.ndim == 2 else samples[:, None]
    pcm = np.round(frames * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    # ffmpeg converts s16 to float as x / 32768, exactly.
    stored = pcm.astype(np.float64) / 32768
    return stored if samples.ndim == 2 else stored[:, 0]


def _write_float32_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write a mono IEEE-float WAV (the `wave` module only writes integer PCM)."""
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHHH", 3, 1, sample_rate, sample_rate * 4, 4, 32, 0)  # 3: IEEE float
    fact = struct.pack("<I", len(samples))
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<I", len(fact))
        + fact
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        capture_output=True,
    )


def _dominant_frequency_hz(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return float(np.argmax(spectrum)) * sample_rate / len(waveform)


def _peak_amplitude(waveform: np.ndarray) -> float:
    """Amplitude of a pure tone from the RMS of its middle, away from codec edge effects."""
    middle = waveform[len(waveform) // 6 : -len(waveform) // 6]
    return float(np.sqrt(np.mean(middle.astype(np.float64) ** 2)) * math.sqrt(2))


def _assert_mono_float32(waveform: np.ndarray) -> None:
    assert waveform.dtype == np.float32
    assert waveform.ndim == 1
    assert waveform.flags.c_contiguous
    assert waveform.flags.writeable


@pytest.fixture(scope="module")
def encoders() -> set[str]:
    listing = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], check=True, capture_output=True, text=True
    ).stdout
    # Rows look like " A....D libmp3lame  libmp3lame MP3 ..."; the header ends at "------".
    rows = listing.split("------", 1)[-1].splitlines()
    return {row.split()[1] for row in rows if len(row.split()) > 1}


@pytest.fixture(scope="module")
def source_48k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.5 s of a 440 Hz tone at 48 kHz, the source for every compressed format."""
    path = tmp_path_factory.mktemp("source") / "tone_48k.wav"
    _write_pcm16_wav(path, _sine(48000), 48000)
    return path


# ---------------------------------------------------------------------------
# WAV
# ---------------------------------------------------------------------------


@requires_ffmpeg
def test_pcm16_wav_at_16k_decodes_sample_exact(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    stored = _write_pcm16_wav(path, _sine(SAMPLE_RATE), SAMPLE_RATE)

    waveform = decode_audio(path)

    _assert_mono_float32(waveform)
    np.testing.assert_array_equal(waveform, stored.astype(np.float32))


def _riff(*chunks: tuple[bytes, bytes]) -> bytes:
    """A RIFF WAVE file of (name, payload) chunks, each padded to an even size."""
    body = b"WAVE" + b"".join(
        name + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2)
        for name, data in chunks
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


_PCM16_MONO_16K = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, 2 * SAMPLE_RATE, 2, 16)
_EXTREMES = np.array([-32768, -32767, -1, 0, 1, 32766, 32767], "<i2")


def _plain_wav_bytes(layout: str, pcm: bytes) -> bytes:
    if layout == "plain":
        return _riff((b"fmt ", _PCM16_MONO_16K), (b"data", pcm))
    if layout == "chunks-around-data":  # metadata before and after the samples
        info = (b"LIST", b"INFOISFT\x05\0\0\0Lavf\0\0")
        return _riff((b"fmt ", _PCM16_MONO_16K), info, (b"data", pcm), info)
    if layout == "odd-data-length":  # half a sample at the end, then the padding byte
        return _riff((b"fmt ", _PCM16_MONO_16K), (b"data", pcm + b"\x7f"))
    if layout == "fmt-with-extension":  # an 18-byte fmt chunk (cbSize 0)
        return _riff((b"fmt ", _PCM16_MONO_16K + b"\0\0"), (b"data", pcm))
    raise ValueError(layout)


@requires_ffmpeg
@pytest.mark.parametrize(
    "layout", ["plain", "chunks-around-data", "odd-data-length", "fmt-with-extension"]
)
def test_16k_mono_pcm16_wav_is_read_directly_with_ffmpegs_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    # what ffmpeg would give (x / 32768), read without it: 1 hour in a fraction of the time
    pcm = np.concatenate(
        [_EXTREMES, np.random.default_rng(0).integers(-32768, 32768, 20000).astype("<i2")]
    )
    path = tmp_path / "speech.wav"
    path.write_bytes(_plain_wav_bytes(layout, pcm.tobytes()))
    ran = []
    run_ffmpeg, probe = audio._run_ffmpeg, audio._probe
    monkeypatch.setattr(audio, "_run_ffmpeg", lambda *a: ran.append("ffmpeg") or run_ffmpeg(*a))
    monkeypatch.setattr(audio, "_probe", lambda *a: ran.append("ffprobe") or probe(*a))

    direct = decode_audio(path)
    assert ran == []  # neither ffprobe nor ffmpeg ran
    _assert_mono_float32(direct)
    monkeypatch.setattr(audio, "_plain_wav_data", lambda *args: None)  # ffmpeg decodes
    by_ffmpeg = decode_audio(path)
    assert ran == ["ffprobe", "ffmpeg"]
    np.testing.assert_array_equal(direct, by_ffmpeg)
    np.testing.assert_array_equal(direct, pcm.astype(np.float64) / 32768)


@requires_ffmpeg
def test_a_wav_this_process_cannot_open_goes_to_ffmpeg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ffprobe then says why it cannot be read (here, as root, it can: it decodes)
    path = tmp_path / "speech.wav"
    path.write_bytes(_plain_wav_bytes("plain", _EXTREMES.tobytes()))
    open_file = Path.open

    def refuse(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied")
        return open_file(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    np.testing.assert_array_equal(decode_audio(path), _EXTREMES / 32768)


@requires_ffmpeg
@pytest.mark.parametrize("kind", ["8-khz", "stereo", "float", "claims-more-data-than-it-has"])
def test_a_wav_that_needs_converting_is_decoded_by_ffmpeg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    path = tmp_path / "speech.wav"
    if kind == "8-khz":
        _write_pcm16_wav(path, _sine(8000), 8000)
    elif kind == "stereo":
        _write_pcm16_wav(path, np.stack([_sine(SAMPLE_RATE)] * 2, axis=1), SAMPLE_RATE)
    elif kind == "float":
        _write_float32_wav(path, _sine(SAMPLE_RATE), SAMPLE_RATE)
    else:  # a header written before the recording ended: ffmpeg reads what is there
        data = _plain_wav_bytes("plain", _EXTREMES.tobytes())
        path.write_bytes(data[:40] + struct.pack("<I", 10**6) + data[44:])
    ran = []
    run_ffmpeg = audio._run_ffmpeg
    monkeypatch.setattr(audio, "_run_ffmpeg", lambda *a: ran.append(a) or run_ffmpeg(*a))

    waveform = decode_audio(path)
    assert len(ran) == 1
    _assert_mono_float32(waveform)
    if kind == "claims-more-data-than-it-has":
        np.testing.assert_array_equal(waveform, _EXTREMES / 32768)


@requires_ffmpeg
def test_float32_wav_at_16k_decodes_sample_exact(tmp_path: Path) -> None:
    path = tmp_path / "tone_f32.wav"
    samples = _sine(SAMPLE_RATE).astype(np.float32)
    _write_float32_wav(path, samples, SAMPLE_RATE)

    waveform = decode_audio(str(path))

    _assert_mono_float32(waveform)
    np.testing.assert_array_equal(waveform, samples)


@requires_ffmpeg
@pytest.mark.parametrize("source_rate", [8000, 22050, 44100, 48000])
def test_wav_is_resampled_to_16k_keeping_length_pitch_and_level(
    tmp_path: Path, source_rate: int
) -> None:
    path = tmp_path / f"tone_{source_rate}.wav"
    _write_pcm16_wav(path, _sine(source_rate), source_rate)

    waveform = decode_audio(path)

    _assert_mono_float32(waveform)
    assert len(waveform) == EXPECTED_SAMPLES
    assert _dominant_frequency_hz(waveform) == pytest.approx(TONE_HZ, abs=1.0)
    assert _peak_amplitude(waveform) == pytest.approx(AMPLITUDE, rel=0.01)


@requires_ffmpeg
def test_decode_audio_honours_a_custom_sample_rate(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    _write_pcm16_wav(path, _sine(48000), 48000)

    waveform = decode_audio(path, sample_rate=8000)

    assert len(waveform) == int(DURATION_S * 8000)
    assert _dominant_frequency_hz(waveform, 8000) == pytest.approx(TONE_HZ, abs=1.0)


@requires_ffmpeg
def test_stereo_is_the_mean_of_both_channels(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    left = _sine(SAMPLE_RATE, freq_hz=440.0, amplitude=0.8)
    right = _sine(SAMPLE_RATE, freq_hz=1000.0, amplitude=0.6)
    stored = _write_pcm16_wav(path, np.stack([left, right], axis=1), SAMPLE_RATE)

    waveform = decode_audio(path)

    _assert_mono_float32(waveform)
    np.testing.assert_allclose(waveform, stored.mean(axis=1), rtol=0, atol=1e-7)


@requires_ffmpeg
def test_identical_stereo_channels_keep_their_level(tmp_path: Path) -> None:
    # Without normalising the downmix, ffmpeg's float output is 0.707 * (L + R):
    # a 0.9 tone on both channels would come out at 1.27, beyond [-1, 1].
    path = tmp_path / "stereo_same.wav"
    tone = _sine(SAMPLE_RATE, amplitude=0.9)
    stored = _write_pcm16_wav(path, np.stack([tone, tone], axis=1), SAMPLE_RATE)

    waveform = decode_audio(path)

    np.testing.assert_allclose(waveform, stored[:, 0], rtol=0, atol=1e-7)


# ffmpeg's 5.1 -> mono weights (FL, FR, FC, LFE, BL, BR = 1/√2, 1/√2, 1, 0, 1/2, 1/2)
# divided by their sum so that they add up to 1.
_WEIGHTS_5_1 = np.array([math.sqrt(0.5), math.sqrt(0.5), 1.0, 0.0, 0.5, 0.5])
_WEIGHTS_5_1 /= _WEIGHTS_5_1.sum()


@requires_ffmpeg
@pytest.mark.parametrize(
    ("channel", "weight"),
    list(enumerate(_WEIGHTS_5_1)),
    ids=["FL", "FR", "FC", "LFE", "BL", "BR"],
)
def test_six_channel_wav_is_downmixed_with_normalised_5_1_weights(
    tmp_path: Path, channel: int, weight: float
) -> None:
    path = tmp_path / "six.wav"
    frames = np.zeros((EXPECTED_SAMPLES, 6))
    frames[:, channel] = _sine(SAMPLE_RATE)
    _write_pcm16_wav(path, frames, SAMPLE_RATE)

    waveform = decode_audio(path)

    _assert_mono_float32(waveform)
    assert len(waveform) == EXPECTED_SAMPLES
    assert _peak_amplitude(waveform) == pytest.approx(AMPLITUDE * weight, abs=1e-3)


@requires_ffmpeg
def test_six_identical_channels_keep_their_level(tmp_path: Path) -> None:
    path = tmp_path / "six_same.wav"
    tone = _sine(SAMPLE_RATE)
    _write_pcm16_wav(path, np.tile(tone[:, None], (1, 6)), SAMPLE_RATE)

    waveform = decode_audio(path)

    # The LFE channel is dropped, the others' weights sum to 1.
    assert _peak_amplitude(waveform) == pytest.approx(AMPLITUDE, rel=1e-3)


# ---------------------------------------------------------------------------
# Compressed formats and video
# ---------------------------------------------------------------------------


@requires_ffmpeg
@pytest.mark.parametrize(
    ("suffix", "encoder", "max_extra_samples", "amplitude_rel"),
    [
        # mp3 (LAME gapless tag), vorbis and opus (granule positions) are trimmed
        # to the exact length; flac is lossless.
        ("mp3", "libmp3lame", 0, 0.1),
        ("flac", "flac", 0, 0.001),
        ("ogg", "libvorbis", 0, 0.1),
        ("opus", "libopus", 0, 0.1),
        ("m4a", "aac", AAC_PADDING_SAMPLES_48K, 0.1),
    ],
)
def test_compressed_formats_decode_to_the_source_duration_and_tone(
    tmp_path: Path,
    encoders: set[str],
    source_48k: Path,
    suffix: str,
    encoder: str,
    max_extra_samples: int,
    amplitude_rel: float,
) -> None:
    if encoder not in encoders:
        pytest.skip(f"this ffmpeg build has no {encoder} encoder")
    path = tmp_path / f"tone.{suffix}"
    _ffmpeg("-i", str(source_48k), "-c:a", encoder, str(path))

    waveform = decode_audio(path)

    _assert_mono_float32(waveform)
    assert EXPECTED_SAMPLES <= len(waveform) <= EXPECTED_SAMPLES + max_extra_samples
    assert _dominant_frequency_hz(waveform) == pytest.approx(TONE_HZ, abs=1.0)
    assert _peak_amplitude(waveform) == pytest.approx(AMPLITUDE, rel=amplitude_rel)


def _video_encoder(encoders: set[str]) -> str:
    return "libx264" if "libx264" in encoders else "mpeg4"


@requires_ffmpeg
def test_video_decodes_to_its_audio_track(
    tmp_path: Path, encoders: set[str], source_48k: Path
) -> None:
    path = tmp_path / "clip.mp4"
    # The video (2 s) outlasts the audio (1.5 s): the result must follow the audio.
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc=duration=2:size=64x64:rate=10",
        "-i", str(source_48k),
        "-c:v", _video_encoder(encoders), "-c:a", "aac",
        str(path),
    )  # fmt: skip

    waveform = decode_audio(path)

    _assert_mono_float32(waveform)
    assert EXPECTED_SAMPLES <= len(waveform) <= EXPECTED_SAMPLES + AAC_PADDING_SAMPLES_48K
    assert _dominant_frequency_hz(waveform) == pytest.approx(TONE_HZ, abs=1.0)


@requires_ffmpeg
def test_video_without_audio_says_it_has_no_audio_stream(
    tmp_path: Path, encoders: set[str]
) -> None:
    path = tmp_path / "silent_film.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc=duration=1:size=64x64:rate=10",
        "-c:v", _video_encoder(encoders),
        str(path),
    )  # fmt: skip

    with pytest.raises(AudioDecodeError) as excinfo:
        decode_audio(path)

    assert str(excinfo.value) == f"could not decode '{path}': the file has no audio stream"


# ---------------------------------------------------------------------------
# Odd inputs and failures
# ---------------------------------------------------------------------------


@requires_ffmpeg
@pytest.mark.parametrize("sample_rate", [SAMPLE_RATE, 48000])
@pytest.mark.parametrize("block", [None, 1000])
def test_non_finite_float_samples_become_silence(
    tmp_path: Path, sample_rate: int, block: int | None, monkeypatch
) -> None:
    if block is not None:
        # cleaned block by block (as on hours of audio): bad samples in blocks 0, 5 and 9
        monkeypatch.setattr("diarization.audio._CLEAN_BLOCK_SAMPLES", block)
    path = tmp_path / "corrupt_f32.wav"
    samples = _sine(sample_rate).astype(np.float32)
    bad = np.array([100, 101, 5000, 9000])
    samples[bad] = [np.nan, np.nan, np.inf, -np.inf]
    _write_float32_wav(path, samples, sample_rate)

    waveform = decode_audio(path)

    assert len(waveform) == EXPECTED_SAMPLES
    assert np.isfinite(waveform).all()
    if sample_rate == SAMPLE_RATE:
        # No resampling: the bad samples are zeroed and nothing else changes.
        expected = samples.copy()
        expected[bad] = 0.0
        np.testing.assert_array_equal(waveform, expected)


@requires_ffmpeg
def test_unusual_file_names_are_read_as_local_files(tmp_path: Path) -> None:
    # A leading "-" could read as an option and "x:" as a protocol name.
    path = tmp_path / "-odd:name.wav"
    stored = _write_pcm16_wav(path, _sine(SAMPLE_RATE), SAMPLE_RATE)

    np.testing.assert_array_equal(decode_audio(path), stored.astype(np.float32))


@requires_ffmpeg
def test_wav_with_no_frames_says_it_holds_no_samples(tmp_path: Path) -> None:
    path = tmp_path / "no_frames.wav"
    _write_pcm16_wav(path, np.zeros(0), SAMPLE_RATE)

    with pytest.raises(AudioDecodeError) as excinfo:
        decode_audio(path)

    assert str(excinfo.value) == f"could not decode '{path}': the file holds no audio samples"


def test_empty_file_says_it_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()

    with pytest.raises(AudioDecodeError) as excinfo:
        decode_audio(path)

    assert str(excinfo.value) == f"could not decode '{path}': the file is empty (0 bytes)"


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.wav"

    with pytest.raises(AudioDecodeError) as excinfo:
        decode_audio(path)

    assert str(excinfo.value) == f"could not decode '{path}': no such file"
    assert isinstance(excinfo.value.__cause__, FileNotFoundError)


def test_directory_says_it_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError) as excinfo:
        decode_audio(tmp_path)

    assert str(excinfo.value) == f"could not decode '{tmp_path}': it is a directory, not a file"


@requires_ffmpeg
@pytest.mark.parametrize(
    ("name", "content", "expected_reason"),
    [
        ("notes.md", b"Speaker A said hello.\n" * 20, "Invalid data found when processing input"),
        (
            "fake.wav",
            b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(64),
            "[wav] no 'fmt ' or 'XMA2' tag found; Invalid data found when processing input",
        ),
    ],
    ids=["text", "riff-without-fmt"],
)
def test_undecodable_bytes_report_ffmpegs_reason(
    tmp_path: Path, name: str, content: bytes, expected_reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(AudioDecodeError) as excinfo:
        decode_audio(path)

    assert str(excinfo.value) == f"could not decode '{path}': {expected_reason}"


@requires_ffmpeg
def test_random_bytes_report_ffmpegs_reason(tmp_path: Path) -> None:
    path = tmp_path / "noise.bin"
    path.write_bytes(np.random.default_rng(0).bytes(4096))

    with pytest.raises(AudioDecodeError) as excinfo:
        decode_audio(path)

    prefix = f"could not decode '{path}': "
    message = str(excinfo.value)
    assert message.startswith(prefix)
    # Which demuxer ffmpeg guesses for noise varies, so only the shape of its
    # reason is fixed: present, without the input URL or a component address.
    reason = message.removeprefix(prefix)
    assert reason
    assert "file:" not in reason
    assert " @ 0x" not in reason


@requires_ffmpeg
def test_txt_file_is_refused_as_ansi_art(tmp_path: Path) -> None:
    # ffmpeg's "tty" demuxer claims .txt files as ANSI-art video; it is not in
    # ACCEPTED_FORMATS, so the file is refused before anything is decoded.
    path = tmp_path / "notes.txt"
    path.write_text("Speaker A said hello.\n" * 20)

    with pytest.raises(AudioDecodeError) as excinfo:
        decode_audio(path)

    assert str(excinfo.value).startswith(
        f"could not decode '{path}': ffmpeg reads it as 'tty', a format this service does not "
        "accept; send an audio or video file (wav, mp3, m4a, flac, ogg, opus, webm, mp4, ...)"
    )


def test_missing_ffmpeg_says_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tone.wav"
    _write_pcm16_wav(path, _sine(8000), 8000)  # to resample: only ffmpeg reads it
    monkeypatch.setattr(audio, "_FFMPEG", "ffmpeg-that-is-not-installed")

    with pytest.raises(
        FFmpegNotFoundError, match=r"install ffmpeg \(e\.g\. `apt-get install ffmpeg`"
    ):
        decode_audio(path)


@pytest.mark.parametrize(
    ("sample_rate", "error", "message"),
    [
        (0, ValueError, "got 0"),
        (-16000, ValueError, "got -16000"),
        (16000.0, TypeError, "got 16000.0"),
        (True, TypeError, "got True"),
        ("16000", TypeError, "got '16000'"),
    ],
)
def test_decode_audio_rejects_a_bad_sample_rate(
    tmp_path: Path, sample_rate: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as excinfo:
        decode_audio(tmp_path / "unused.wav", sample_rate=sample_rate)  # type: ignore[arg-type]

    assert str(excinfo.value) == f"sample_rate must be a positive integer in Hz, {message}"


@requires_ffmpeg
def test_decode_logs_one_timing_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tone.wav"
    _write_pcm16_wav(path, _sine(SAMPLE_RATE), SAMPLE_RATE)
    caplog.set_level(logging.DEBUG, logger="diarization.audio")

    decode_audio(path)

    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith(f"decoded '{path}': 1.50 s of audio in ")


def test_audio_module_imports_without_torch() -> None:
    code = "import sys, diarization.audio; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(audio.__file__).parents[1],
    )
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------
# duration_seconds
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "sample_rate", "expected_s"),
    [
        ((16000,), SAMPLE_RATE, 1.0),
        ((24000,), SAMPLE_RATE, 1.5),
        ((0,), SAMPLE_RATE, 0.0),
        ((1,), SAMPLE_RATE, 1 / 16000),
        ((12000,), 8000, 1.5),
        ((2, 8000), SAMPLE_RATE, 0.5),
    ],
)
def test_duration_seconds(shape: tuple[int, ...], sample_rate: int, expected_s: float) -> None:
    assert duration_seconds(np.zeros(shape, dtype=np.float32), sample_rate) == expected_s


def test_duration_seconds_defaults_to_16k() -> None:
    assert duration_seconds(np.zeros(8000, dtype=np.float32)) == 0.5


@pytest.mark.parametrize(
    ("waveform", "sample_rate", "error", "match"),
    [
        (np.float32(0.0), SAMPLE_RATE, ValueError, "at least one dimension"),
        (np.zeros(10), 0, ValueError, "sample_rate must be a positive integer in Hz, got 0"),
        (np.zeros(10), 16000.5, TypeError, "sample_rate must be a positive integer in Hz, got 16"),
    ],
)
def test_duration_seconds_rejects_bad_input(
    waveform: np.ndarray, sample_rate: int, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        duration_seconds(waveform, sample_rate)


def test_require_upload_accepts_only_files_in_the_upload_folder(tmp_path):
    from diarization.audio import require_upload

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    inside = uploads / "tmpabc.wav"
    inside.write_bytes(b"x")
    assert require_upload(inside, uploads) == inside.resolve()
    for outside in (tmp_path / "secret.wav", uploads / "sub" / "x.wav", uploads / ".." / "y"):
        with pytest.raises(AudioDecodeError, match="is not an uploaded file"):
            require_upload(outside, uploads)
