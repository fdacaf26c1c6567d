"""Approximate ECAPA embeddings from one pass over the audio (opt-in, not the default).

Stock pyannote runs ECAPA once per (5 s window, local speaker) pair, on the
window's samples under the speaker's mask: windows start every 0.5 s, so each
second of audio goes through the whole model once per window and speaker that
covers it, up to 30 times. Here ECAPA's frame-level trunk (fbank, mean
normalisation, the TDNN and SE-Res2Net blocks, multi-layer aggregation) runs
once over overlapping chunks of audio, and each pair is pooled from its window's
frames: attentive statistics pooling restricted to the speaker's active frames,
then ECAPA's last batch norm and linear layer.

What differs from the exact embedding (the approximation):
- the trunk sees the window in its context (pauses, the other speakers: its
  convolutions reach about 0.1 s across each boundary) instead of the speaker's
  samples cut out and joined;
- the fbank mean normalisation and the squeeze-excitation gates average over the
  chunk instead of over the pair's samples.
The pooling itself is exact: pooled from a chunk that is exactly one window with
every frame active, the embedding is the model's own (tested). Trunk and pooling
are `ecapa_forward`'s, the exact stage's forward pass: each pair's active frames
are gathered to the front of its row, and pooled as that pass pools the frames it
counts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from diarization.ecapa_forward import EcapaForward, FbankFeatures

SAMPLE_RATE = 16000
#: fbank hop: one feature frame every 10 ms, centred on sample 160 k.
HOP_SAMPLES = 160
#: Seconds of audio per trunk pass. Each window lies inside one chunk; chunks
#: start every CHUNK_SECONDS - window seconds (5 s), so each second of audio goes
#: through the trunk twice, instead of once per covering window and speaker.
CHUNK_SECONDS = 10.0
#: Chunks per trunk call on a CPU, and on a GPU (where small calls leave it idle).
CHUNK_BATCH = 2
GPU_CHUNK_BATCH = 16
#: Pairs pooled per call on a CPU (each cut to its own active frames, kept in
#: cache) and on a GPU (padded to the pair with the most active frames; each of
#: the pooling's temporaries then takes up to 32 x 501 x 3072 floats, 197 MB).
POOL_BATCH = 1
GPU_POOL_BATCH = 32


class SinglePassEcapa:
    """ECAPA-TDNN split into a frame-level trunk and a per-pair pooling head.

    Args:
        classifier: a loaded SpeechBrain `EncoderClassifier` for
            speechbrain/spkrec-ecapa-voxceleb (modules compute_features,
            mean_var_norm, embedding_model).
        chunk_seconds: audio per trunk pass (see `CHUNK_SECONDS`).
        compute_type: the trunk runs under autocast with this type (float16 or
            bfloat16 on a GPU: `diarization.precision`); None keeps float32.
        ecapa: the embedding model's `EcapaForward` (built when not given).

    Raises:
        ValueError: the embedding model is not an ECAPA `EcapaForward` computes.
    """

    def __init__(
        self,
        classifier,
        chunk_seconds: float = CHUNK_SECONDS,
        compute_type: torch.dtype | None = None,
        ecapa: EcapaForward | None = None,
    ):
        self._mods = classifier.mods
        self.ecapa = EcapaForward(classifier.mods.embedding_model) if ecapa is None else ecapa
        if self.ecapa.unsupported is not None:
            raise ValueError(f"single-pass embeddings need ECAPA: {self.ecapa.unsupported}")
        self.chunk_seconds = chunk_seconds
        self.compute_type = compute_type
        # SpeechBrain's Fbank without its per-call copies to the device
        self._features = FbankFeatures(classifier.mods.compute_features, self.device)

    @property
    def device(self) -> torch.device:
        return self.ecapa.last[0].device

    def trunk(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame features of a batch of equal-length waveforms.

        Args:
            waveforms: (batch, num_samples) at 16 kHz.

        Returns:
            features: (batch, num_frames, channels) ECAPA's aggregated frame
                features (the attentive pooling's input), in float32.
            attention: (batch, num_frames, attention_channels) the frame part of
                the attention's first layer.
        """
        lengths = torch.ones(len(waveforms), device=waveforms.device)
        feats = self._features(waveforms)
        # normalisation statistics over the chunk
        feats = self._mods.mean_var_norm(feats, lengths)
        enabled = self.compute_type is not None
        with torch.autocast(feats.device.type, dtype=self.compute_type, enabled=enabled):
            features, attention = self.ecapa.frames(feats)
        return features.float(), attention.float()

    def pool(
        self, features: torch.Tensor, attention: torch.Tensor, masks: torch.Tensor
    ) -> torch.Tensor:
        """Embeddings of a batch of pairs from their frames.

        Args:
            features: (pairs, frames, channels), from `trunk`.
            attention: (pairs, frames, attention_channels), from `trunk`.
            masks: (pairs, frames) True where the pair's speaker is active; every
                row needs at least one active frame.

        Returns:
            (pairs, 192) embeddings, as ECAPA's output.
        """
        counts = masks.sum(dim=1)
        # each row's active frames first, in their order (a stable sort of ~mask)
        order = torch.sort((~masks).to(torch.uint8), dim=1, stable=True).indices
        longest = int(counts.max())
        order = order[:, :longest, None]
        gathered = [
            torch.take_along_dim(values, order.expand(-1, -1, values.shape[2]), dim=1)
            for values in (features, attention)
        ]
        return self.ecapa.pool(*gathered, counts.cpu())

    def embed_pairs(
        self,
        waveform: torch.Tensor,
        window_starts: np.ndarray,
        window_samples: int,
        masks: np.ndarray,
        pairs: np.ndarray,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Embeddings of (window, speaker) pairs of a recording.

        Args:
            waveform: (num_samples,) mono 16 kHz.
            window_starts: (num_windows,) start of each window in samples.
            window_samples: samples per window (windows past the end see zeros).
            masks: (num_windows, num_speakers, num_mask_frames) speaker activity.
            pairs: (num_pairs, 2) (window, speaker) indices to embed.
            progress: called as progress(chunks_done, num_chunks).

        Returns:
            (num_pairs, 192) float32; NaN rows for pairs with no active frame.
        """
        chunk = int(round(self.chunk_seconds * SAMPLE_RATE))
        hop = chunk - window_samples
        if hop < HOP_SAMPLES:
            raise ValueError(
                f"chunks of {self.chunk_seconds} s cannot hold windows of "
                f"{window_samples / SAMPLE_RATE} s"
            )
        # Feature frames per window (fbank with centred frames) and the mask frame
        # under each, as pyannote's nearest-neighbour upsampling of masks picks it.
        num_frames = window_samples // HOP_SAMPLES + 1
        num_mask_frames = masks.shape[2]
        under = np.minimum(
            np.arange(num_frames) * HOP_SAMPLES * num_mask_frames // window_samples,
            num_mask_frames - 1,
        )
        starts = window_starts[pairs[:, 0]]
        # A window lies inside chunk j when it starts in [j hop, (j + 1) hop);
        # its first frame is at the offset, a whole number of 10 ms hops.
        chunk_of = starts // hop
        offsets = (starts - chunk_of * hop) // HOP_SAMPLES
        order = np.argsort(chunk_of, kind="stable")
        embeddings = np.full((len(pairs), self.ecapa.last[0].shape[0]), np.nan, np.float32)
        chunks = np.unique(chunk_of)
        device = self.device
        on_gpu = device.type != "cpu"
        chunk_batch = GPU_CHUNK_BATCH if on_gpu else CHUNK_BATCH
        pool_batch = GPU_POOL_BATCH if on_gpu else POOL_BATCH
        for done in range(0, len(chunks), chunk_batch):
            batch = chunks[done : done + chunk_batch]
            audio = torch.stack([_samples(waveform, j * hop, chunk) for j in batch]).to(device)
            features, attention = self.trunk(audio)
            members = order[np.isin(chunk_of[order], batch)]
            for i in range(0, len(members), pool_batch):
                group = members[i : i + pool_batch]
                # (group, num_frames) activity of each pair on its window's frames
                active = masks[pairs[group, 0], pairs[group, 1]][:, under] > 0.5
                keep = active.any(axis=1)
                if not keep.any():
                    continue
                group, active = group[keep], active[keep]
                row = np.searchsorted(batch, chunk_of[group])
                # (group, num_frames, channels) each pair's window, cut from its chunk
                result = self.pool(
                    _windows(features, row, offsets[group], num_frames),
                    _windows(attention, row, offsets[group], num_frames),
                    torch.from_numpy(active).to(device),
                )
                embeddings[group] = result.float().cpu().numpy()
            if progress is not None:
                progress(min(done + chunk_batch, len(chunks)), len(chunks))
        return embeddings


def _samples(waveform: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """`length` samples from `start`, zero-padded past the end."""
    piece = waveform[start : start + length]
    if len(piece) < length:
        piece = F.pad(piece, (0, length - len(piece)))
    return piece


def _windows(values: torch.Tensor, rows: np.ndarray, first: np.ndarray, length: int):
    """values[rows[p], first[p] : first[p] + length] for each p, as views when one."""
    if len(rows) == 1:
        return values[rows[0], first[0] : first[0] + length][None]
    return torch.stack([values[r, f : f + length] for r, f in zip(rows, first, strict=True)])
