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

Here a pair's frames are counted as in its stock batch (`stock_widths`), and it is
padded either to its stock width or, when that leaves more zeros past its speech
than ECAPA's convolutions reach (`reach_samples`), to any width that still does:
its end then sees zeros and never the padded batch's reflected end, in stock's
batch as here. A pair padded to its stock width may share a wider batch: the
filter bank pads with zeros (what the wider batch has there), and ECAPA's
convolutions reflect the pair at its stock batch's last frame (`EcapaForward`'s
`frame_ends`). So its model input, frame counts and surroundings are stock's, and
its embedding is stock's up to the order of floating-point sums (`plan_batches`
groups the pairs). The inputs come from a few tensor operations on the model's
device:

- a pair's signal is its window's samples where its frame mask, upsampled to
  samples by nearest neighbour as pyannote does, is on, joined, then zeros;
- the fbank's mean normalisation over the pair's frames (SpeechBrain's
  `InputNormalization(norm_type="sentence", std_norm=False)`) is one masked mean;
- ECAPA is SpeechBrain's module computed by `ecapa_forward`, on stock's frame
  counts.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from diarization.ecapa_forward import EcapaForward, FbankFeatures, host_to_device


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


def reach_samples(classifier) -> int:
    """Zeros past a signal's end beyond which its embedding no longer depends on how
    the batch ends: ECAPA's convolutions reach at most the sum of their half-widths
    times dilations (65 frames: 2 in the first layer, 7 chained convolutions of
    dilation 2, 3 and 4 in the three SE-Res2Net blocks), SpeechBrain counts up to 2
    frames past the speech, and a frame spans a whole fbank window."""
    stft = classifier.mods.compute_features.compute_STFT
    reach = sum(
        (conv.kernel_size[0] - 1) // 2 * conv.dilation[0]
        for conv in classifier.mods.embedding_model.modules()
        if isinstance(conv, torch.nn.Conv1d)
    )
    return (reach + 3) * stft.hop_length + stft.win_length


def mixes_widths(classifier, ecapa: EcapaForward) -> bool:
    """Whether a pair padded to its stock width may share a wider batch (`plan_batches`):
    when `ecapa` computes the model (it reflects each row at its own end) and the
    filter bank pads the signals with zeros, as published."""
    stft = classifier.mods.compute_features.compute_STFT
    return ecapa.unsupported is None and stft.pad_mode == "constant"


def plan_batches(
    speech_samples: np.ndarray,
    stock_width: np.ndarray,
    batch_size: int,
    reach: int,
    quantum_samples: int = 1,
    mix_widths: bool = False,
) -> list[tuple[np.ndarray, int]]:
    """Which pairs share a model call, and the width each call pads to.

    Args:
        speech_samples: (num_pairs,) samples each pair's mask keeps.
        stock_width: (num_pairs,) the width stock pads each pair to (`stock_widths`).
        batch_size: pairs per call.
        reach: `reach_samples` of the model.
        quantum_samples: widths free to choose are rounded up to a multiple of this
            (on a GPU, so that cuDNN and cuFFT reuse their plans for a few widths).
        mix_widths: whether pairs of different stock widths may share a call
            (`mixes_widths`).

    Returns:
        (indices of the pairs, width) of each call, widest first (each call then
        fits in GPU memory the one before freed). A pair within `reach` of its
        stock width needs that width, the others their speech plus `reach`.
        Mixing widths, the pairs go by what they need, most first, `batch_size` to a
        call (on 10 minutes of conversation, 28 calls of 64 pairs instead of 50 of 2
        to 64). Otherwise a pair within `reach` is padded to exactly its stock width
        in calls of that width; the others, longest speech first, share calls.
    """
    near = stock_width - speech_samples < reach
    if mix_widths:
        need = np.where(near, stock_width, speech_samples + reach)
        order = np.argsort(-need, kind="stable")
        groups = (order[i : i + batch_size] for i in range(0, len(order), batch_size))
        return [(group, padded_width(int(need[group[0]]), quantum_samples)) for group in groups]
    batches = []
    exact = np.flatnonzero(near)
    for width in np.unique(stock_width[exact]):
        group = exact[stock_width[exact] == width]
        batches += [
            (group[i : i + batch_size], int(width)) for i in range(0, len(group), batch_size)
        ]
    free = np.flatnonzero(~near)
    free = free[np.argsort(-speech_samples[free], kind="stable")]
    for i in range(0, len(free), batch_size):
        group = free[i : i + batch_size]
        width = padded_width(int(speech_samples[group[0]]) + reach, quantum_samples)
        batches.append((group, width))
    return sorted(batches, key=lambda batch: -batch[1])


def padded_width(samples: int, quantum_samples: int) -> int:
    """The smallest multiple of `quantum_samples` that holds `samples`."""
    return -(-samples // quantum_samples) * quantum_samples


def window_rows(
    waveform: torch.Tensor, end: int, num_samples: int, device: torch.device
) -> torch.Tensor:
    """Every window of `num_samples` samples of `waveform`, by its first sample, on `device`.

    The waveform is copied to the device once, with zeros up to `end` (the last
    window's end), as pyannote pads a window past the end of the audio; `rows[starts]`
    is then a batch of windows cut on the device in one step (pyannote crops each
    window on the host, and the batch then went to the device in a copy).

    Args:
        waveform: (num_samples,) the audio.
        end: the sample where the last window ends.
        num_samples: samples per window.
        device: where the windows are needed.

    Returns:
        (max(len(waveform), end) - num_samples + 1, num_samples) a view of the padded
        waveform: row s is the window starting at sample s.
    """
    padded = torch.zeros(max(len(waveform), end), dtype=waveform.dtype, device=device)
    padded[: len(waveform)] = waveform
    return padded.unfold(0, num_samples, 1)


def windows_on_device(
    waveform: torch.Tensor,
    sample_rate: int,
    window,
    chunks: np.ndarray,
    device: torch.device,
):
    """`cut(these)`: the windows of `chunks[these]` on `device`, each as pyannote's
    `Audio.crop(file, window[c], duration=window.duration, mode="pad")` cuts it from
    `waveform` (1, num_samples): the audio goes to the device once, zero-padded
    (`window_rows`), with each chunk's first sample, and a batch's
    windows are one indexing there."""
    num_samples = math.floor(window.duration * sample_rate)
    # pyannote's crop starts at floor(start * sample_rate)
    firsts = np.array(
        [math.floor(window[c].start * sample_rate) for c in range(int(chunks.max(initial=0)) + 1)]
    )
    if firsts.min() < 0:
        raise ValueError("windows are expected to start inside the audio")
    end = int(firsts.max()) + num_samples
    rows = window_rows(waveform[0], end, num_samples, device)
    starts = torch.from_numpy(firsts[chunks]).to(device)
    return lambda these: rows[starts[these]]


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
    classifier,
    windows: torch.Tensor,
    masks: torch.Tensor,
    speech_samples: torch.Tensor,
    stock_width: torch.Tensor,
    width: int,
    ecapa: EcapaForward | None = None,
    features: FbankFeatures | None = None,
) -> torch.Tensor:
    """ECAPA embeddings of a batch of (window, speaker) pairs, on the classifier's device.

    Args:
        classifier: a loaded SpeechBrain `EncoderClassifier` for
            speechbrain/spkrec-ecapa-voxceleb.
        windows: (batch, num_samples) each pair's window (best on the classifier's
            device already: `window_rows`).
        masks: (batch, num_frames) each pair's frame mask, 0 or 1.
        speech_samples: (batch,) on the host, the samples each mask keeps (what
            `masked_signals` keeps), so that nothing waits for the device.
        stock_width: (batch,) on the host, the width stock pads each pair to; ECAPA
            reflects each pair at its frames (`mixes_widths`), else at the batch's.
        width: samples to pad the signals to (`plan_batches`).
        ecapa: the classifier's embedding model's forward pass (built when not given).
        features: the classifier's filter-bank features (built when not given).

    Returns:
        (batch, 192) embeddings on the classifier's device; the caller fetches
        them, so the device can run ahead of the host.
    """
    mods = classifier.mods
    device = classifier.device
    # SpeechBrain's frame counts in stock's batch: the pair's length relative to the
    # batch's width, times the frames of that width, in float32 as SpeechBrain does
    scaled = speech_samples / stock_width * _num_frames(mods, stock_width)
    # frames ECAPA's masks keep (arange(frames) < scaled), and frames the fbank
    # normalisation averages (its torch.round)
    pooled_frames, normalised_frames = torch.ceil(scaled), torch.round(scaled)
    signals = masked_signals(
        windows.to(device, non_blocking=True), masks.to(device, non_blocking=True), width
    )
    if features is None:
        features = FbankFeatures(mods.compute_features, device)
    # (batch, frames, 80)
    feats = _mean_normalise(
        mods.mean_var_norm, features(signals), host_to_device(normalised_frames, device)
    )
    if ecapa is None:
        ecapa = EcapaForward(mods.embedding_model)
    ends = _num_frames(mods, stock_width) if mixes_widths(classifier, ecapa) else None
    return ecapa(feats, pooled_frames.long(), ends)


def _num_frames(mods, num_samples: torch.Tensor) -> torch.Tensor:
    """Fbank frames of `num_samples` samples (centred frames every hop)."""
    stft = mods.compute_features.compute_STFT
    if not stft.center:
        raise ValueError("ECAPA's fbank is expected to centre its frames (as published)")
    return num_samples // stft.hop_length + 1


def _mean_normalise(norm, feats: torch.Tensor, frame_counts: torch.Tensor) -> torch.Tensor:
    """`norm` (SpeechBrain's `InputNormalization`) over the first `frame_counts` frames
    of each row, in one step when it is ECAPA's per-sentence mean normalisation, as
    published (SpeechBrain loops over the batch with a host-device synchronisation
    per row); any other setting runs as is."""
    from speechbrain.processing.features import InputNormalization

    num_frames = feats.shape[1]
    if not (
        isinstance(norm, InputNormalization)
        and norm.norm_type == "sentence"
        and norm.mean_norm
        and not norm.std_norm
    ):
        return norm(feats, frame_counts / num_frames)
    valid = (torch.arange(num_frames, device=feats.device) < frame_counts[:, None]).to(feats.dtype)
    # (batch, num_features) the mean over each row's frames
    mean = torch.einsum("bt,btf->bf", valid, feats) / frame_counts[:, None]
    # SpeechBrain divides by a standard deviation of 1 when std_norm is off
    return feats - mean[:, None, :]
