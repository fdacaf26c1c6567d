"""Audio decoding: any file ffmpeg can read in, mono float32 samples out.

This module owns turning a media file (wav, mp3, flac, ogg, opus, m4a, a video
with an audio track, ...) into a waveform at a fixed sample rate, and the errors
that say why a file could not be decoded. It runs the ``ffmpeg`` binary in a
subprocess and reads raw samples from its stdout, so it needs numpy and the
standard library only: no torch, no temporary files.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: Sample rate, in Hz, of every waveform the models see (pyannote segmentation
#: and the ECAPA embedding model were both trained on 16 kHz audio).
SAMPLE_RATE = 16000

_FFMPEG = "ffmpeg"
# ffmpeg's reason is its last few stderr lines; earlier ones are usually
# per-packet noise from the same failure.
_MAX_REASON_LINES = 3
# ffmpeg adds this hint after a failed -map; it suggests an ffmpeg option, which
# is no use to a caller of decode_audio.
_MAP_HINT = "To ignore this, add a trailing '?' to the map."
_NO_STREAM_MARKER = "matches no streams"
# ffmpeg tags lines with the component and its address ("[mp3 @ 0x55c4ffac29c0]");
# the address differs on every run and means nothing to a reader.
_COMPONENT_ADDRESS = re.compile(r"^\[(\w+) @ 0x[0-9a-f]+\]")


class AudioDecodeError(ValueError):
    """A file could not be decoded to audio; the message names the file and why."""


class FFmpegNotFoundError(RuntimeError):
    """The ``ffmpeg`` executable is not installed or not on ``PATH``."""


def decode_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio stream of a local media file to mono float32 samples.

    Channels are averaged to one: stereo becomes ``(left + right) / 2``; other
    layouts use ffmpeg's standard downmix weights scaled to sum to 1 (for 5.1:
    front left/right 0.21 each, centre 0.29, surrounds 0.15 each, LFE dropped).
    The audio is then resampled to ``sample_rate``. Video, subtitle and data
    streams are ignored, so a video file decodes to its soundtrack.

    Non-finite samples (NaN, +Inf, -Inf), which a corrupt 32/64-bit float WAV can
    hold and ffmpeg passes through untouched, are replaced with 0 (silence): a
    single NaN would otherwise spread through every feature, normalisation and
    embedding computed over the window that contains it.

    Args:
        path: a local file. Only local files are read: ffmpeg is told to refuse
            network and other protocols.
        sample_rate: output sample rate in Hz.

    Returns:
        A 1-D, C-contiguous, writable float32 array of samples, nominally in
        [-1, 1], at ``sample_rate``.

    Raises:
        AudioDecodeError: the file is missing, empty, not decodable, has no
            audio stream, or holds no audio samples.
        FFmpegNotFoundError: the ``ffmpeg`` executable is not installed.
        TypeError: ``sample_rate`` is not an integer.
        ValueError: ``sample_rate`` is not positive.
    """
    _check_sample_rate(sample_rate)
    path = Path(path)
    _check_readable_file(path)

    command = [
        _FFMPEG,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-protocol_whitelist",
        "file,pipe",
        # The explicit "file:" protocol keeps a name that starts with "-" or
        # holds a ":" from being read as an option or another protocol.
        "-i",
        f"file:{path.absolute()}",
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        "-ac",
        "1",
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
    start = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, check=False)
    except FileNotFoundError as e:
        raise FFmpegNotFoundError(
            f"could not decode '{path}': the '{_FFMPEG}' executable was not found on PATH; "
            "install ffmpeg (e.g. `apt-get install ffmpeg` or `brew install ffmpeg`)"
        ) from e
    elapsed = time.perf_counter() - start

    stderr_lines = _meaningful_lines(result.stderr)
    if result.returncode != 0:
        if any(_NO_STREAM_MARKER in line for line in stderr_lines):
            raise AudioDecodeError(f"could not decode '{path}': the file has no audio stream")
        reason = _reason(stderr_lines, path) or f"ffmpeg exited with status {result.returncode}"
        raise AudioDecodeError(f"could not decode '{path}': {reason}")
    if stderr_lines:
        # ffmpeg decodes around damaged packets and still succeeds; say so,
        # since the result may have gaps.
        logger.warning(
            "ffmpeg reported problems decoding '%s': %s", path, _reason(stderr_lines, path)
        )
    if not result.stdout:
        raise AudioDecodeError(f"could not decode '{path}': the file holds no audio samples")

    # astype copies into a native-endian, writable array (np.frombuffer over
    # bytes is read-only), so nan_to_num can then work in place.
    waveform = np.frombuffer(result.stdout, dtype="<f4").astype(np.float32)
    np.nan_to_num(waveform, copy=False, nan=0.0, posinf=0.0, neginf=0.0)

    logger.info(
        "decoded '%s': %.2f s of audio in %.3f s",
        path,
        duration_seconds(waveform, sample_rate),
        elapsed,
    )
    return waveform


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


def _check_readable_file(path: Path) -> None:
    # These cases get clearer messages here than from ffmpeg ("Invalid data
    # found when processing input" for an empty file).
    try:
        stat = path.stat()
    except FileNotFoundError as e:
        raise AudioDecodeError(f"could not decode '{path}': no such file") from e
    except OSError as e:
        raise AudioDecodeError(f"could not decode '{path}': {e.strerror or e}") from e
    if path.is_dir():
        raise AudioDecodeError(f"could not decode '{path}': it is a directory, not a file")
    if stat.st_size == 0:
        raise AudioDecodeError(f"could not decode '{path}': the file is empty (0 bytes)")


def _meaningful_lines(stderr: bytes) -> list[str]:
    lines = (line.strip() for line in stderr.decode("utf-8", errors="replace").splitlines())
    return [line for line in lines if line and line != _MAP_HINT]


def _reason(lines: list[str], path: Path) -> str:
    """ffmpeg's last few stderr lines, without the input URL or component addresses."""
    prefix = f"file:{path.absolute()}: "
    tail = lines[-_MAX_REASON_LINES:]
    return "; ".join(_COMPONENT_ADDRESS.sub(r"[\1]", line.removeprefix(prefix)) for line in tail)
