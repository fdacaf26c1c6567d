"""Speech activity: loudness normalisation, silero-vad probabilities, speech regions.

`SileroVad` runs silero-vad's packaged TorchScript model (MIT, loaded from the
installed package, never downloaded); `speech_regions` and `normalize_loudness`
are pure numpy so they can be tested without a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: silero-vad's frame at 16 kHz: 512 samples (32 ms), one probability each.
FRAME_SAMPLES = 512
SAMPLE_RATE = 16000
FRAME_DURATION = FRAME_SAMPLES / SAMPLE_RATE
#: Length of the streams run as one batch (see `SileroVad.probabilities`), and the
#: audio each one sees before its kept output (1 s: silero's state then gives the
#: same speech/non-speech decision as one full-length run on all but ~1 % of frames).
STREAM_SECONDS = 4.0
WARMUP_SECONDS = 1.0


class VadError(RuntimeError):
    """The VAD model could not be loaded; the message says what to install."""


@dataclass(frozen=True)
class VadOptions:
    """How speech probabilities become speech regions.

    Attributes:
        onset: a region starts where the probability reaches this value
            (silero's default threshold 0.5).
        offset: and ends where it falls below this one (silero's default:
            onset - 0.15): hysteresis keeps soft syllables inside a region.
        min_speech_duration: regions shorter than this many seconds are dropped
            (silero's 0.25 s default: clicks and coughs).
        min_silence_duration: gaps shorter than this many seconds are bridged;
            0.1 s is silero's default, short enough to keep most turn changes.
        pad: seconds added on each side of a region (silero: 30 ms), as the
            probabilities lag the speech slightly.
    """

    onset: float = 0.5
    offset: float = 0.35
    min_speech_duration: float = 0.25
    min_silence_duration: float = 0.1
    pad: float = 0.03


def normalize_loudness(
    waveform: np.ndarray,
    target_dbfs: float = -20.0,
    max_gain_db: float = 30.0,
    frame_samples: int = 480,
    percentile: float = 95.0,
) -> np.ndarray:
    """Raise the level of quiet recordings so their loud frames reach `target_dbfs`.

    The level is the `percentile`-th percentile of 30 ms frame RMS levels: a
    speech level that ignores silence and survives a few clicks (AMI far-field
    excerpts sit near -40 dBFS with clicks near 0 dBFS, so peak normalisation
    would leave them quiet). Only ever raises the level, by at most `max_gain_db`,
    so loud noise stays as it is and digital silence is not blown up into noise.
    Samples may exceed [-1, 1] afterwards; the models take floats.

    Returns:
        A new float32 array (the input is not modified).
    """
    samples = np.asarray(waveform, dtype=np.float32)
    usable = len(samples) - len(samples) % frame_samples
    if usable == 0:
        return samples.copy()
    frames = samples[:usable].reshape(-1, frame_samples).astype(np.float64)
    levels = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    level = float(np.percentile(levels, percentile))
    gain_db = float(np.clip(target_dbfs - level, 0.0, max_gain_db))
    return samples * np.float32(10 ** (gain_db / 20))


def speech_regions(
    probabilities: np.ndarray,
    options: VadOptions = VadOptions(),
    frame_duration: float = FRAME_DURATION,
    duration: float | None = None,
) -> list[tuple[float, float]]:
    """Speech regions from per-frame speech probabilities, in seconds.

    Args:
        probabilities: (num_frames,) probability of speech of each frame.
        options: thresholds and minimum durations.
        frame_duration: seconds per frame.
        duration: length of the audio; regions are clipped to it (default: the
            frames' extent).

    Returns:
        Sorted, non-overlapping (start, end) pairs.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if duration is None:
        duration = len(probabilities) * frame_duration
    # Work in whole frames so that durations compare exactly.
    min_silence = int(np.ceil(options.min_silence_duration / frame_duration - 1e-9))
    min_speech = int(np.ceil(options.min_speech_duration / frame_duration - 1e-9))
    regions: list[list[int]] = []
    active = False
    start = 0
    for i, p in enumerate(probabilities):
        if not active and p >= options.onset:
            active, start = True, i
        elif active and p < options.offset:
            active = False
            regions.append([start, i])
    if active:
        regions.append([start, len(probabilities)])
    bridged: list[list[int]] = []
    for region in regions:
        if bridged and region[0] - bridged[-1][1] < min_silence:
            bridged[-1][1] = region[1]
        else:
            bridged.append(region)
    padded: list[tuple[float, float]] = []
    for first, last in bridged:
        if last - first < min_speech:
            continue
        start_s = max(0.0, first * frame_duration - options.pad)
        end_s = min(duration, last * frame_duration + options.pad)
        if padded and start_s <= padded[-1][1] + 1e-9:
            padded[-1] = (padded[-1][0], end_s)
        elif end_s > start_s:
            padded.append((start_s, end_s))
    return padded


def extend_in_gated_audio(
    regions: list[tuple[float, float]],
    samples: np.ndarray,
    max_extension: float,
    sample_rate: int = SAMPLE_RATE,
    frame_samples: int = FRAME_SAMPLES,
    silence_dbfs: float = -100.0,
    silent_share: float = 0.1,
    sound_dbfs: float = -60.0,
) -> list[tuple[float, float]]:
    """Extend speech regions over the sound next to them in noise-gated audio.

    silero-vad reacts late to soft onsets and releases early on soft endings
    (breathy or unvoiced sounds at the edge of an utterance), by up to half a
    second. Where a recording's pauses are digital silence (a noise gate or an
    editor set them to zero: at least `silent_share` of its frames are below
    `silence_dbfs`), any sound is part of what was kept on purpose, so each
    region is extended over the contiguous frames louder than `sound_dbfs`
    before and after it, by at most `max_extension` seconds each way. Any other
    recording is returned unchanged: over a noise floor, energy cannot tell a
    soft onset from noise.

    Args:
        regions: sorted, non-overlapping (start, end) speech regions in seconds.
        samples: the loudness-normalised waveform the regions came from.
        max_extension: seconds; 0 returns `regions` unchanged.

    Returns:
        Sorted, non-overlapping regions (extended regions that meet are joined).
    """
    num_frames = len(samples) // frame_samples
    if max_extension <= 0 or num_frames == 0 or not regions:
        return list(regions)
    frames = np.asarray(samples[: num_frames * frame_samples], dtype=np.float64)
    levels = 10 * np.log10(np.mean(frames.reshape(num_frames, -1) ** 2, axis=1) + 1e-20)
    if np.mean(levels < silence_dbfs) < silent_share:
        return list(regions)
    sound = levels > sound_dbfs
    frame_duration = frame_samples / sample_rate
    limit = int(round(max_extension / frame_duration))
    duration = len(samples) / sample_rate
    extended: list[tuple[float, float]] = []
    for start, end in regions:
        first = min(int(start / frame_duration), num_frames)
        last = min(int(np.ceil(end / frame_duration)), num_frames)
        before = first
        while before > 0 and first - before < limit and sound[before - 1]:
            before -= 1
        after = last
        while after < num_frames and after - last < limit and sound[after]:
            after += 1
        start = min(start, before * frame_duration)
        end = max(end, min(duration, after * frame_duration))
        if extended and start <= extended[-1][1]:
            extended[-1] = (extended[-1][0], max(extended[-1][1], end))
        else:
            extended.append((start, end))
    return extended


class SileroVad:
    """silero-vad's packaged model: speech probability of every 32 ms frame."""

    def __init__(self, model: torch.jit.ScriptModule):
        self._model = model

    @classmethod
    def load(cls) -> SileroVad:
        """Load the TorchScript model shipped in the silero-vad package (CPU).

        Raises:
            VadError: silero-vad is not installed.
        """
        threads = torch.get_num_threads()
        try:
            from silero_vad import load_silero_vad
        except ImportError as e:
            raise VadError(
                f"could not import silero_vad ({e}); "
                "install it with `pip install silero-vad==6.2.3`"
            ) from e
        finally:
            # silero_vad.model calls torch.set_num_threads(1) at import time; undo it
            # so the speaker encoder (and anything else in the process) keeps its cores.
            torch.set_num_threads(threads)
        return cls(load_silero_vad(onnx=False))

    def probabilities(self, waveform: np.ndarray) -> np.ndarray:
        """Speech probability of each 512-sample frame of a 16 kHz waveform.

        silero is a recurrent model run one 32 ms frame per call, so on a CPU its
        cost is per call: the audio is cut into `STREAM_SECONDS` streams run as one
        batch. Each stream starts `WARMUP_SECONDS` early and those frames' outputs
        are discarded, so the recurrent state has settled where its output is kept.

        Returns:
            (ceil(num_samples / 512),) float32 in [0, 1].
        """
        num_frames = -(-len(waveform) // FRAME_SAMPLES)
        if num_frames == 0:
            return np.zeros(0, dtype=np.float32)
        stream = int(round(STREAM_SECONDS / FRAME_DURATION))
        warmup = int(round(WARMUP_SECONDS / FRAME_DURATION))
        num_streams = -(-num_frames // stream)
        samples = np.zeros((warmup + num_streams * stream) * FRAME_SAMPLES, dtype=np.float32)
        samples[warmup * FRAME_SAMPLES : warmup * FRAME_SAMPLES + len(waveform)] = waveform
        # (num_frames_padded, FRAME_SAMPLES)
        frames = samples.reshape(-1, FRAME_SAMPLES)
        index = np.arange(num_streams)[:, None] * stream + np.arange(warmup + stream)[None, :]
        # (num_streams, (warmup + stream) * FRAME_SAMPLES)
        batch = torch.from_numpy(frames[index].reshape(num_streams, -1))
        with torch.inference_mode():
            # (num_streams, warmup + stream)
            probabilities = self._model.audio_forward(batch, SAMPLE_RATE)
        kept = probabilities[:, warmup:].reshape(-1).numpy()
        return kept[:num_frames].astype(np.float32)
