"""The segmentation model slid over audio while ffmpeg is still decoding it.

pyannote's `Inference.slide` cuts the whole waveform into 5 s windows every 0.5 s and
runs them a batch at a time. `slide_while_decoding` runs each batch as soon as the
audio it covers is decoded (`audio.DecodingAudio`): the same windows in the same
batches, so the same outputs, while ffmpeg decodes the rest. On a GPU the decoding of
a compressed upload and the segmentation then overlap instead of adding up (1 hour of
44.1 kHz stereo MP3: about 7 s of decoding on 2 cores, 1 s of segmentation on an H200).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from pyannote.audio.core.inference import Inference
from pyannote.audio.utils.reproducibility import fix_reproducibility
from pyannote.core import SlidingWindow, SlidingWindowFeature

from diarization.audio import DecodingAudio


def streams(inference: Inference, audio: DecodingAudio) -> bool:
    """Whether `slide_while_decoding` computes what `inference` computes on `audio`'s
    waveform: windows without aggregation (as the diarization pipeline slides its
    segmentation model) of a model with one output, on audio at the model's rate."""
    specifications = inference.model.specifications
    return (
        inference.window == "sliding"
        and inference.skip_aggregation
        and not isinstance(specifications, tuple)
        and audio.sample_rate == inference.model.audio.sample_rate
    )


def slide_while_decoding(
    inference: Inference, audio: DecodingAudio, hook: Callable | None = None
) -> SlidingWindowFeature:
    """`inference` on `audio`'s mono samples, each batch run once they are decoded.

    Args:
        inference: a sliding-window inference for which `streams` holds on `audio`.
        audio: the audio being decoded, at the model's sample rate.
        hook: called as pyannote's inference calls it, with ``completed`` and
            ``total`` windows; ``total`` is estimated from the container's declared
            duration until the end of the audio is known (without one, the hook is
            called once, at the end; it is exact for audio done decoding).

    Returns:
        (windows, frames, speakers) outputs, as ``inference.slide`` returns them on
        the whole waveform.

    Raises:
        ValueError: the sample rates differ, or `streams` does not hold.
        AudioDecodeError: decoding failed (from `audio`).
        MemoryError: out of memory on the GPU (from pyannote's `Inference.infer`).
    """
    sample_rate = inference.model.audio.sample_rate
    if not streams(inference, audio):
        raise ValueError(
            f"cannot slide this inference over audio at {audio.sample_rate} Hz while it "
            f"decodes (model at {sample_rate} Hz, window={inference.window!r}, "
            f"skip_aggregation={inference.skip_aggregation})"
        )
    window = inference.model.audio.get_num_samples(inference.duration)
    step = round(inference.step * sample_rate)
    batch_size = inference.batch_size
    fix_reproducibility(inference.device)
    # the windows to come: exact once decoded, else from the container's claim
    if audio.finished:
        estimate = sum(_windows(len(audio.waveform()), window, step))
    elif audio.declared_duration_s:
        estimate = sum(_windows(int(audio.declared_duration_s * sample_rate), window, step))
    else:
        estimate = None

    def windows(first: int, count: int) -> torch.Tensor:
        # (count, 1, window) views of one copy of their samples, as stock's unfold
        # gives them, cut where the model runs
        span = audio.read(first * step, (first + count - 1) * step + window)
        span = torch.from_numpy(span).to(inference.device)
        return span[None].unfold(1, window, step).transpose(0, 1)

    outputs = []
    first = 0
    while True:
        needed = (first + batch_size - 1) * step + window
        if audio.available(needed) < needed:
            break
        outputs.append(inference.infer(windows(first, batch_size)))
        first += batch_size
        if hook is not None and estimate is not None:
            hook(completed=first, total=max(estimate, first + 1))

    # the end: stock's last batch of whole windows, then the window padded with zeros
    num_samples = len(audio.waveform())
    num_windows, has_last = _windows(num_samples, window, step)
    if first < num_windows:
        outputs.append(inference.infer(windows(first, num_windows - first)))
    if has_last:
        last = torch.from_numpy(audio.read(num_windows * step, num_samples))
        last = F.pad(last, (0, window - len(last)))[None, None]
        outputs.append(inference.infer(last))
    total = num_windows + has_last
    if hook is not None:
        hook(completed=total, total=total)
    frames = SlidingWindow(start=0.0, duration=inference.duration, step=inference.step)
    return SlidingWindowFeature(np.vstack(outputs), frames)


def _windows(num_samples: int, window: int, step: int) -> tuple[int, bool]:
    """(whole windows, whether a last one padded with zeros follows), as pyannote's
    `Inference.slide` cuts `num_samples`."""
    whole = (num_samples - window) // step + 1 if num_samples >= window else 0
    return whole, num_samples < window or (num_samples - window) % step > 0
