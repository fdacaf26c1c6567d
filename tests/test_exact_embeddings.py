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
from diarization.ecapa_forward import EcapaForward, FbankFeatures
from diarization.pyannote_pipeline import LocalSpeechBrainEmbedding, load_models

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
    counts = torch.tensor([301.0, 150, 37, 300, 5])
    got = exact_embeddings._mean_normalise(norm, feats, counts)
    torch.testing.assert_close(got, norm(feats, counts / 301), rtol=1e-5, atol=1e-5)
    # each row minus the mean of its first `count` frames
    torch.testing.assert_close(got[2], feats[2] - feats[2, :37].mean(dim=0), rtol=1e-5, atol=1e-5)


def test_embeddings_are_pyannotes(ecapa):
    windows, masks = _windows(8), _masks(8, seed=2)
    speech = _speech_samples(masks)
    longest = int(speech.max())
    with torch.inference_mode():
        expected = ecapa(windows[:, None], masks=masks)
        # the batch as pyannote pads it: every pair's stock width is its longest
        got = exact_embeddings.embed(
            ecapa.classifier_, windows, masks, speech, torch.full_like(speech, longest), longest
        ).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_features_are_speechbrains_fbank(ecapa):
    fbank = ecapa.classifier_.mods.compute_features
    signals = _windows(3)[:, :24000]
    signals[2, 9000:] = 0  # a padded row
    with torch.inference_mode():
        expected = fbank(signals)
        features = FbankFeatures(fbank, torch.device("cpu"))
        assert features.matrix is not None
        torch.testing.assert_close(features(signals), expected, rtol=0, atol=0)


def test_features_build_their_filter_matrix_once_on_the_device(random_weights, monkeypatch):
    # SpeechBrain keeps its STFT window as a plain attribute (left on the host when the
    # model moves) and builds its filter matrix on the host on every call: each copy
    # to a GPU waited for the work queued before it. "meta" stands in for a GPU here.
    fbank = LocalSpeechBrainEmbedding(
        random_weights.embedding, torch.device("cpu")
    ).classifier_.mods.compute_features
    filters = fbank.compute_fbanks
    built = []
    create = filters._create_fbank_matrix
    monkeypatch.setattr(filters, "_create_fbank_matrix", lambda *a: built.append(1) or create(*a))
    features = FbankFeatures(fbank, torch.device("meta"))
    assert fbank.compute_STFT.window.device.type == "meta"
    assert features.matrix.device.type == "meta" and features.matrix.shape == (201, 80)
    signals = torch.zeros(2, 16000, device="meta")
    with torch.inference_mode():
        for _ in range(3):
            assert features(signals).shape == (2, 101, 80)
    assert built == [1]
    # SpeechBrain's own forward builds it on every call
    with torch.inference_mode():
        fbank(signals)
        fbank(signals)
    assert built == [1, 1, 1]


def test_features_of_a_filter_bank_that_changes_are_its_own(ecapa):
    fbank = ecapa.classifier_.mods.compute_features
    signals = _windows(2)[:, :16000]
    filters = fbank.compute_fbanks
    filters.freeze = False  # learnable centre frequencies and bands: rebuilt each call
    try:
        features = FbankFeatures(fbank, torch.device("cpu"))
        assert features.matrix is None
        with torch.inference_mode():
            filters.f_central.data += 1e-3  # moved since the features were made
            torch.testing.assert_close(features(signals), fbank(signals), rtol=0, atol=0)
    finally:
        filters.freeze = True


def _file_and_crops(seconds: float, num_chunks: int):
    """An in-memory file, pyannote's 5 s windows every 0.5 s over it (the last ones past
    its end) and pyannote's crops of them."""
    from pyannote.audio.core.io import Audio
    from pyannote.core import SlidingWindow

    audio = decode_audio(shared_file("real/pyannote_sample.wav"))[: int(seconds * 16000)]
    file = {"waveform": torch.from_numpy(audio)[None], "sample_rate": 16000}
    window = SlidingWindow(start=0.0, duration=5.0, step=0.5)
    crop = Audio(sample_rate=16000, mono="downmix").crop
    crops = [crop(file, window[c], duration=5.0, mode="pad")[0][0] for c in range(num_chunks)]
    return file, window, torch.stack(crops)


def test_windows_on_the_device_are_pyannotes_padded_crops():
    file, window, crops = _file_and_crops(7.0077, 6)
    assert (crops[-1, 112123 - 120000 :] == 0).all()  # past the end: zeros
    chunks = np.array([5, 0, 3, 3, 1])  # in batch order, a window for two pairs
    cut = exact_embeddings.windows_on_device(
        file["waveform"], 16000, window, chunks, torch.device("cpu")
    )
    torch.testing.assert_close(cut(slice(0, 5)), crops[chunks], rtol=0, atol=0)
    torch.testing.assert_close(cut(slice(2, 4)), crops[[3, 3]], rtol=0, atol=0)


def test_on_the_cpu_windows_are_cut_from_the_audio_without_a_copy(random_weights, monkeypatch):
    # a copy of 4 hours would cost 0.9 GB of host memory
    fast = load_models(random_weights, torch.device("cpu"))
    monkeypatch.setattr(exact_embeddings, "window_rows", None)  # not called
    file, window, crops = _file_and_crops(7.0077, 6)
    chunks = np.array([4, 5, 0])
    cut = fast._window_cutter(file, window, chunks, torch.device("cpu"))
    torch.testing.assert_close(cut(slice(0, 3)), crops[chunks], rtol=0, atol=0)


def test_windows_are_cut_on_the_host_when_the_gpu_is_full(random_weights, monkeypatch, caplog):
    fast = load_models(random_weights, torch.device("cpu"))
    window_rows = exact_embeddings.window_rows

    def full(waveform, end, num_samples, device):
        if device.type != "cpu":  # "meta" pretends to be a full GPU
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return window_rows(waveform, end, num_samples, device)

    monkeypatch.setattr(exact_embeddings, "window_rows", full)
    file, window, crops = _file_and_crops(6.0, 3)
    cut = fast._window_cutter(file, window, np.array([2, 1]), torch.device("meta"))
    got = cut(slice(0, 2))
    assert got.device.type == "cpu"
    torch.testing.assert_close(got, crops[[2, 1]], rtol=0, atol=0)
    assert "cutting windows on the host" in caplog.text


def test_ecapa_reaches_65_frames_and_a_window(ecapa):
    # (2 + 7 x (2 + 3 + 4) frames of convolution + 3 counted) x 160 + a 400-sample window
    assert exact_embeddings.reach_samples(ecapa.classifier_) == 68 * 160 + 400


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pairs_padded_wider_than_their_stock_batch_are_embedded_as_in_it(ecapa, seed, monkeypatch):
    windows, masks = _windows(8), _masks(8, seed)
    speech = _speech_samples(masks)
    longest = int(speech.max())
    reach = exact_embeddings.reach_samples(ecapa.classifier_)
    stock_width = torch.full_like(speech, longest)
    far = (longest - speech >= reach).numpy()
    assert far.any() and not far.all()
    assert exact_embeddings.mixes_widths(
        ecapa.classifier_, EcapaForward(ecapa.classifier_.mods.embedding_model)
    )

    def wide() -> np.ndarray:  # padded to a different width, past every pair's reach
        return exact_embeddings.embed(
            ecapa.classifier_, windows, masks, speech, stock_width, longest + reach
        ).numpy()

    with torch.inference_mode():
        expected = ecapa(windows[:, None], masks=masks)  # pyannote's batch
        mixed = wide()
        monkeypatch.setattr(exact_embeddings, "mixes_widths", lambda *_: False)
        at_batch_end = wide()
    # every pair is stock's, the longest too: ECAPA reflects it at stock's last frame
    np.testing.assert_allclose(mixed, expected, rtol=1e-4, atol=1e-5)
    # reflected at the wider batch's end, those that stock pads past their reach are
    # still stock's ...
    np.testing.assert_allclose(at_batch_end[far], expected[far], rtol=1e-4, atol=1e-5)
    # ... and the longest saw the zeros past stock's end instead of its reflection
    # (measured here, the effect fades to rounding 10 frames from the end, well inside
    # the reach)
    longest_pair = (speech == longest).numpy()
    assert np.abs(at_batch_end[longest_pair] - expected[longest_pair]).max() > 1e-3


def test_stock_widths_are_the_longest_speech_of_each_batch_of_pairs():
    # 4 windows x 3 local speakers, batches of 5 pairs in window order
    speech = np.array([[9, 0, 3], [1, 2, 4], [8, 7, 0], [6, 5, 11]], dtype=np.float32)
    expected = np.array([[9, 9, 9], [9, 9, 8], [8, 8, 8], [8, 11, 11]], dtype=np.float32)
    np.testing.assert_array_equal(exact_embeddings.stock_widths(speech, 5), expected)
    np.testing.assert_array_equal(exact_embeddings.stock_widths(speech, 32), np.full((4, 3), 11))
    np.testing.assert_array_equal(exact_embeddings.stock_widths(speech, 1), speech)


def test_batches_pad_pairs_near_their_stock_width_to_it_and_the_others_past_their_reach():
    speech = np.array([100, 95, 60, 20, 50, 10, 48])
    stock = np.array([100, 100, 100, 100, 50, 50, 50])
    plan = exact_embeddings.plan_batches(speech, stock, batch_size=2, reach=15, quantum_samples=8)
    got = [(batch.tolist(), width) for batch, width in plan]
    # within 15 of their stock width: batches of that width; the others, longest
    # first, padded past speech + 15 (a multiple of 8); widest batches first
    assert got == [([0, 1], 100), ([2, 3], 80), ([4, 6], 50), ([5], 32)]
    # every pair is in one batch
    assert sorted(i for batch, _ in plan for i in batch) == list(range(7))


def test_batches_mixing_widths_take_pairs_by_the_width_they_need():
    speech = np.array([100, 95, 60, 20, 50, 10, 48])
    stock = np.array([100, 100, 100, 100, 50, 50, 50])
    plan = exact_embeddings.plan_batches(
        speech, stock, batch_size=2, reach=15, quantum_samples=8, mix_widths=True
    )
    got = [(batch.tolist(), width) for batch, width in plan]
    # needs: the stock width within 15 of it (100, 100, 50, 50), else speech + 15
    # (75, 35, 25); most first, each call as wide as its first (a multiple of 8)
    assert got == [([0, 1], 104), ([2, 4], 80), ([6, 3], 56), ([5], 32)]


def test_a_batch_of_pairs_from_different_stock_batches_is_embedded_as_they_are(ecapa):
    # two stock batches of 4 pairs, each padded to its longest; ours embeds the 8 in
    # one call as wide as the first's longest: each pair as in its own stock batch
    windows, masks = _windows(8), _masks(8, seed=6)
    masks[1], masks[6] = 1, 0
    masks[6, :200] = 1
    speech = _speech_samples(masks)
    with torch.inference_mode():
        expected = np.concatenate(
            [ecapa(windows[i : i + 4, None], masks=masks[i : i + 4]) for i in (0, 4)]
        )
        stock_width = torch.from_numpy(
            exact_embeddings.stock_widths(speech.numpy(), batch_size=4)
        ).long()
        reach = exact_embeddings.reach_samples(ecapa.classifier_)
        near = (stock_width - speech < reach).numpy()
        # pairs padded to a stock width shorter than the call's
        assert (near & (stock_width < NUM_SAMPLES).numpy()).any()
        got = exact_embeddings.embed(
            ecapa.classifier_, windows, masks, speech, stock_width, NUM_SAMPLES
        ).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("stock_batch", [16, 6])
@pytest.mark.parametrize("whole_window", [True, False])
def test_on_a_gpu_the_embeddings_are_pyannotes(
    random_weights, whole_window, stock_batch, strict_fp32
):
    # fp32 as pyannote runs it: with TF32 (which importing SpeechBrain switches on for
    # cuBLAS too) the two differ by 5e-4 (H200, 2026-11-26)
    cuda = torch.device("cuda")
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
    # stock's batches of `stock_batch` pairs, each padded to its longest; ours one call
    stock_width = exact_embeddings.stock_widths(speech.numpy(), stock_batch)
    assert (len(set(stock_width)) > 1) == (stock_batch < 16)
    with torch.inference_mode():
        expected = np.concatenate(
            [
                ecapa(
                    windows[i : i + stock_batch, None].to(cuda),
                    masks=masks[i : i + stock_batch].to(cuda),
                )
                for i in range(0, 16, stock_batch)
            ]
        )
        got = exact_embeddings.embed(
            ecapa.classifier_,
            windows.pin_memory(),
            masks.pin_memory(),
            speech,
            torch.from_numpy(stock_width).long(),
            width,
        ).cpu()
    # pairs with too little speech are NaN in stock (the stage does not embed them)
    embedded = np.isfinite(expected[:, 0])
    assert embedded.sum() >= 15
    np.testing.assert_allclose(got.numpy()[embedded], expected[embedded], rtol=1e-3, atol=1e-4)


@pytest.mark.gpu
def test_on_a_gpu_a_batch_is_queued_without_waiting_for_the_gpu(random_weights):
    # every wait of the host for the GPU kept it from queueing the next batch: the STFT
    # window's and the filter matrix's copies from pageable memory did (H200, 2026-11-26)
    cuda = torch.device("cuda")
    classifier = LocalSpeechBrainEmbedding(random_weights.embedding, cuda).classifier_
    ecapa = EcapaForward(classifier.mods.embedding_model)
    features = FbankFeatures(classifier.mods.compute_features, cuda)
    windows = torch.randn(8, NUM_SAMPLES, device=cuda)
    masks = _masks(8, seed=6).to(cuda)
    speech = _speech_samples(masks.cpu())
    # half the pairs of a wider stock batch, half ending before this one's (`frame_ends`)
    stock_width = torch.full_like(speech, int(speech.max()) + 5000)
    stock_width[::2] = speech[::2]
    with torch.inference_mode():
        for width in (NUM_SAMPLES, NUM_SAMPLES - 4000):
            batch = (windows, masks, speech, stock_width, width)
            exact_embeddings.embed(classifier, *batch, ecapa=ecapa, features=features)
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                queued = exact_embeddings.embed(classifier, *batch, ecapa=ecapa, features=features)
            finally:
                torch.cuda.set_sync_debug_mode("default")
            assert queued.shape == (8, 192) and torch.isfinite(queued).all()


@pytest.mark.gpu
def test_on_a_gpu_features_stay_float32_under_autocast(random_weights, strict_fp32):
    # as SpeechBrain's Fbank: its power spectrum overflows float16
    cuda = torch.device("cuda")
    fbank = LocalSpeechBrainEmbedding(
        random_weights.embedding, cuda
    ).classifier_.mods.compute_features
    features = FbankFeatures(fbank, cuda)
    signals = torch.randn(4, 32000, device=cuda)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
        expected, got = fbank(signals), features(signals)
    assert got.dtype == expected.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
