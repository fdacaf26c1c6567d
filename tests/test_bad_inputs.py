"""Hostile and odd inputs: each ends in a valid result or a clear error, and the service survives.

Every input is generated here (numpy, `wave`, zlib/zipfile, ffmpeg). Every case runs
through `decode_audio`; all short ones also run through the library `Diarizer`, and a
representative subset through the real Cog HTTP server, which must still be READY and
serving at the end. Nothing can hang: every decode runs under `TEST_LIMITS` (whose
decode timeout kills ffmpeg), every HTTP request under a client timeout.

Playlists and concat scripts refer to a WAV in a separate directory and to a URL on a
loopback listener. The directory is watched with inotify, so the kernel records any
open or read of the WAV by any process (ffmpeg, ffprobe, the Cog server); the listener
records every TCP connection. `test_the_detectors_see_an_unguarded_ffmpeg_follow_*`
runs a plain ffmpeg on the same inputs to show that both detectors do fire when
something follows the references.
"""

from __future__ import annotations

import base64
import ctypes
import json
import math
import os
import re
import shutil
import socket
import stat
import struct
import subprocess
import threading
import wave
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import CogServer, check_output_shape, data_uri
from diarization import audio
from diarization.audio import (
    SAMPLE_RATE,
    AudioDecodeError,
    AudioLimitError,
    DecodeLimits,
    decode_audio,
)

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="ffmpeg/ffprobe not installed",
)

# The limits every decode here runs under; the Cog server gets the same through
# its environment. 15 minutes lets the 10-minute case through; 60 s bounds each case.
TEST_LIMITS_ENV = {"DIARIZATION_MAX_DURATION_S": "900", "DIARIZATION_DECODE_TIMEOUT_S": "60"}
TEST_LIMITS = DecodeLimits.from_env(TEST_LIMITS_ENV)
TONE_HZ = 440.0
AMPLITUDE = 0.5
REFUSED = (
    "could not decode '{path}': ffmpeg reads it as '{format}', "
    "a format this service does not accept; send an audio or video file"
)


# ---------------------------------------------------------------------------
# Detectors: opens of the referenced file, connections to the referenced URL
# ---------------------------------------------------------------------------


class OpenRecorder:
    """Every open or read of a file in some directories, by any process (Linux inotify)."""

    _IN_ACCESS, _IN_OPEN = 0x1, 0x20

    def __init__(self, *directories: Path):
        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "inotify_init1"):
            pytest.skip("inotify is Linux-only")
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        for directory in directories:
            mask = self._IN_OPEN | self._IN_ACCESS
            if libc.inotify_add_watch(self._fd, os.fsencode(directory), mask) < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch({directory}) failed")
        self._events: list[str] = []

    def events(self) -> list[str]:
        """'open NAME' / 'read NAME' for everything recorded so far."""
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return list(self._events)
            offset = 0
            while offset < len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode()
                self._events.append(f"{'open' if mask & self._IN_OPEN else 'read'} {name}")
                offset += 16 + length

    def close(self) -> None:
        os.close(self._fd)


class ConnectionRecorder:
    """A TCP listener on 127.0.0.1 that records, then drops, every connection."""

    def __init__(self):
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.port = self._socket.getsockname()[1]
        self._connections: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self._record(connection)

    def _record(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(1)
            try:
                first_bytes = connection.recv(200)
            except OSError:
                first_bytes = b""
        self._connections.append(first_bytes or b"(connected, sent nothing)")

    def connections(self) -> list[bytes]:
        """Every connection so far, including any still waiting in the accept queue."""
        self._stop.set()
        self._thread.join(5)
        self._socket.setblocking(False)
        while True:
            try:
                connection, _ = self._socket.accept()
            except BlockingIOError:
                break
            self._record(connection)
        self._stop.clear()
        self._socket.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return list(self._connections)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()


@dataclass
class References:
    """What hostile inputs point at: a WAV outside the input's folder, one in a
    subfolder next to it (reachable by a relative name), and a URL."""

    secret: Path
    neighbour: Path
    opens: OpenRecorder
    listener: ConnectionRecorder

    def url(self, name: str = "secret.wav") -> str:
        return self.listener.url(name)

    def assert_untouched(self) -> None:
        assert self.opens.events() == [], "a referenced local file was opened"
        assert self.listener.connections() == [], "a referenced URL was connected to"


@pytest.fixture
def refs(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory):
    outside = tmp_path_factory.mktemp("outside")
    secret = _write_pcm16(outside / "secret.wav", _tone(1.0, SAMPLE_RATE), SAMPLE_RATE)[0]
    (tmp_path / "neighbours").mkdir()
    neighbour = tmp_path / "neighbours" / "neighbour.wav"
    _write_pcm16(neighbour, _tone(1.0, SAMPLE_RATE), SAMPLE_RATE)
    opens = OpenRecorder(outside, neighbour.parent)  # after writing: no events from that
    listener = ConnectionRecorder()
    yield References(secret, neighbour, opens, listener)
    opens.close()
    listener.close()


# ---------------------------------------------------------------------------
# Input generation
# ---------------------------------------------------------------------------


def _tone(duration_s: float, sample_rate: int, freq_hz: float = TONE_HZ) -> np.ndarray:
    t = np.arange(round(duration_s * sample_rate)) / sample_rate
    return AMPLITUDE * np.sin(2 * np.pi * freq_hz * t)


def _write_pcm16(path: Path, samples: np.ndarray, sample_rate: int) -> tuple[Path, np.ndarray]:
    """Write (num_samples,) or (num_samples, channels) floats; return what ffmpeg will read."""
    frames = samples if samples.ndim == 2 else samples[:, None]
    pcm = np.round(np.clip(frames, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    stored = pcm.astype(np.float32) / 32768  # ffmpeg's s16 -> float is x / 32768, exactly
    return path, stored if samples.ndim == 2 else stored[:, 0]


def _wav_header(
    channels: int, sample_rate: int, bits: int, format_tag: int, riff_size: int, data_size: int
) -> bytes:
    block_align = channels * bits // 8
    fmt = struct.pack(
        "<HHIIHH", format_tag, channels, sample_rate, sample_rate * block_align, block_align, bits
    )
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVEfmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_size)
    )


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def _noise(duration_s: float) -> np.ndarray:
    return np.random.default_rng(0).normal(0, 0.3, round(duration_s * SAMPLE_RATE))


# Each maker writes its input into `directory` and returns the path to decode.


def make_empty(directory: Path, refs: References) -> Path:
    path = directory / "empty.wav"
    path.touch()
    return path


def make_wav_without_frames(directory: Path, refs: References) -> Path:
    return _write_pcm16(directory / "no_frames.wav", np.zeros(0), SAMPLE_RATE)[0]


def make_tone_50ms(directory: Path, refs: References) -> Path:
    return _write_pcm16(directory / "short.wav", _tone(0.05, SAMPLE_RATE), SAMPLE_RATE)[0]


def make_silence_2s(directory: Path, refs: References) -> Path:
    return _write_pcm16(directory / "silence.wav", np.zeros(2 * SAMPLE_RATE), SAMPLE_RATE)[0]


def make_silence_10min(directory: Path, refs: References) -> Path:
    return _write_pcm16(directory / "silence.wav", np.zeros(600 * SAMPLE_RATE), SAMPLE_RATE)[0]


def make_white_noise(directory: Path, refs: References) -> Path:
    return _write_pcm16(directory / "noise.wav", _noise(2.0), SAMPLE_RATE)[0]


def make_dc_offset(directory: Path, refs: References) -> Path:
    return _write_pcm16(directory / "dc.wav", np.full(2 * SAMPLE_RATE, 0.5), SAMPLE_RATE)[0]


def _square_wave() -> np.ndarray:
    """2 s alternating +1 / -1 every 18 samples (a 444 Hz square wave)."""
    return np.where(np.arange(2 * SAMPLE_RATE) // 18 % 2 == 0, 1.0, -1.0)


def make_full_scale_clipping(directory: Path, refs: References) -> Path:
    # 4x full scale, clipped to +-32767 on writing: every sample is at the rails.
    return _write_pcm16(directory / "clipped.wav", 4.0 * _square_wave(), SAMPLE_RATE)[0]


NON_FINITE_AT = np.array([100, 101, 5000, 9000])


def _tone_with_non_finite() -> np.ndarray:
    samples = _tone(1.0, SAMPLE_RATE).astype(np.float32)
    samples[NON_FINITE_AT] = [np.nan, np.nan, np.inf, -np.inf]
    return samples


def make_float_nan_inf(directory: Path, refs: References) -> Path:
    data = _tone_with_non_finite().astype("<f4").tobytes()
    path = directory / "nan_inf.wav"
    path.write_bytes(_wav_header(1, SAMPLE_RATE, 32, 3, 36 + len(data), len(data)) + data)
    return path


def make_96k_8_channels(directory: Path, refs: References) -> Path:
    path = directory / "surround.wav"
    _ffmpeg(
        "-f", "lavfi", "-i", f"sine=f={TONE_HZ}:d=1:sample_rate=96000",
        "-af", "volume=0.5,aformat=channel_layouts=7.1", "-c:a", "pcm_s24le", str(path),
    )  # fmt: skip
    return path


def make_mulaw_8k(directory: Path, refs: References) -> Path:
    source = _write_pcm16(directory / "source.wav", _tone(1.0, 8000), 8000)[0]
    path = directory / "telephone.wav"
    _ffmpeg("-i", str(source), "-c:a", "pcm_mulaw", str(path))
    source.unlink()
    return path


def make_truncated_mp3(directory: Path, refs: References) -> Path:
    full = directory / "full.mp3"
    _ffmpeg("-f", "lavfi", "-i", f"sine=f={TONE_HZ}:d=2", "-c:a", "libmp3lame", str(full))
    path = directory / "truncated.mp3"
    data = full.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3 + 7])  # cut inside a frame
    full.unlink()
    return path


def make_wav_claiming_hours(directory: Path, refs: References) -> Path:
    # RIFF and data sizes say 4 GiB (37 hours of 16 kHz 16-bit mono); 1 s is there.
    _, stored = _write_pcm16(directory / "source.wav", _noise(1.0), SAMPLE_RATE)
    data = np.round(stored * 32768).astype("<i2").tobytes()
    path = directory / "claims_hours.wav"
    path.write_bytes(_wav_header(1, SAMPLE_RATE, 16, 1, 0xFFFFFFF0, 0xFFFFFFF0 - 36) + data)
    return path


def make_wav_named_mp3(directory: Path, refs: References) -> Path:
    return _write_pcm16(directory / "actually_wav.mp3", _noise(1.0), SAMPLE_RATE)[0]


def make_png(directory: Path, refs: References) -> Path:
    path = directory / "picture.png"
    path.write_bytes(_png())
    return path


def make_image_sequence_name(directory: Path, refs: References) -> Path:
    # "%03d" makes the image2 demuxer read frame001.png, frame002.png, ...
    (directory / "frame001.png").write_bytes(_png())
    path = directory / "frame%03d.png"
    path.write_bytes(_png())
    return path


def make_zip_of_a_wav(directory: Path, refs: References) -> Path:
    wav = _write_pcm16(directory / "inside.wav", _tone(1.0, SAMPLE_RATE), SAMPLE_RATE)[0]
    path = directory / "archive.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(wav, "inside.wav")
    return path


def make_text(directory: Path, refs: References) -> Path:
    path = directory / "transcript.md"
    path.write_text("Speaker A: hello.\nSpeaker B: hi.\n" * 20)
    return path


def make_random_bytes(directory: Path, refs: References) -> Path:
    path = directory / "random.bin"
    path.write_bytes(np.random.default_rng(0).bytes(64 * 1024))
    return path


def make_video_without_audio(directory: Path, refs: References) -> Path:
    path = directory / "silent_film.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc=duration=1:size=64x64:rate=10", "-c:v", "mpeg4", str(path)
    )
    return path


def make_two_audio_streams(directory: Path, refs: References) -> Path:
    # First stream: 1 s of 440 Hz; second: 2 s of 1000 Hz. Both PCM, copied: exact.
    first = _write_pcm16(directory / "first.wav", _tone(1.0, SAMPLE_RATE), SAMPLE_RATE)[0]
    second = _write_pcm16(
        directory / "second.wav", _tone(2.0, SAMPLE_RATE, freq_hz=1000.0), SAMPLE_RATE
    )[0]
    path = directory / "two_streams.mkv"
    _ffmpeg("-i", str(first), "-i", str(second), "-map", "0", "-map", "1", "-c", "copy", str(path))
    first.unlink()
    second.unlink()
    return path


def _channel_ramp(channels: int) -> np.ndarray:
    """(16000, channels): channel i holds a tone scaled by (i + 1) / channels."""
    return _tone(1.0, SAMPLE_RATE)[:, None] * (np.arange(channels) + 1) / channels


def make_32_channels(directory: Path, refs: References) -> Path:
    return _write_pcm16(directory / "array.wav", _channel_ramp(32), SAMPLE_RATE)[0]


def make_40_channels(directory: Path, refs: References) -> Path:
    return _write_pcm16(directory / "big_array.wav", _channel_ramp(40), SAMPLE_RATE)[0]


def make_m4a_moov_at_end(directory: Path, refs: References) -> Path:
    # ffmpeg writes the index (moov) after the data unless told +faststart:
    # decoding needs to seek back, which a file input allows.
    path = directory / "phone.m4a"
    _ffmpeg(
        "-f", "lavfi", "-i", f"sine=f={TONE_HZ}:d=1:sample_rate=48000", "-c:a", "aac", str(path)
    )
    return path


def make_tiny_file_expanding_past_the_limit(directory: Path, refs: References) -> Path:
    # 2 KB of samples at 1 Hz: 1000 s of audio, 16 million samples at 16 kHz.
    data = np.zeros(1000, "<i2").tobytes()
    path = directory / "one_hertz.wav"
    path.write_bytes(_wav_header(1, 1, 16, 1, 36 + len(data), len(data)) + data)
    return path


def make_hls_to_local_file(directory: Path, refs: References) -> Path:
    path = directory / "playlist.m3u8"
    path.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n"
        f"#EXTINF:1.0,\n{refs.secret}\n#EXTINF:1.0,\nfile:{refs.secret}\n#EXT-X-ENDLIST\n"
    )
    return path


def make_hls_to_url(directory: Path, refs: References) -> Path:
    path = directory / "playlist.m3u8"
    path.write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{refs.url()}\n#EXT-X-ENDLIST\n"
    )
    return path


def make_hls_named_wav(directory: Path, refs: References) -> Path:
    path = make_hls_to_local_file(directory, refs)
    return path.rename(directory / "recording.wav")


def make_ffconcat_to_local_file(directory: Path, refs: References) -> Path:
    path = directory / "list.ffconcat"
    path.write_text(f"ffconcat version 1.0\nfile '{refs.secret}'\nfile 'file:{refs.secret}'\n")
    return path


def make_ffconcat_to_neighbour(directory: Path, refs: References) -> Path:
    # A relative name without "..": allowed by the concat demuxer's safe mode.
    path = directory / "list.ffconcat"
    path.write_text("ffconcat version 1.0\nfile 'neighbours/neighbour.wav'\n")
    return path


def make_ffconcat_to_url(directory: Path, refs: References) -> Path:
    path = directory / "list.txt"
    path.write_text(f"ffconcat version 1.0\nfile '{refs.url()}'\n")
    return path


def make_sdp_to_loopback(directory: Path, refs: References) -> Path:
    path = directory / "stream.sdp"
    path.write_text(
        "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\n"
        f"m=audio {refs.listener.port} RTP/AVP 0\n"
    )
    return path


def make_file_url(directory: Path, refs: References) -> str:
    return f"file://{refs.secret}"


def make_http_url(directory: Path, refs: References) -> str:
    return refs.url()


def make_url_like_local_name(directory: Path, refs: References) -> str:
    # The test runs in `directory`: this relative name is a file there.
    _write_pcm16(directory / "http:x.wav", _noise(0.5), SAMPLE_RATE)
    return "http:x.wav"


def make_directory(directory: Path, refs: References) -> Path:
    path = directory / "folder.wav"
    path.mkdir()
    return path


def make_fifo(directory: Path, refs: References) -> Path:
    path = directory / "pipe.wav"
    os.mkfifo(path)
    return path


# ---------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Decodes:
    """The input decodes; `samples` are the exact expected values when given."""

    num_samples: int | tuple[int, int]  # exact, or an inclusive range
    samples: Callable[[], np.ndarray] | None = None
    atol: float = 0.0
    tone_hz: float | None = None


@dataclass(frozen=True)
class Fails:
    """The input fails with `error`; `message` is the whole message, or its start."""

    error: type[Exception]
    message: str  # "{path}" stands for the path as given
    whole: bool = True


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path, References], Path | str]
    expect: Decodes | Fails
    long: bool = False  # too long for the random-weight pipeline
    server: bool = False  # also sent to the Cog server


def _stored_noise(duration_s: float) -> Callable[[], np.ndarray]:
    return lambda: np.round(np.clip(_noise(duration_s), -1, 1) * 32767).astype(np.float32) / 32768


def _non_finite_zeroed() -> np.ndarray:
    samples = _tone_with_non_finite()
    samples[NON_FINITE_AT] = 0.0
    return samples


def _mean_of_channel_ramp() -> np.ndarray:
    stored = np.round(_channel_ramp(32) * 32767) / 32768
    return stored.mean(axis=1).astype(np.float32)


def _refused(format_name: str) -> Fails:
    return Fails(AudioDecodeError, REFUSED.replace("{format}", format_name), whole=False)


CASES = [
    Case("empty-file", make_empty,
         Fails(AudioDecodeError, "could not decode '{path}': the file is empty (0 bytes)"),
         server=True),
    Case("wav-header-without-frames", make_wav_without_frames,
         Fails(AudioDecodeError, "could not decode '{path}': the file holds no audio samples")),
    Case("50-ms", make_tone_50ms,
         Decodes(800, lambda: np.round(_tone(0.05, SAMPLE_RATE) * 32767) / 32768),
         server=True),
    Case("silence-2-s", make_silence_2s, Decodes(32000, lambda: np.zeros(32000)), server=True),
    Case("silence-10-min", make_silence_10min,
         Decodes(9_600_000, lambda: np.zeros(9_600_000)), long=True),
    Case("white-noise", make_white_noise, Decodes(32000, _stored_noise(2.0))),
    Case("dc-offset", make_dc_offset,
         Decodes(32000, lambda: np.full(32000, np.round(0.5 * 32767) / 32768))),
    Case("full-scale-clipping", make_full_scale_clipping,
         Decodes(32000, lambda: _square_wave() * 32767 / 32768)),
    Case("float-wav-nan-inf", make_float_nan_inf, Decodes(16000, _non_finite_zeroed), server=True),
    Case("96-khz-8-channels", make_96k_8_channels, Decodes(16000, tone_hz=TONE_HZ), server=True),
    Case("8-khz-mu-law", make_mulaw_8k, Decodes(16000, tone_hz=TONE_HZ), server=True),
    Case("truncated-mp3", make_truncated_mp3, Decodes((8000, 31999), tone_hz=TONE_HZ)),
    Case("wav-header-claiming-hours", make_wav_claiming_hours,
         Decodes(16000, _stored_noise(1.0)), server=True),
    Case("wav-named-mp3", make_wav_named_mp3, Decodes(16000, _stored_noise(1.0))),
    Case("two-audio-streams-first-used", make_two_audio_streams,
         Decodes(16000, lambda: np.round(_tone(1.0, SAMPLE_RATE) * 32767) / 32768)),
    Case("32-channels-no-layout", make_32_channels,
         Decodes(16000, _mean_of_channel_ramp, atol=1e-6)),
    Case("40-channels-over-limit", make_40_channels,
         Fails(AudioLimitError, "could not decode '{path}': its first audio stream has 40 "
               "channels, over the limit of 32; set DIARIZATION_MAX_CHANNELS to raise it")),
    Case("m4a-index-at-end", make_m4a_moov_at_end,
         Decodes((16000, 16000 + math.ceil(1024 / 3)), tone_hz=TONE_HZ)),
    Case("tiny-file-expanding-past-duration-limit", make_tiny_file_expanding_past_the_limit,
         Fails(AudioLimitError, "could not decode '{path}': the audio is longer than the limit "
               "of 900 s (its header says 1000 s); decoding stopped there; "
               "set DIARIZATION_MAX_DURATION_S to raise it"),
         server=True),
    Case("png", make_png, _refused("png_pipe"), server=True),
    Case("image-sequence-name", make_image_sequence_name, _refused("image2")),
    Case("zip", make_zip_of_a_wav,
         Fails(AudioDecodeError,
               "could not decode '{path}': Invalid data found when processing input")),
    Case("text", make_text,
         Fails(AudioDecodeError,
               "could not decode '{path}': Invalid data found when processing input")),
    Case("random-bytes", make_random_bytes,
         Fails(AudioDecodeError, "could not decode '{path}': ", whole=False), server=True),
    Case("video-without-audio", make_video_without_audio,
         Fails(AudioDecodeError, "could not decode '{path}': the file has no audio stream")),
    Case("hls-playlist-to-local-file", make_hls_to_local_file, _refused("hls"), server=True),
    Case("hls-playlist-to-loopback-url", make_hls_to_url, _refused("hls"), server=True),
    Case("hls-playlist-named-wav", make_hls_named_wav, _refused("hls")),
    Case("ffconcat-to-local-file", make_ffconcat_to_local_file, _refused("concat"), server=True),
    Case("ffconcat-to-neighbouring-file", make_ffconcat_to_neighbour, _refused("concat")),
    Case("ffconcat-to-loopback-url", make_ffconcat_to_url, _refused("concat"), server=True),
    Case("sdp-to-loopback", make_sdp_to_loopback, _refused("sdp")),
    Case("file-url-as-path", make_file_url,
         Fails(AudioDecodeError, "could not decode '{path}': no such file"), server=True),
    Case("http-url-as-path", make_http_url,
         Fails(AudioDecodeError, "could not decode '{path}': no such file")),
    Case("url-like-local-name", make_url_like_local_name, Decodes(8000, _stored_noise(0.5))),
    Case("directory", make_directory,
         Fails(AudioDecodeError, "could not decode '{path}': it is a directory, not a file")),
    Case("fifo", make_fifo,
         Fails(AudioDecodeError, "could not decode '{path}': it is not a regular file "
               "(a device, FIFO or socket)")),
]  # fmt: skip
CASES_BY_NAME = {case.name: case for case in CASES}
SERVER_CASES = [case for case in CASES if case.server]


def _ids(cases: list[Case]) -> list[str]:
    return [case.name for case in cases]


def _dominant_frequency_hz(waveform: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return float(np.argmax(spectrum)) * SAMPLE_RATE / len(waveform)


def check_waveform(waveform: np.ndarray, expect: Decodes) -> None:
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert np.isfinite(waveform).all()
    if isinstance(expect.num_samples, int):
        assert len(waveform) == expect.num_samples
    else:
        low, high = expect.num_samples
        assert low <= len(waveform) <= high
    if expect.samples is not None:
        expected = expect.samples().astype(np.float32)
        np.testing.assert_allclose(waveform, expected, rtol=0, atol=expect.atol)
    if expect.tone_hz is not None:
        assert _dominant_frequency_hz(waveform) == pytest.approx(expect.tone_hz, abs=2.0)


def message_pattern(expect: Fails, path: str | None) -> re.Pattern:
    """`expect.message` with `{path}` as the given path, or any path when None."""
    before, _, after = expect.message.partition("{path}")
    any_path = "[^']+" if path is None else re.escape(path)
    ending = "$" if expect.whole else ""
    return re.compile(re.escape(before) + any_path + re.escape(after) + ending)


# ---------------------------------------------------------------------------
# decode_audio on every case
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_decode_audio_gives_samples_or_a_clear_error(
    case: Case, tmp_path: Path, refs: References, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative names resolve inside the test's folder
    path = case.make(tmp_path, refs)

    try:
        outcome: np.ndarray | AudioDecodeError = decode_audio(path, limits=TEST_LIMITS)
    except AudioDecodeError as e:
        outcome = e

    refs.assert_untouched()
    if isinstance(case.expect, Decodes):
        assert isinstance(outcome, np.ndarray), outcome
        check_waveform(outcome, case.expect)
    else:
        assert type(outcome) is case.expect.error, outcome
        assert message_pattern(case.expect, str(Path(path))).match(str(outcome)), outcome
        # Say what is wrong, not where ffmpeg keeps its objects or how it named the input.
        assert " @ 0x" not in str(outcome)
        assert f"file:{Path(path).absolute()}" not in str(outcome)


def test_the_corpus_is_large_and_covers_both_outcomes() -> None:
    assert len(CASES) >= 30
    assert len(CASES_BY_NAME) == len(CASES)
    assert sum(isinstance(c.expect, Decodes) for c in CASES) >= 10
    assert sum(isinstance(c.expect, Fails) for c in CASES) >= 10
    assert len(SERVER_CASES) >= 8


# ---------------------------------------------------------------------------
# The detectors work: an unguarded ffmpeg does follow the references
# ---------------------------------------------------------------------------


def _run_ffmpeg(path: Path, *guards: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "quiet", *guards,
         "-i", f"file:{path}", "-f", "null", "-"],
        check=False, capture_output=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "opened"),
    [
        ("hls-playlist-to-local-file", "open secret.wav"),
        ("ffconcat-to-neighbouring-file", "open neighbour.wav"),
    ],
)
def test_the_detectors_see_ffmpeg_with_only_a_protocol_whitelist_open_other_files(
    name: str, opened: str, tmp_path: Path, refs: References
) -> None:
    # decode_audio's guards before -format_whitelist: not enough.
    _run_ffmpeg(CASES_BY_NAME[name].make(tmp_path, refs), "-protocol_whitelist", "file,pipe")

    assert opened in refs.opens.events()


@pytest.mark.parametrize("name", ["hls-playlist-to-loopback-url", "ffconcat-to-loopback-url"])
def test_the_detectors_see_an_unguarded_ffmpeg_follow_a_url(
    name: str, tmp_path: Path, refs: References
) -> None:
    path = CASES_BY_NAME[name].make(tmp_path, refs)
    _run_ffmpeg(path, "-protocol_whitelist", "file,http,tcp", "-safe", "0")

    connections = refs.listener.connections()
    assert len(connections) == 1
    assert connections[0].startswith(b"GET /secret.wav HTTP/1.1")


# ---------------------------------------------------------------------------
# The limits: each allows its value and refuses one more
# ---------------------------------------------------------------------------


def _one_second_wav(directory: Path, channels: int = 1) -> Path:
    return _write_pcm16(directory / "one_second.wav", _channel_ramp(channels), SAMPLE_RATE)[0]


def test_duration_limit_allows_exactly_its_length(tmp_path: Path) -> None:
    path = _one_second_wav(tmp_path)

    assert len(decode_audio(path, limits=DecodeLimits(max_duration_s=1.0))) == 16000
    with pytest.raises(AudioLimitError) as excinfo:
        decode_audio(path, limits=DecodeLimits(max_duration_s=(16000 - 1) / 16000))
    assert str(excinfo.value) == (
        f"could not decode '{path}': the audio is longer than the limit of 0.999938 s "
        "(its header says 1 s); decoding stopped there; set DIARIZATION_MAX_DURATION_S to raise it"
    )


def test_file_size_limit_allows_exactly_its_size(tmp_path: Path) -> None:
    path = _one_second_wav(tmp_path)
    size = path.stat().st_size  # 44-byte header + 32000 bytes

    assert len(decode_audio(path, limits=DecodeLimits(max_file_bytes=size))) == 16000
    with pytest.raises(AudioLimitError) as excinfo:
        decode_audio(path, limits=DecodeLimits(max_file_bytes=size - 1))
    assert str(excinfo.value) == (
        f"could not decode '{path}': the file is 32044 bytes (0.00 GiB), over the limit of "
        "32043 bytes (0.00 GiB); set DIARIZATION_MAX_FILE_BYTES to raise it"
    )


def test_channel_limit_allows_exactly_its_count(tmp_path: Path) -> None:
    path = _one_second_wav(tmp_path, channels=3)

    assert len(decode_audio(path, limits=DecodeLimits(max_channels=3))) == 16000
    with pytest.raises(AudioLimitError, match="has 3 channels, over the limit of 2; set DIAR"):
        decode_audio(path, limits=DecodeLimits(max_channels=2))


def test_limits_come_from_the_environment_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _one_second_wav(tmp_path)
    assert len(decode_audio(path)) == 16000

    monkeypatch.setenv("DIARIZATION_MAX_DURATION_S", "0.5")

    with pytest.raises(AudioLimitError, match="longer than the limit of 0.5 s"):
        decode_audio(path)


# ---------------------------------------------------------------------------
# A decoder that hangs or never stops is killed
# ---------------------------------------------------------------------------


def _stub_executable(directory: Path, name: str, body: str) -> tuple[Path, Path]:
    """A shell script that writes its PID to a file, then runs `body` in its place."""
    pid_file = directory / f"{name}.pid"
    script = directory / name
    script.write_text(f"#!/bin/sh\necho $$ > '{pid_file}'\nexec {body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, pid_file


def _assert_gone(pid_file: Path) -> None:
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not a zombie
        os.kill(pid, 0)


def test_a_hung_ffmpeg_is_killed_at_the_decode_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _one_second_wav(tmp_path, channels=2)  # to downmix: only ffmpeg reads it
    stub, pid_file = _stub_executable(tmp_path, "ffmpeg", "sleep 600")
    monkeypatch.setattr(audio, "_FFMPEG", str(stub))

    with pytest.raises(AudioLimitError) as excinfo:
        decode_audio(path, limits=DecodeLimits(decode_timeout_s=1))

    assert str(excinfo.value) == (
        f"could not decode '{path}': decoding took longer than the limit of 1 s and was "
        "stopped after 0.0 s of audio; set DIARIZATION_DECODE_TIMEOUT_S to raise it"
    )
    _assert_gone(pid_file)


def test_a_hung_ffprobe_is_killed_at_the_decode_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _one_second_wav(tmp_path, channels=2)  # to downmix: only ffmpeg reads it
    stub, pid_file = _stub_executable(tmp_path, "ffprobe", "sleep 600")
    monkeypatch.setattr(audio, "_FFPROBE", str(stub))

    with pytest.raises(AudioLimitError) as excinfo:
        decode_audio(path, limits=DecodeLimits(decode_timeout_s=1))

    assert str(excinfo.value) == (
        f"could not decode '{path}': decoding took longer than the limit of 1 s and was "
        "stopped while reading the file's header; set DIARIZATION_DECODE_TIMEOUT_S to raise it"
    )
    _assert_gone(pid_file)


def test_an_endless_stream_stops_at_the_duration_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A decoder that never ends: only the duration limit can stop it (the
    # timeout is far away, so reaching it would fail this test's message).
    path = _one_second_wav(tmp_path, channels=2)  # to downmix: only ffmpeg reads it
    stub, pid_file = _stub_executable(tmp_path, "ffmpeg", "cat /dev/zero")
    monkeypatch.setattr(audio, "_FFMPEG", str(stub))

    with pytest.raises(AudioLimitError, match="longer than the limit of 10 s .* stopped there"):
        decode_audio(path, limits=DecodeLimits(max_duration_s=10, decode_timeout_s=600))

    _assert_gone(pid_file)


# ---------------------------------------------------------------------------
# The library Diarizer: every short case, end to end
# ---------------------------------------------------------------------------

PIPELINE_CASES = [case for case in CASES if not case.long]


@pytest.mark.parametrize("case", PIPELINE_CASES, ids=_ids(PIPELINE_CASES))
def test_diarizer_gives_a_valid_result_or_the_decode_error(
    case: Case, diarizer, tmp_path: Path, refs: References, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in TEST_LIMITS_ENV.items():
        monkeypatch.setenv(name, value)
    path = case.make(tmp_path, refs)

    if isinstance(case.expect, Decodes):
        duration = len(decode_audio(path)) / SAMPLE_RATE
        check_output_shape(diarizer.diarize(path).to_dict(), duration)
    else:
        with pytest.raises(case.expect.error) as excinfo:
            diarizer.diarize(path)
        assert message_pattern(case.expect, str(Path(path))).match(str(excinfo.value))
    refs.assert_untouched()


# ---------------------------------------------------------------------------
# The Cog server: a representative subset, then still READY and serving
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(random_weights, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("bad-inputs-server") / "server.log"
    server = CogServer(random_weights.root, log, extra_env=TEST_LIMITS_ENV)
    health = server.wait_for_setup()
    assert health["status"] == "READY", health
    yield server
    server.close()


def _server_input(path: Path | str) -> str:
    if isinstance(path, str):  # a URL given as the input itself
        return path
    return f"data:application/octet-stream;base64,{base64.b64encode(path.read_bytes()).decode()}"


@pytest.mark.parametrize("case", SERVER_CASES, ids=_ids(SERVER_CASES))
def test_server_answers_with_a_result_or_a_clear_failure(
    case: Case, server: CogServer, tmp_path: Path, refs: References
) -> None:
    path = case.make(tmp_path, refs)

    status, body = server.predict({"audio": _server_input(path)}, timeout=120)

    assert status == 200, body
    if isinstance(case.expect, Decodes):
        assert body["status"] == "succeeded", body
        output = json.loads(base64.b64decode(body["output"].split(",", 1)[1]))
        num_samples = case.expect.num_samples
        assert isinstance(num_samples, int)
        check_output_shape(output, num_samples / SAMPLE_RATE)
    else:
        assert body["status"] == "failed", body
        if isinstance(path, str):
            # A URL-like string reaches predict() as a path, which only uploads may be.
            assert f"'{path}' is not an uploaded file" in body["error"], body["error"]
        else:
            # The server names its own temporary copy of the upload.
            assert message_pattern(case.expect, None).search(body["error"]), body["error"]
        assert body.get("output") is None
    refs.assert_untouched()


def test_server_does_not_read_a_server_side_path_given_as_input(
    server: CogServer, refs: References
) -> None:
    _, body = server.predict({"audio": str(refs.secret)}, timeout=120)

    refs.assert_untouched()
    # coglet 0.23.1 hands a plain path to predict() unchanged; predict.py refuses it
    assert body.get("status") == "failed", body
    assert "is not an uploaded file" in body["error"]


def test_server_is_ready_and_serving_after_the_corpus(server: CogServer, tmp_path: Path) -> None:
    assert server.process.poll() is None
    server.wait_until_ready(timeout_s=30)
    path = _write_pcm16(tmp_path / "after.wav", _noise(1.5), SAMPLE_RATE)[0]

    status, body = server.predict({"audio": data_uri(path)})

    assert status == 200 and body["status"] == "succeeded", body
    check_output_shape(json.loads(base64.b64decode(body["output"].split(",", 1)[1])), 1.5)
