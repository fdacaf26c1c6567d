"""Audio decoding: any file ffmpeg can read in, mono float32 samples out.

This module owns turning a media file (wav, mp3, flac, ogg, opus, m4a, a video
with an audio track, ...) into a waveform at a fixed sample rate, the errors
that say why a file could not be decoded, and the guards that keep a hostile
file from costing more than `DecodeLimits` allows or from making ffmpeg read
anything but the file itself. It runs ``ffprobe`` then ``ffmpeg`` in
subprocesses and streams raw samples from ffmpeg's stdout, so it needs numpy
and the standard library only: no torch, no temporary files. A WAV that
needs no conversion (16-bit PCM, mono, at the target rate) is read directly,
without either: the same samples as ffmpeg's, 1 hour in 0.17 s instead of 0.60 s
on 2 cores.

Why ffmpeg cannot be made to read other files or URLs:

* The input is always given as ``file:<absolute path>`` with
  ``-protocol_whitelist file``: no network protocol, no ``data:``, ``pipe:``,
  ``subfile:`` or ``concat:``; a path that looks like a URL is a file name.
* ``-format_whitelist`` limits the demuxers to `ACCEPTED_FORMATS`, containers
  that carry audio and never open another resource. Playlists (``hls``,
  ``dash``), ``concat``/ffconcat scripts, ``image2`` sequences, ``imf`` and
  ``sdp`` descriptions, synthesis scripts (``sbg``) and the like are refused
  before they open anything. The protocol whitelist alone is not enough: a
  local HLS playlist or ffconcat script may open other *local* files through
  the ``file`` protocol it is allowed to use.
"""

from __future__ import annotations

import json
import logging
import os
import re
import selectors
import stat as stat_module
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diarization.limits import (
    ENV_DECODE_TIMEOUT_S,
    ENV_MAX_CHANNELS,
    ENV_MAX_DURATION_S,
    ENV_MAX_FILE_BYTES,
    DecodeLimits,
)

logger = logging.getLogger(__name__)

#: Sample rate, in Hz, of every waveform the models see (pyannote segmentation
#: and the ECAPA embedding model were both trained on 16 kHz audio).
SAMPLE_RATE = 16000

#: ffmpeg demuxers that may read an input. Each holds its media in the file
#: itself; none follows references to other files or URLs (mov's external
#: "dref" tracks are off by default in ffmpeg). A file that ffmpeg probes as
#: anything else is refused, whatever its extension.
ACCEPTED_FORMATS = (
    # Uncompressed and lossless audio (WAV includes RF64/BW64).
    "wav", "w64", "aiff", "caf", "au", "nistsphere", "flac", "wv", "ape", "tta",
    # Compressed audio (raw streams; ogg carries vorbis, opus, speex and flac).
    "mp3", "aac", "loas", "ac3", "eac3", "dts", "amr", "amrnb", "amrwb", "ogg",
    # Audio and video containers: mp4/m4a/mov/3gp, mkv/webm, wma/wmv, avi,
    # flv, MPEG program and transport streams, nut.
    "mov", "matroska", "asf", "avi", "flv", "mpeg", "mpegts", "nut",
)  # fmt: skip

_FFMPEG = "ffmpeg"
_FFPROBE = "ffprobe"
# Given to ffprobe and ffmpeg before the input: see the module docstring.
_INPUT_GUARDS = (
    "-protocol_whitelist",
    "file",
    "-format_whitelist",
    ",".join(ACCEPTED_FORMATS),
)
# ffmpeg guesses a standard layout (and so downmix weights) for up to 8
# channels; above that, unless the file names its layout, it cannot downmix
# ("Rematrix is needed ... but there is not enough information").
_MAX_GUESSED_LAYOUT_CHANNELS = 8
_READ_CHUNK_BYTES = 1 << 20
#: Samples cleaned of NaN and infinities, or read from a WAV, at a time (16 MB of float32).
_CLEAN_BLOCK_SAMPLES = 1 << 22
# Keep only the end of ffmpeg's stderr: a damaged file can make it log one
# line per packet, and the reason for a failure is in the last lines.
_STDERR_TAIL_BYTES = 64 * 1024
_BYTES_PER_SAMPLE = 4  # f32le
# After both pipes close ffmpeg is exiting; don't let a nearly spent deadline
# turn that into a timeout.
_EXIT_GRACE_S = 5.0

# ffmpeg's reason is its last few stderr lines; earlier ones are usually
# per-packet noise from the same failure.
_MAX_REASON_LINES = 3
# ffmpeg adds this hint after a failed -map; it suggests an ffmpeg option, which
# is no use to a caller of decode_audio.
_MAP_HINT = "To ignore this, add a trailing '?' to the map."
_NO_STREAM_MARKER = "matches no streams"
# ffmpeg tags lines with the component and its address ("[mp3 @ 0x55c4ffac29c0]");
# the address differs on every run and means nothing to a reader.
_COMPONENT_ADDRESS = re.compile(r"\[([^\]\s]+) @ 0x[0-9a-f]+\]")
_REFUSED_FORMAT = re.compile(r"^\[([^\]\s]+) @ 0x[0-9a-f]+\] Format not on whitelist")


class AudioDecodeError(ValueError):
    """A file could not be decoded to audio; the message names the file and why."""


class AudioLimitError(AudioDecodeError):
    """A file exceeds one of the `DecodeLimits`; the message names the limit,
    the file's value and the environment variable that raises the limit."""


class FFmpegNotFoundError(RuntimeError):
    """The ``ffmpeg`` or ``ffprobe`` executable is not installed or not on ``PATH``."""


@dataclass(frozen=True)
class _AudioStream:
    """What ffprobe says about the first audio stream (and its container)."""

    format_name: str
    channels: int  # 0 when the container does not say
    channel_layout: str  # "" when the container does not say
    sample_rate_hz: int  # 0 when the container does not say
    declared_duration_s: float | None  # the container's claim; may be wrong


def decode_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    limits: DecodeLimits | None = None,
) -> np.ndarray:
    """Decode the first audio stream of a local media file to mono float32 samples.

    Channels are averaged to one: stereo becomes ``(left + right) / 2``; other
    layouts use ffmpeg's standard downmix weights scaled to sum to 1 (for 5.1:
    front left/right 0.21 each, centre 0.29, surrounds 0.15 each, LFE dropped);
    more than 8 channels without a named layout (a microphone array) become
    the plain mean. The audio is then resampled to ``sample_rate``. Video,
    subtitle and data streams are ignored, so a video file decodes to its
    soundtrack; of several audio streams, the first is used.

    Non-finite samples (NaN, +Inf, -Inf), which a corrupt 32/64-bit float WAV can
    hold and ffmpeg passes through untouched, are replaced with 0 (silence): a
    single NaN would otherwise spread through every feature, normalisation and
    embedding computed over the window that contains it.

    Args:
        path: a local file. It is always read as a file, even when it looks
            like a URL (``"http://host/x"`` is the relative path
            ``http:/host/x``); only containers in `ACCEPTED_FORMATS` are read,
            and never a file or URL that the input refers to.
        sample_rate: output sample rate in Hz.
        limits: size, duration, channel and time limits; ``None`` reads them
            from the environment now (`DecodeLimits.from_env`).

    Returns:
        A 1-D, C-contiguous, writable float32 array of samples, nominally in
        [-1, 1], at ``sample_rate``.

    Raises:
        AudioLimitError: the file exceeds one of ``limits`` (the message says
            which, by how much, and which environment variable raises it).
        AudioDecodeError: the file is missing, empty, not a regular file, in a
            format that is not accepted, not decodable, has no audio stream, or
            holds no audio samples.
        FFmpegNotFoundError: ``ffmpeg`` or ``ffprobe`` is not installed.
        TypeError: ``sample_rate`` is not an integer.
        ValueError: ``sample_rate`` is not positive, or a ``DIARIZATION_*``
            limit variable is malformed.
    """
    with open_audio(path, sample_rate, limits) as audio:
        return audio.waveform()


def open_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    limits: DecodeLimits | None = None,
) -> DecodingAudio:
    """Start decoding a file as `decode_audio` does; return while ffmpeg decodes it.

    The samples can be read as they come (`DecodingAudio.available`,
    `DecodingAudio.read`): the segmentation runs on the first minutes while ffmpeg
    decodes the next. A WAV that needs no conversion is read before this returns.
    Close the result (``with``) to stop a decoding nobody waits for.

    Raises:
        The errors of `decode_audio` that need no decoding: a missing, empty or
        unreadable file, a refused format or one that ffprobe cannot read, too many
        channels, a bad ``sample_rate`` or limit variable. The others (ffmpeg's
        failure, the duration and time limits, no samples) are raised by the result's
        methods.
    """
    _check_sample_rate(sample_rate)
    if limits is None:
        limits = DecodeLimits.from_env()
    path = Path(path)
    _check_readable_file(path, limits)
    start = time.monotonic()
    deadline = start + limits.decode_timeout_s
    # The explicit "file:" protocol keeps a name that starts with "-" or holds
    # a ":" from being read as an option or another protocol.
    url = f"file:{path.absolute()}"

    max_samples = int(limits.max_duration_s * sample_rate)
    data = _plain_wav_data(path, sample_rate)
    if data is not None:
        offset, num_bytes = data
        stream = _AudioStream("wav", 1, "mono", sample_rate, num_bytes / 2 / sample_rate)
        waveform = _read_pcm16(path, offset, num_bytes, max_samples)
        if waveform is None:
            raise _too_long_error(path, stream, limits)
        _log_decoded(path, waveform, sample_rate, start, stream)
        audio = DecodingAudio(path, sample_rate, waveform=waveform)
        audio.seconds = time.monotonic() - start
        return audio

    stream = _probe(path, url, limits, deadline)
    if stream.channels > limits.max_channels:
        raise AudioLimitError(
            f"could not decode '{path}': its first audio stream has {stream.channels} channels, "
            f"over the limit of {limits.max_channels}; "
            f"set {ENV_MAX_CHANNELS} to raise it"
        )
    audio = DecodingAudio(path, sample_rate)
    audio._start(_ffmpeg_command(url, stream, sample_rate), stream, limits, start, deadline)
    return audio


class DecodingAudio:
    """A file's mono float32 samples, readable while ffmpeg is still decoding the rest.

    A thread collects ffmpeg's output; `available` waits for samples, `read` copies
    them out (cleaned of non-finite values, as the whole waveform is) and `waveform`
    waits for the end and returns the samples `decode_audio` returns, or raises its
    error. A failure is raised by whichever of these calls comes after it, so a reader
    that reaches the end of the audio always learns that decoding failed.
    """

    def __init__(self, path: Path | None, sample_rate: int, waveform: np.ndarray | None = None):
        self.path = path
        self.sample_rate = sample_rate
        #: Seconds the container claims (None: unknown, or not decoding any more).
        self.declared_duration_s: float | None = None
        #: Seconds from `open_audio` to the end of decoding (None until it ends).
        self.seconds: float | None = None
        self._samples = bytearray()  # ffmpeg's output so far (f32le)
        self._changed = threading.Condition()
        self._waveform = waveform
        self._error: BaseException | None = None
        self._ended = waveform is not None
        self._process: subprocess.Popen | None = None
        self._closing = False
        self._thread: threading.Thread | None = None

    def _start(self, command, stream: _AudioStream, limits: DecodeLimits, start, deadline) -> None:
        self.declared_duration_s = stream.declared_duration_s
        self._thread = threading.Thread(
            target=self._decode,
            args=(command, stream, limits, start, deadline),
            name=f"decode {self.path.name}",
            daemon=True,
        )
        self._thread.start()

    @property
    def finished(self) -> bool:
        """Whether decoding has ended (successfully or not)."""
        return self._ended

    def __enter__(self) -> DecodingAudio:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def available(self, num_samples: int) -> int:
        """Wait until `num_samples` samples are decoded or decoding has ended.

        Returns:
            How many there are then, at most `num_samples`: fewer only at the end.

        Raises:
            The error of `decode_audio` once decoding has failed.
        """
        with self._changed:
            self._changed.wait_for(
                lambda: self._ended or len(self._samples) >= num_samples * _BYTES_PER_SAMPLE
            )
            if self._error is not None:
                raise self._error
            if self._waveform is not None:
                return min(num_samples, len(self._waveform))
            return min(num_samples, len(self._samples) // _BYTES_PER_SAMPLE)

    def read(self, start: int, stop: int) -> np.ndarray:
        """A copy of samples [start, stop) of those decoded so far (see `available`)."""
        if self._waveform is not None:
            return self._waveform[start:stop].copy()
        with self._changed:
            data = self._samples[start * _BYTES_PER_SAMPLE : stop * _BYTES_PER_SAMPLE]
        samples = np.frombuffer(data, "<f4").astype(np.float32, copy=False)
        _clean(samples)
        return samples

    def waveform(self) -> np.ndarray:
        """All the samples, once decoded, as `decode_audio` returns them.

        Raises:
            The errors of `decode_audio`.
        """
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._waveform

    def close(self) -> None:
        """Stop ffmpeg if it is still running, and wait for the thread."""
        self._closing = True
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
        if self._thread is not None:
            self._thread.join()

    def _started(self, process: subprocess.Popen) -> None:
        self._process = process
        if self._closing:  # closed while ffmpeg started
            process.kill()

    def _receive(self, chunk: bytes) -> int:
        with self._changed:
            self._samples += chunk
            self._changed.notify_all()
            return len(self._samples)

    def _decode(self, command, stream: _AudioStream, limits: DecodeLimits, start, deadline):
        try:
            self._waveform = self._collect(command, stream, limits, deadline)
            _log_decoded(self.path, self._waveform, self.sample_rate, start, stream)
        except BaseException as e:  # raised to the reader, in its thread
            self._error = e
        finally:
            with self._changed:
                self.seconds = time.monotonic() - start
                self._ended = True
                self._changed.notify_all()

    def _collect(self, command, stream: _AudioStream, limits: DecodeLimits, deadline):
        path, samples = self.path, self._samples
        max_samples = int(limits.max_duration_s * self.sample_rate)
        stderr_lines, returncode = _run_ffmpeg(
            command, path, max_samples * _BYTES_PER_SAMPLE, deadline, self._receive, self._started
        )
        if len(samples) > max_samples * _BYTES_PER_SAMPLE:
            raise _too_long_error(path, stream, limits)
        if returncode is None:
            decoded_s = len(samples) / _BYTES_PER_SAMPLE / self.sample_rate
            raise _timeout_error(path, limits, f"after {decoded_s:.1f} s of audio")
        if returncode != 0:
            raise _ffmpeg_error(path, stderr_lines, returncode)
        if stderr_lines:
            # ffmpeg decodes around damaged packets and still succeeds; say so,
            # since the result may have gaps.
            logger.warning(
                "ffmpeg reported problems decoding '%s': %s", path, _reason(stderr_lines, path)
            )
        with self._changed:
            # A killed ffmpeg could leave half a sample; a finished one never does.
            del samples[len(samples) - len(samples) % _BYTES_PER_SAMPLE :]
        if not samples:
            raise AudioDecodeError(f"could not decode '{path}': the file holds no audio samples")
        # Over a bytearray the array is writable and shares its memory: no copy of
        # what may be hours of audio (astype copies only on a big-endian machine).
        # `read` copies under the lock, so nothing else holds the buffer.
        waveform = np.frombuffer(samples, dtype="<f4").astype(np.float32, copy=False)
        _clean(waveform)
        return waveform


def _clean(waveform: np.ndarray) -> None:
    """Replace non-finite samples with 0, in place and in blocks: nan_to_num's masks
    for a whole 4-hour waveform would take about 1 GB of temporaries. Checked first:
    finite samples are the rule, and the check costs a fifth of the cleaning (1 hour:
    0.16 s of cleaning on 2 cores)."""
    for start in range(0, len(waveform), _CLEAN_BLOCK_SAMPLES):
        block = waveform[start : start + _CLEAN_BLOCK_SAMPLES]
        if not np.isfinite(block).all():
            np.nan_to_num(block, copy=False, nan=0.0, posinf=0.0, neginf=0.0)


def _log_decoded(path, waveform, sample_rate, start: float, stream: _AudioStream) -> None:
    logger.info(
        "decoded '%s': %.2f s of audio in %.3f s (%s, %d channels at %d Hz)",
        path,
        duration_seconds(waveform, sample_rate),
        time.monotonic() - start,
        stream.format_name,
        stream.channels,
        stream.sample_rate_hz,
    )


def _too_long_error(path: Path, stream: _AudioStream, limits: DecodeLimits) -> AudioLimitError:
    declared = stream.declared_duration_s
    claim = f" (its header says {declared:.0f} s)" if declared else ""
    return AudioLimitError(
        f"could not decode '{path}': the audio is longer than the limit of "
        f"{limits.max_duration_s:g} s{claim}; decoding stopped there; "
        f"set {ENV_MAX_DURATION_S} to raise it"
    )


def _plain_wav_data(path: Path, sample_rate: int) -> tuple[int, int] | None:
    """(offset, bytes) of the samples of a WAV file that needs no decoding, or None.

    A RIFF WAVE file of 16-bit PCM, mono, already at `sample_rate`, with a data chunk
    that lies within the file, holds what ffmpeg would write here after converting
    each sample to x / 32768 (exact in float32), and refers to nothing outside itself:
    read directly, without ffprobe or ffmpeg, 1 hour takes a third of ffmpeg's time.
    Anything else (another format or rate, RF64, WAVE_FORMAT_EXTENSIBLE, a header that
    claims more data than the file holds) goes to ffprobe and ffmpeg, and so does a file
    that cannot be read here (ffprobe then says why).
    """
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            header = f.read(12)
            if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                return None
            fmt = None
            position = 12
            while position + 8 <= size:
                f.seek(position)
                name, length = struct.unpack("<4sI", f.read(8))
                position += 8
                if name == b"fmt " and length >= 16:
                    fmt = struct.unpack("<HHIIHH", f.read(16))
                elif name == b"data":
                    # (format tag 1: PCM, channels, rate, bytes/s, block align, bits)
                    plain = fmt == (1, 1, sample_rate, 2 * sample_rate, 2, 16)
                    return (position, length) if plain and position + length <= size else None
                position += length + length % 2  # chunks are padded to an even size
    except OSError:
        return None
    return None


def _read_pcm16(path: Path, offset: int, num_bytes: int, max_samples: int) -> np.ndarray | None:
    """The 16-bit samples at `offset` as float32 x / 32768, or None when there are more
    than `max_samples` (nothing beyond them is read)."""
    num_samples = num_bytes // 2
    if num_samples > max_samples:
        return None
    if num_samples == 0:
        raise AudioDecodeError(f"could not decode '{path}': the file holds no audio samples")
    # over a bytearray, as from ffmpeg: numpy's own large arrays ask for huge pages, whose
    # first faults in a process cost 0.58 s per hour of audio on a 2-core VM (4 KiB
    # pages: 0.13 s, every call)
    waveform = np.frombuffer(bytearray(4 * num_samples), np.float32)
    block = np.empty(min(num_samples, _CLEAN_BLOCK_SAMPLES), "<i2")
    try:
        with path.open("rb") as f:
            f.seek(offset)
            for start in range(0, num_samples, len(block)):
                part = block[: min(len(block), num_samples - start)]
                if f.readinto(memoryview(part).cast("B")) != part.nbytes:
                    raise AudioDecodeError(
                        f"could not decode '{path}': the file ended before its samples did"
                    )
                np.multiply(part, np.float32(1 / 32768), out=waveform[start : start + len(part)])
    except OSError as e:
        raise AudioDecodeError(f"could not decode '{path}': {e.strerror or e}") from e
    return waveform


def require_upload(path: str | os.PathLike, upload_dir: str | os.PathLike) -> Path:
    """`path` if it is a file directly inside `upload_dir`, else an error.

    The Cog server hands an input given as a plain string (`"/etc/x.wav"`) to the
    predictor unchanged; only files it wrote itself (uploads and downloaded URLs, in
    its temporary folder) may be read, or a client could make the server read its
    own files.

    Raises:
        AudioDecodeError: `path` is not in `upload_dir`.
    """
    resolved = Path(path).resolve()
    if resolved.parent != Path(upload_dir).resolve():
        raise AudioDecodeError(
            f"'{path}' is not an uploaded file: send the audio as a file upload or an "
            "http(s) URL, not as a path on the server"
        )
    return resolved


def duration_seconds(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Duration of a waveform in seconds.

    Args:
        waveform: samples, with time on the last axis (``(num_samples,)`` or
            ``(num_channels, num_samples)``).
        sample_rate: sample rate of ``waveform`` in Hz.

    Returns:
        The number of samples divided by ``sample_rate``.

    Raises:
        TypeError: ``sample_rate`` is not an integer.
        ValueError: ``waveform`` is 0-dimensional or ``sample_rate`` is not
            positive.
    """
    _check_sample_rate(sample_rate)
    if np.ndim(waveform) == 0:
        raise ValueError(
            "waveform must have at least one dimension with time on the last axis, "
            "got a 0-dimensional array"
        )
    return np.shape(waveform)[-1] / sample_rate


def _check_sample_rate(sample_rate: int) -> None:
    # bool is an int subclass; True Hz is certainly a mistake.
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise TypeError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate}")


def _check_readable_file(path: Path, limits: DecodeLimits) -> None:
    # These cases get clearer messages here than from ffmpeg ("Invalid data
    # found when processing input" for an empty file).
    try:
        stat = path.stat()
    except FileNotFoundError as e:
        raise AudioDecodeError(f"could not decode '{path}': no such file") from e
    except OSError as e:
        raise AudioDecodeError(f"could not decode '{path}': {e.strerror or e}") from e
    if stat_module.S_ISDIR(stat.st_mode):
        raise AudioDecodeError(f"could not decode '{path}': it is a directory, not a file")
    if not stat_module.S_ISREG(stat.st_mode):
        # A FIFO or device (/dev/zero, /dev/urandom) could stream forever.
        raise AudioDecodeError(
            f"could not decode '{path}': it is not a regular file (a device, FIFO or socket)"
        )
    if stat.st_size == 0:
        raise AudioDecodeError(f"could not decode '{path}': the file is empty (0 bytes)")
    if stat.st_size > limits.max_file_bytes:
        raise AudioLimitError(
            f"could not decode '{path}': the file is {stat.st_size} bytes "
            f"({_gib(stat.st_size)}), over the limit of {limits.max_file_bytes} bytes "
            f"({_gib(limits.max_file_bytes)}); set {ENV_MAX_FILE_BYTES} to raise it"
        )


def _probe(path: Path, url: str, limits: DecodeLimits, deadline: float) -> _AudioStream:
    """The first audio stream's channels and the container's format, from ffprobe."""
    command = [
        _FFPROBE,
        "-hide_banner",
        "-loglevel",
        "error",
        *_INPUT_GUARDS,
        "-select_streams",
        "a:0",
        "-show_entries",
        "stream=channels,channel_layout,sample_rate:format=format_name,duration",
        "-of",
        "json",
        "-i",
        url,
    ]
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=max(deadline - time.monotonic(), 0.0),
        )
    except FileNotFoundError as e:
        raise _not_found(path, _FFPROBE) from e
    except subprocess.TimeoutExpired as e:
        # subprocess.run has killed ffprobe.
        raise _timeout_error(path, limits, "while reading the file's header") from e
    stderr_lines = _meaningful_lines(result.stderr)
    if result.returncode != 0:
        raise _ffmpeg_error(path, stderr_lines, result.returncode)
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError as e:
        raise AudioDecodeError(f"could not decode '{path}': ffprobe's answer was not JSON") from e
    streams = info.get("streams") or []
    if not streams:
        raise AudioDecodeError(f"could not decode '{path}': the file has no audio stream")
    first, container = streams[0], info.get("format") or {}
    return _AudioStream(
        format_name=str(container.get("format_name", "")),
        channels=_as_int(first.get("channels")),
        channel_layout=str(first.get("channel_layout", "")),
        sample_rate_hz=_as_int(first.get("sample_rate")),
        declared_duration_s=_as_float(container.get("duration")),
    )


def _ffmpeg_command(url: str, stream: _AudioStream, sample_rate: int) -> list[str]:
    """ffmpeg reading the first audio stream of `url`, writing mono f32le to stdout."""
    return [
        _FFMPEG,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        *_INPUT_GUARDS,
        "-i",
        url,
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        *_downmix_options(stream),
        "-ar",
        str(sample_rate),
        # For float output ffmpeg's downmix matrix is not normalised: stereo
        # becomes 0.707 * (L + R), which can exceed [-1, 1]. Capping the row sum
        # at 1 makes stereo the plain mean (as with integer output).
        "-rematrix_maxval",
        "1.0",
        "-f",
        "f32le",
        "pipe:1",
    ]


def _downmix_options(stream: _AudioStream) -> list[str]:
    if stream.channels > _MAX_GUESSED_LAYOUT_CHANNELS and not stream.channel_layout:
        weight = 1 / stream.channels
        mean = "+".join(f"{weight!r}*c{i}" for i in range(stream.channels))
        # In float: pan would otherwise mix in the input's format (often s16)
        # and round the mean to it.
        return ["-af", f"aformat=sample_fmts=flt,pan=mono|c0={mean}", "-ac", "1"]
    return ["-ac", "1"]


def _run_ffmpeg(
    command: list[str],
    path: Path,
    max_bytes: int,
    deadline: float,
    receive: Callable[[bytes], int],
    started: Callable[[subprocess.Popen], None],
) -> tuple[list[str], int | None]:
    """Run ffmpeg, giving its stdout to `receive` (which returns the bytes received so
    far) until it ends, exceeds ``max_bytes`` or the deadline; `started` is given
    the process first, to stop it from another thread.

    Returns:
        (stderr lines, exit status). The status is None when the deadline passed
        and ffmpeg was killed; more than ``max_bytes`` were received only when
        ffmpeg was killed for producing them.
    """
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except FileNotFoundError as e:
        raise _not_found(path, _FFMPEG) from e
    started(process)
    received = 0
    stderr_tail = bytearray()
    returncode = None
    with process:
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                selector.register(process.stderr, selectors.EVENT_READ)
                while selector.get_map() and received <= max_bytes:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return _meaningful_lines(stderr_tail), None
                    for key, _ in selector.select(remaining):
                        chunk = os.read(key.fd, _READ_CHUNK_BYTES)
                        if not chunk:
                            selector.unregister(key.fileobj)
                        elif key.fileobj is process.stdout:
                            received = receive(chunk)
                        else:
                            stderr_tail += chunk
                            del stderr_tail[:-_STDERR_TAIL_BYTES]
            if received <= max_bytes:
                grace = max(deadline - time.monotonic(), _EXIT_GRACE_S)
                try:
                    returncode = process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    returncode = None
        finally:
            # Over a limit, out of time, or an exception here: ffmpeg must not
            # outlive the call (and `with process` must not wait for it).
            if process.poll() is None:
                process.kill()
    return _meaningful_lines(stderr_tail), returncode


def _ffmpeg_error(path: Path, stderr_lines: list[str], returncode: int) -> AudioDecodeError:
    for line in stderr_lines:
        refused = _REFUSED_FORMAT.match(line)
        if refused:
            return AudioDecodeError(
                f"could not decode '{path}': ffmpeg reads it as '{refused.group(1)}', "
                "a format this service does not accept; send an audio or video file "
                "(wav, mp3, m4a, flac, ogg, opus, webm, mp4, ...). Playlists, concat "
                "scripts and other formats that refer to other files are refused"
            )
    if any(_NO_STREAM_MARKER in line for line in stderr_lines):
        return AudioDecodeError(f"could not decode '{path}': the file has no audio stream")
    reason = _reason(stderr_lines, path) or f"ffmpeg exited with status {returncode}"
    return AudioDecodeError(f"could not decode '{path}': {reason}")


def _timeout_error(path: Path, limits: DecodeLimits, progress: str) -> AudioLimitError:
    return AudioLimitError(
        f"could not decode '{path}': decoding took longer than the limit of "
        f"{limits.decode_timeout_s:g} s and was stopped {progress}; "
        f"set {ENV_DECODE_TIMEOUT_S} to raise it"
    )


def _not_found(path: Path, executable: str) -> FFmpegNotFoundError:
    return FFmpegNotFoundError(
        f"could not decode '{path}': the '{executable}' executable was not found on PATH; "
        "install ffmpeg (e.g. `apt-get install ffmpeg` or `brew install ffmpeg`)"
    )


def _meaningful_lines(stderr: bytes | bytearray) -> list[str]:
    lines = (line.strip() for line in bytes(stderr).decode("utf-8", "replace").splitlines())
    return [line for line in lines if line and line != _MAP_HINT]


def _reason(lines: list[str], path: Path) -> str:
    """ffmpeg's last few stderr lines, without the input URL or component addresses."""
    prefix = f"file:{path.absolute()}: "
    tail = lines[-_MAX_REASON_LINES:]
    return "; ".join(_COMPONENT_ADDRESS.sub(r"[\1]", line.removeprefix(prefix)) for line in tail)


def _gib(num_bytes: int) -> str:
    return f"{num_bytes / 1024**3:.2f} GiB"


def _as_int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def _as_float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None
