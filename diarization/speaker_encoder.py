"""Resemblyzer's GE2E speaker encoder, fed with mel frames computed by torch.

resemblyzer computes its 40-channel mel spectrogram with librosa (slow to import
and to compile on first use); this module computes the same frames with torch
(`mel_frames`) and runs resemblyzer's own `VoiceEncoder` network on them. The
embeddings match resemblyzer's `embed_utterance` (cosine > 0.999, checked in
tests/test_bundled_pipeline.py). The weights are resemblyzer's package data
(`pretrained.pt`, Apache-2.0): nothing is downloaded.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torchaudio

logger = logging.getLogger(__name__)

#: resemblyzer's hparams: 16 kHz audio, 25 ms window, 10 ms hop, 40 mel channels.
SAMPLE_RATE = 16000
WINDOW_SAMPLES = 400
HOP_SAMPLES = 160
NUM_MELS = 40
EMBEDDING_DIMENSION = 256
#: Windows per LSTM batch: bounds memory on long recordings.
BATCH_SIZE = 256


class SpeakerEncoderError(RuntimeError):
    """The speaker encoder could not be loaded; the message says what to install."""


def mel_frames(waveform: np.ndarray) -> np.ndarray:
    """resemblyzer's `audio.wav_to_mel_spectrogram`, computed with torch.

    A power (not log) mel spectrogram: periodic Hann window of 400 samples, hop 160,
    frames centred with zero padding, 40 Slaney-normalised Slaney-scale mel bands
    from 0 to 8 kHz, as librosa's `melspectrogram` defaults give.

    Args:
        waveform: (num_samples,) float samples at 16 kHz.

    Returns:
        (num_frames, 40) float32, frame i centred on sample 160 * i.
    """
    samples = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    spectrum = torch.stft(
        samples,
        n_fft=WINDOW_SAMPLES,
        hop_length=HOP_SAMPLES,
        window=torch.hann_window(WINDOW_SAMPLES),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    # (num_freqs, num_frames)
    power = spectrum.real.square() + spectrum.imag.square()
    banks = _mel_banks()
    # (num_frames, num_mels)
    return (power.T.double() @ banks).float().numpy()


def _mel_banks() -> torch.Tensor:
    return torchaudio.functional.melscale_fbanks(
        n_freqs=WINDOW_SAMPLES // 2 + 1,
        f_min=0.0,
        f_max=SAMPLE_RATE / 2,
        n_mels=NUM_MELS,
        sample_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    ).double()


class SpeakerEncoder:
    """GE2E embeddings (256-d, L2-normalised) of windows of a waveform."""

    name = "resemblyzer GE2E (256-d)"

    def __init__(self, network: torch.nn.Module, device: torch.device):
        self._network = network
        self.device = device

    @classmethod
    def load(cls, device: torch.device) -> SpeakerEncoder:
        """Load resemblyzer's packaged `pretrained.pt` onto `device`.

        Raises:
            SpeakerEncoderError: resemblyzer is not installed or fails to import.
        """
        try:
            from resemblyzer import VoiceEncoder
        except ImportError as e:
            raise SpeakerEncoderError(
                f"could not import resemblyzer ({e}); install it with "
                "`pip install resemblyzer==0.1.4 'setuptools<81'`"
            ) from e
        network = VoiceEncoder(device=device, verbose=False).eval()
        return cls(network, device)

    def embed_frames(self, frames: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Embed windows made of the mel frames at `indices`.

        Args:
            frames: (total_frames, 40) from `mel_frames`.
            indices: (num_windows, window_frames) frame indices of each window;
                indices past the end read zero frames (resemblyzer zero-pads its
                last partial the same way).

        Returns:
            (num_windows, 256) float32, each row of unit length.
        """
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return np.zeros((0, EMBEDDING_DIMENSION), dtype=np.float32)
        needed = int(indices.max()) + 1
        if needed > len(frames):
            frames = np.pad(frames, ((0, needed - len(frames)), (0, 0)))
        # (num_windows, window_frames, num_mels)
        windows = np.ascontiguousarray(frames[indices], dtype=np.float32)
        outputs = []
        with torch.inference_mode():
            for i in range(0, len(windows), BATCH_SIZE):
                batch = torch.from_numpy(windows[i : i + BATCH_SIZE]).to(self.device)
                outputs.append(self._network(batch).cpu().numpy())
        return np.concatenate(outputs).astype(np.float32)

    def embed_utterance(self, waveform: np.ndarray, rate: float = 1.3, min_coverage: float = 0.75):
        """resemblyzer's `VoiceEncoder.embed_utterance`, with torch mel frames.

        The utterance is cut into 1.6 s partials, `rate` per second; the result is
        the L2-normalised mean of their embeddings.

        Args:
            waveform: (num_samples,) float samples at 16 kHz, already normalised as
                the caller wants (resemblyzer's `preprocess_wav` is not applied).
            rate: partials per second.
            min_coverage: a last partial that covers less than this share of its
                1.6 s is dropped (unless it is the only one).

        Returns:
            (256,) float32 of unit length.
        """
        wav_slices, mel_slices = self._network.compute_partial_slices(
            len(waveform), rate, min_coverage
        )
        length = wav_slices[-1].stop
        if length >= len(waveform):
            waveform = np.pad(waveform, (0, length - len(waveform)))
        frames = mel_frames(waveform)
        indices = np.array([np.arange(s.start, s.stop) for s in mel_slices])
        partials = self.embed_frames(frames, indices)
        mean = partials.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)
