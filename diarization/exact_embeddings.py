"""ECAPA embeddings of (window, speaker) pairs as stock pyannote computes them, batched
on the model's device.

Stock pyannote embeds every (window, local speaker) pair in window order, 32 to a
batch. Its SpeechBrain wrapper (`SpeechBrainPretrainedSpeakerEmbedding.__call__`)
cuts each pair's masked samples out one pair at a time on the host and pads them
to the most speech of any pair in the batch, inactive ones included; SpeechBrain
then counts each pair's frames from its length relative to that width, and
mean-normalises each pair's fbank in a Python loop with a host-device
synchronisation per pair. So a pair's embedding depends on its batch: on random
weights, counting one frame more or less moved embeddings to a cosine of 0.93.

Here a pair is embedded padded to the width stock pads it to (`stock_widths`), so
its model input, its frame counts and the zeros and reflection its convolutions
see past its end are stock's, and its embedding is stock's up to the order of
floating-point sums; only which pairs share the model call differs. The inputs
come from a few tensor operations on the model's device:

- a pair's signal is its window's samples where its frame mask, upsampled to
  samples by nearest neighbour as pyannote does, is on, joined, then zeros;
- the fbank's mean normalisation over the pair's frames (SpeechBrain's
  `InputNormalization(norm_type="sentence", std_norm=False)`) is one masked mean;
- ECAPA is SpeechBrain's module, called with SpeechBrain's relative lengths.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def stock_widths(speech_samples: np.ndarray, batch_size: int) -> np.ndarray:
    """The width stock pyannote pads each pair's signal to.

    Args:
        speech_samples: (num_chunks, local_speakers) samples each pair's mask keeps.
        batch_size: stock's embedding batch size (pairs per batch, in window order).

    Returns:
        (num_chunks, local_speakers) the most any pair of its batch keeps.
    """
    flat = speech_samples.reshape(-1)
    batches = np.pad(flat, (0, -len(flat) % batch_size)).reshape(-1, batch_size)
    widths = np.repeat(batches.max(axis=1), batch_size)[: len(flat)]
    return widths.reshape(speech_samples.shape)


def masked_signals(windows: torch.Tensor, masks: torch.Tensor, width: int) -> torch.Tensor:
    """Each window's samples under its mask, joined and zero-padded, as pyannote cuts them.

    Args:
        windows: (batch, num_samples) waveforms.
        masks: (batch, num_frames) 1 where the speaker is active, else 0.
        width: samples per output row, at least the most any row keeps.

    Returns:
        (batch, width) the kept samples of each row in order, then zeros.
    """
    batch, num_samples = windows.shape
    # (batch, num_samples) pyannote's upsampled mask
    keep = F.interpolate(masks[:, None].float(), size=num_samples, mode="nearest")[:, 0] > 0.5
    # where each kept sample lands in its row; the rest go to a spare last column
    slot = torch.where(keep, torch.cumsum(keep, dim=1) - 1, width)
    signals = windows.new_zeros((batch, width + 1))
    signals.scatter_(1, slot, windows)
    return signals[:, :width]


def embed(
    classifier, windows: torch.Tensor, masks: torch.Tensor, speech_samples: torch.Tensor, width: int
) -> torch.Tensor:
    """ECAPA embeddings of a batch of (window, speaker) pairs, on the classifier's device.

    Args:
        classifier: a loaded SpeechBrain `EncoderClassifier` for
            speechbrain/spkrec-ecapa-voxceleb.
        windows: (batch, num_samples) each pair's window (any device; pinned host
            memory lets the copy overlap the model).
        masks: (batch, num_frames) each pair's frame mask, 0 or 1.
        speech_samples: (batch,) the samples each mask keeps (what `masked_signals`
            keeps), given so that nothing waits for the device to count them.
        width: samples to pad the signals to: the width stock pyannote pads these
            pairs to (`stock_widths`), at least the largest of `speech_samples`.

    Returns:
        (batch, 192) embeddings on the classifier's device; the caller fetches
        them, so the device can run ahead of the host.
    """
    mods = classifier.mods
    device = classifier.device
    signals = masked_signals(
        windows.to(device, non_blocking=True), masks.to(device, non_blocking=True), width
    )
    # SpeechBrain's lengths: relative to the padded width
    relative = (speech_samples / width).to(device, non_blocking=True)
    feats = mods.compute_features(signals)
    feats = _mean_normalise(mods.mean_var_norm, feats, relative)
    return mods.embedding_model(feats, relative)[:, 0]


def _mean_normalise(norm, feats: torch.Tensor, relative: torch.Tensor) -> torch.Tensor:
    """`norm(feats, relative)` (SpeechBrain's `InputNormalization`) in one step when it
    is ECAPA's per-sentence mean normalisation, as published (SpeechBrain loops over
    the batch with a host-device synchronisation per row); any other setting runs
    as is."""
    from speechbrain.processing.features import InputNormalization

    if not (
        isinstance(norm, InputNormalization)
        and norm.norm_type == "sentence"
        and norm.mean_norm
        and not norm.std_norm
    ):
        return norm(feats, relative)
    num_frames = feats.shape[1]
    # (batch,) frames of each row, rounded as SpeechBrain rounds them
    counts = torch.round(relative * num_frames)
    valid = (torch.arange(num_frames, device=feats.device) < counts[:, None]).to(feats.dtype)
    # (batch, num_features) the mean over each row's frames
    mean = torch.einsum("bt,btf->bf", valid, feats) / counts[:, None]
    # SpeechBrain divides by a standard deviation of 1 when std_norm is off
    return feats - mean[:, None, :]
