"""The exact embedding stage's batches (`diarization.exact_embeddings`) against pyannote's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from conftest import shared_file
from diarization import exact_embeddings
from diarization.audio import decode_audio
from diarization.pyannote_pipeline import LocalSpeechBrainEmbedding

NUM_SAMPLES = 80000  # 5 s windows
NUM_FRAMES = 293  # pyannote/segmentation's frames per window


@pytest.fixture(scope="module")
def ecapa(random_weights):
    return LocalSpeechBrainEmbedding(random_weights.embedding, torch.device("cpu"))


def _windows(count: int) -> torch.Tensor:
    audio = decode_audio(shared_file("real/pyannote_sample.wav"))
    return torch.stack(
        [torch.from_numpy(audio[s : s + NUM_SAMPLES].copy()) for s in range(0, count * 8000, 8000)]
    )


def _masks(count: int, seed: int) -> torch.Tensor:
    """Speaker activity in a few runs per window, of different total lengths."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, NUM_FRAMES), np.float32)
    for row in masks:
        for _ in range(rng.integers(1, 4)):
            start = rng.integers(0, NUM_FRAMES - 10)
            row[start : start + rng.integers(10, 125)] = 1
    return torch.from_numpy(masks)


def _speech_samples(masks: torch.Tensor) -> torch.Tensor:
    keep = F.interpolate(masks[:, None], size=NUM_SAMPLES, mode="nearest")[:, 0] > 0.5
    return keep.sum(dim=1)


def test_masked_signals_are_pyannotes_cut(ecapa):
    windows, masks = _windows(6), _masks(6, seed=1)
    masks[2] = 1  # a whole window
    # pyannote's SpeechBrain wrapper, pair by pair
    keep = F.interpolate(masks[:, None], size=NUM_SAMPLES, mode="nearest")[:, 0] > 0.5
    expected = pad_sequence([w[k] for w, k in zip(windows, keep, strict=True)], batch_first=True)
    assert expected.shape == (6, NUM_SAMPLES)
    got = exact_embeddings.masked_signals(windows, masks, NUM_SAMPLES)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # padded wider, the same samples then zeros
    wider = exact_embeddings.masked_signals(windows, masks, NUM_SAMPLES + 4000)
    torch.testing.assert_close(wider[:, :NUM_SAMPLES], expected, rtol=0, atol=0)
    assert not wider[:, NUM_SAMPLES:].any()


def test_mean_normalisation_is_speechbrains_loop(ecapa):
    norm = ecapa.classifier_.mods.mean_var_norm
    feats = torch.randn(5, 301, 80) * 3 + 2
    # relative lengths; 150.5 / 301 rounds to 150 frames (half to even) as SpeechBrain's
    relative = torch.tensor([1.0, 150.5 / 301, 0.123, 300.4 / 301, 0.02])
    got = exact_embeddings._mean_normalise(norm, feats, relative)
    torch.testing.assert_close(got, norm(feats, relative), rtol=1e-5, atol=1e-5)
    # each row minus the mean of its first round(relative * 301) frames
    torch.testing.assert_close(got[2], feats[2] - feats[2, :37].mean(dim=0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], feats[1] - feats[1, :150].mean(dim=0), rtol=1e-5, atol=1e-5)


def test_embeddings_are_pyannotes(ecapa):
    windows, masks = _windows(8), _masks(8, seed=2)
    speech = _speech_samples(masks)
    with torch.inference_mode():
        expected = ecapa(windows[:, None], masks=masks)
        got = exact_embeddings.embed(
            ecapa.classifier_, windows, masks, speech, int(speech.max())
        ).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_pair_padded_to_another_width_is_embedded_differently(ecapa):
    # why each pair gets stock's width: SpeechBrain counts a pair's frames relative
    # to the width, and its convolutions see the end of the padded batch
    windows, masks = _windows(8), _masks(8, seed=1)
    speech = _speech_samples(masks)
    longest = int(speech.max())
    with torch.inference_mode():
        tight = exact_embeddings.embed(ecapa.classifier_, windows, masks, speech, longest)
        wide = exact_embeddings.embed(ecapa.classifier_, windows, masks, speech, longest + 4000)
    # far beyond float rounding (pyannote's and ours agree to a few 1e-6)
    assert (tight - wide).abs().max() > 1e-3


def test_stock_widths_are_the_longest_speech_of_each_batch_of_pairs():
    # 4 windows x 3 local speakers, batches of 5 pairs in window order
    speech = np.array([[9, 0, 3], [1, 2, 4], [8, 7, 0], [6, 5, 11]], dtype=np.float32)
    expected = np.array([[9, 9, 9], [9, 9, 8], [8, 8, 8], [8, 11, 11]], dtype=np.float32)
    np.testing.assert_array_equal(exact_embeddings.stock_widths(speech, 5), expected)
    np.testing.assert_array_equal(exact_embeddings.stock_widths(speech, 32), np.full((4, 3), 11))
    np.testing.assert_array_equal(exact_embeddings.stock_widths(speech, 1), speech)


@pytest.mark.gpu
@pytest.mark.parametrize("whole_window", [True, False])
def test_on_a_gpu_the_embeddings_are_pyannotes(random_weights, whole_window, monkeypatch):
    cuda = torch.device("cuda")
    # fp32 as pyannote runs it: cuDNN's default TF32 differs by 2e-4 (H200, 2026-11-26);
    # cuBLAS is fp32 by default (and torch 2.11 no longer has its allow_tf32 to restore)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    ecapa = LocalSpeechBrainEmbedding(random_weights.embedding, cuda)
    # no ../shared/data on a GPU machine: tones in noise, a different one per window
    rng = np.random.default_rng(4)
    t = np.arange(NUM_SAMPLES) / 16000
    windows = np.stack([np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 400, 16)])
    windows = torch.from_numpy((0.3 * windows + rng.normal(0, 0.05, windows.shape)).astype("f4"))
    masks = _masks(16, seed=5)
    masks[0] = float(whole_window)  # a whole window: padded as pyannote pads
    speech = _speech_samples(masks)
    width = int(speech.max())
    assert (width == NUM_SAMPLES) == whole_window
    with torch.inference_mode():
        expected = ecapa(windows[:, None].to(cuda), masks=masks.to(cuda))
        got = exact_embeddings.embed(
            ecapa.classifier_, windows.pin_memory(), masks.pin_memory(), speech, width
        )
    np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=1e-3, atol=1e-4)
