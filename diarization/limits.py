"""Limits on what one decode may cost: file size, audio duration, channels, wall time.

This module owns the numbers and where they come from (defaults, environment
variables); `diarization.audio` enforces them. Limits are read from the
environment when `DecodeLimits.from_env()` is called, never at import time, so
a deployment can change them without code and a test can set them per call.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Environment variables that override each limit (see `DecodeLimits`).
ENV_MAX_FILE_BYTES = "DIARIZATION_MAX_FILE_BYTES"
ENV_MAX_DURATION_S = "DIARIZATION_MAX_DURATION_S"
ENV_MAX_CHANNELS = "DIARIZATION_MAX_CHANNELS"
ENV_DECODE_TIMEOUT_S = "DIARIZATION_DECODE_TIMEOUT_S"
ENV_PREDICTION_TIMEOUT_S = "DIARIZATION_PREDICTION_TIMEOUT_S"

DEFAULT_MAX_FILE_BYTES = 2 * 1024**3
DEFAULT_MAX_DURATION_S = 6 * 3600.0
DEFAULT_MAX_CHANNELS = 32
# ffmpeg decodes compressed audio to 16 kHz mono at 400-700x real time on one
# core of a 2024 server (10 min of opus in 1.3 s, mp3 in 0.9 s); 1 s of wall
# time per 36 s of allowed audio leaves a margin of 10x and more for slow
# machines and heavy codecs. 6 hours of audio -> 600 s.
_AUDIO_SECONDS_PER_TIMEOUT_SECOND = 36.0
_MIN_DECODE_TIMEOUT_S = 60.0


#: Wall time one diarization may take after decoding. Generous: the seed pipeline on
#: 2 CPU cores runs about at real time in its worst case, so 6 hours of audio (the
#: duration limit) fits; on a GPU it is minutes.
DEFAULT_PREDICTION_TIMEOUT_S = 8 * 3600.0


def prediction_timeout_s(environ: Mapping[str, str] | None = None) -> float:
    """Seconds one diarization (after decoding) may run: $DIARIZATION_PREDICTION_TIMEOUT_S
    or `DEFAULT_PREDICTION_TIMEOUT_S`.

    Raises:
        ValueError: the variable is set to something other than a positive number.
    """
    env = os.environ if environ is None else environ
    return _read(env, ENV_PREDICTION_TIMEOUT_S, float, DEFAULT_PREDICTION_TIMEOUT_S)


def default_decode_timeout_s(max_duration_s: float) -> float:
    """The decode timeout that goes with a duration limit: 1 s per 36 s, at least 60 s."""
    return max(_MIN_DECODE_TIMEOUT_S, max_duration_s / _AUDIO_SECONDS_PER_TIMEOUT_SECOND)


@dataclass(frozen=True)
class DecodeLimits:
    """What one `decode_audio` call may cost before it stops with `AudioLimitError`.

    Attributes:
        max_file_bytes: largest input file, in bytes. Default 2 GiB: 6 hours of
            16-bit 44.1 kHz stereo WAV is 3.8 GB, but the same audio as a 128 kb/s
            mp3 or an hour-long 720p video is well under it. Checked before ffmpeg
            starts. Override: ``DIARIZATION_MAX_FILE_BYTES``.
        max_duration_s: longest audio, in seconds. Default 6 hours, longer than
            nearly any meeting or podcast; the decoded waveform is then 1.4 GB
            (16 kHz float32). Enforced while decoding, so a header that lies
            about the length, or a tiny file that expands to days of audio,
            stops at the limit instead of filling memory.
            Override: ``DIARIZATION_MAX_DURATION_S``.
        max_channels: most channels in the first audio stream. Default 32,
            above any surround layout (7.1 is 8, 22.2 is 24) and most
            microphone arrays; every channel is decoded before the downmix, so
            this bounds the work per second of audio. Override:
            ``DIARIZATION_MAX_CHANNELS``.
        decode_timeout_s: wall-clock seconds for probing and decoding together;
            ffmpeg is killed when they run out. Default: 1 s per 36 s of
            ``max_duration_s``, at least 60 s (600 s for 6 hours), which is 10x
            what the slowest common codec needs here. Override:
            ``DIARIZATION_DECODE_TIMEOUT_S``.
    """

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    max_channels: int = DEFAULT_MAX_CHANNELS
    # None: derived from max_duration_s in __post_init__ (always a float after).
    decode_timeout_s: float | None = field(default=None)

    def __post_init__(self) -> None:
        _check_positive_int("max_file_bytes", self.max_file_bytes)
        _check_positive_number("max_duration_s", self.max_duration_s)
        _check_positive_int("max_channels", self.max_channels)
        if self.decode_timeout_s is None:
            # A frozen dataclass can only be completed this way.
            object.__setattr__(
                self, "decode_timeout_s", default_decode_timeout_s(self.max_duration_s)
            )
        _check_positive_number("decode_timeout_s", self.decode_timeout_s)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DecodeLimits:
        """Defaults, overridden by the ``DIARIZATION_*`` variables that are set.

        An unset or empty variable keeps the default. When the duration limit is
        raised and the timeout is not set, the timeout follows the duration.

        Args:
            environ: where to read the variables; ``os.environ`` by default.

        Raises:
            ValueError: a variable is set to something that is not a positive,
                finite number (an integer for bytes and channels).
        """
        env = os.environ if environ is None else environ
        return cls(
            max_file_bytes=_read(env, ENV_MAX_FILE_BYTES, int, DEFAULT_MAX_FILE_BYTES),
            max_duration_s=_read(env, ENV_MAX_DURATION_S, float, DEFAULT_MAX_DURATION_S),
            max_channels=_read(env, ENV_MAX_CHANNELS, int, DEFAULT_MAX_CHANNELS),
            decode_timeout_s=_read(env, ENV_DECODE_TIMEOUT_S, float, None),
        )


def _read(env: Mapping[str, str], name: str, parse: type[int] | type[float], default):
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = parse(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        kind = "integer" if parse is int else "finite number"
        raise ValueError(f"{name} must be a positive {kind}, got {text!r}")
    return value


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"DecodeLimits.{name} must be a positive integer, got {value!r}")


def _check_positive_number(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"DecodeLimits.{name} must be a positive, finite number, got {value!r}")
