"""The approximate single-pass embedding stage (`diarization.ecapa_single_pass`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pyannote.audio.utils.signal import binarize

from conftest import shared_file
from diarization import Diarizer
from diarization.audio import decode_audio
from diarization.ecapa_single_pass import SinglePassEcapa
from diarization.pyannote_pipeline import LocalSpeechBrainEmbedding, load_models


@pytest.fixture(scope="module")
def ecapa(random_weights):
    return LocalSpeechBrainEmbedding(random_weights.embedding, torch.device("cpu"))


def _speech(seconds: float, offset: float = 0.0) -> torch.Tensor:
    audio = decode_audio(shared_file("real/pyannote_sample.wav"))
    start = int(offset * 16000)
    return torch.from_numpy(audio[start : start + int(seconds * 16000)].copy())


def test_pooling_a_whole_window_reproduces_ecapa(ecapa):
    single_pass = SinglePassEcapa(ecapa.classifier_)
    windows = torch.stack([_speech(5.0, 1.0), _speech(5.0, 9.0)])
    with torch.inference_mode():
        expected = ecapa.classifier_.encode_batch(windows)[:, 0]
        features, attention = single_pass.trunk(windows)
        # 5 s: 501 frames of 3072 aggregated channels
        assert features.shape == (2, 501, 3072)
        got = single_pass.pool(features, attention, torch.ones(2, 501, dtype=torch.bool))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_the_trunk_builds_the_filter_matrix_once(ecapa, monkeypatch):
    # SpeechBrain's Fbank builds it on the host and copies it to the device every call
    filters = ecapa.classifier_.mods.compute_features.compute_fbanks
    built = []
    create = filters._create_fbank_matrix
    monkeypatch.setattr(filters, "_create_fbank_matrix", lambda *a: built.append(1) or create(*a))
    single_pass = SinglePassEcapa(ecapa.classifier_)
    windows = torch.stack([_speech(3.0, 1.0), _speech(3.0, 9.0)])
    with torch.inference_mode():
        first = single_pass.trunk(windows)[0]
        second = single_pass.trunk(windows)[0]
    assert built == [1]
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_masked_pooling_is_ecapas_pooling_over_the_active_frames(ecapa):
    single_pass = SinglePassEcapa(ecapa.classifier_)
    model = ecapa.classifier_.mods.embedding_model
    with torch.inference_mode():
        features, attention = single_pass.trunk(_speech(5.0, 3.0)[None].repeat(2, 1))
        # ECAPA pools the first 300 frames when told the relative length 300/501
        lengths = torch.tensor([300 / 501, 120 / 501])
        pooled = model.asp(features.transpose(1, 2), lengths=lengths)
        expected = model.fc(model.asp_bn(pooled))[:, :, 0]
        masks = torch.zeros(2, 501, dtype=torch.bool)
        masks[0, :300] = True
        masks[1, :120] = True
        got = single_pass.pool(features, attention, masks)
        # and the frames outside the mask do not matter
        changed = features.clone()
        changed[:, 300:] = 7.0
        assert torch.allclose(single_pass.pool(changed, attention, masks)[0], got[0], atol=1e-5)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_scattered_active_frames_pool_as_ecapa_pools_them_alone(ecapa):
    # a pair's active frames need not be a prefix: rows of a batch with different
    # scattered masks (padded together, as on a GPU) each pool only their own frames
    single_pass = SinglePassEcapa(ecapa.classifier_)
    model = ecapa.classifier_.mods.embedding_model
    masks = torch.from_numpy(np.random.default_rng(0).random((2, 501)) < [[0.3], [0.7]])
    with torch.inference_mode():
        features, attention = single_pass.trunk(torch.stack([_speech(5.0, 3.0), _speech(5.0, 8.0)]))
        got = single_pass.pool(features, attention, masks)
        for row in range(2):
            active = features[row, masks[row]].T[None]
            expected = model.fc(model.asp_bn(model.asp(active)))[0, :, 0]
            torch.testing.assert_close(got[row], expected, rtol=1e-4, atol=1e-5)
            alone = single_pass.pool(
                features[row : row + 1], attention[row : row + 1], masks[row : row + 1]
            )
            torch.testing.assert_close(got[row], alone[0], rtol=1e-5, atol=1e-6)


def test_a_model_the_shared_forward_cannot_compute_is_refused_with_the_reason():
    from types import SimpleNamespace

    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    model = ECAPA_TDNN(80, channels=[32, 32, 32, 32, 96], lin_neurons=8, global_context=False)
    classifier = SimpleNamespace(mods=SimpleNamespace(embedding_model=model.eval()))
    with pytest.raises(ValueError, match="need ECAPA: its attentive pooling has no global"):
        SinglePassEcapa(classifier)


def test_each_pair_is_pooled_from_its_own_window(ecapa):
    # windows every 0.5 s over 8 s, one speaker active in the first half of each
    # window, another in the second half; chunk length just above the window:
    # one chunk per window, so every pair sees exactly its window's audio
    single_pass = SinglePassEcapa(ecapa.classifier_, chunk_seconds=5.01)
    waveform = _speech(8.0, 2.0)
    starts = np.arange(0, 3 * 16000 + 1, 8000)
    masks = np.zeros((len(starts), 2, 293), dtype=np.float32)
    masks[:, 0, :146] = 1
    masks[:, 1, 146:] = 1
    pairs = np.argwhere(np.ones((len(starts), 2)))
    with torch.inference_mode():
        got = single_pass.embed_pairs(waveform, starts, 80000, masks, pairs)
        for (window, speaker), embedding in zip(pairs, got, strict=True):
            chunk = torch.nn.functional.pad(waveform[starts[window] :], (0, 16000))[:80160]
            features, attention = single_pass.trunk(chunk[None])
            mask = torch.zeros(1, 501, dtype=torch.bool)
            half = np.arange(501) * 160 * 293 // 80000 < 146
            mask[0, :] = torch.from_numpy(half if speaker == 0 else ~half)
            expected = single_pass.pool(features[:, :501], attention[:, :501], mask)[0]
            torch.testing.assert_close(torch.from_numpy(embedding), expected, atol=1e-5, rtol=1e-4)


def test_single_pass_stage_embeds_the_pairs_the_exact_stage_embeds(weights_copy):
    # the segmentation never activates its third local speaker: those pairs stay NaN
    checkpoint = torch.load(weights_copy.segmentation, map_location="cpu", weights_only=False)
    checkpoint["state_dict"]["classifier.bias"][2] = -30.0
    torch.save(checkpoint, weights_copy.segmentation)
    exact = load_models(weights_copy, torch.device("cpu"))
    approximate = load_models(weights_copy, torch.device("cpu"), single_pass=True)
    waveform = _speech(12.0)
    file = {"waveform": waveform[None], "sample_rate": 16000, "uri": "x"}
    with torch.inference_mode():
        scores = exact.get_segmentations(file)
        binarized = binarize(scores, onset=exact.segmentation.threshold, initial_state=False)
        expected = exact.get_embeddings(file, binarized, exclude_overlap=True)
        got = approximate.get_embeddings(file, binarized, exclude_overlap=True)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got[:, 2]).all() and not np.isnan(got[:, :2]).all()
    # an approximation, not a copy of the exact embeddings
    valid = ~np.isnan(got[:, :, 0])
    assert not np.allclose(got[valid], expected[valid])


def test_the_output_says_its_embeddings_are_single_pass(random_weights):
    diarizer = Diarizer.load(random_weights, device="cpu", single_pass_embeddings=True)
    result = diarizer.diarize(shared_file("real/fw_stereo_diarization.wav"))
    pipeline = result.to_dict()["pipeline"]
    assert pipeline["embedding_model"] == (
        "speechbrain/spkrec-ecapa-voxceleb (single-pass, approximate)"
    )
    for embedding in result.to_dict()["speakers"]["embeddings"].values():
        assert len(embedding) == 192 and np.isfinite(embedding).all()
    # the exact stage stays the default
    assert Diarizer.load(random_weights, device="cpu").pipeline.embedding_model == (
        "speechbrain/spkrec-ecapa-voxceleb"
    )


def test_single_pass_is_refused_for_the_bundled_pipeline():
    from diarization.pipelines import load_pipeline

    with pytest.raises(ValueError, match="pyannote pipeline"):
        load_pipeline("bundled", single_pass=True)


def test_pairs_pooled_in_padded_batches_embed_as_one_at_a_time(ecapa, monkeypatch):
    # a GPU pools up to GPU_POOL_BATCH pairs together, each padded to the most
    # active frames of its batch; a CPU pools one pair at a time
    from diarization import ecapa_single_pass

    waveform = _speech(20.0)
    starts = np.arange(0, 15 * 16000 + 1, 8000)
    masks = (np.random.default_rng(1).random((len(starts), 3, 293)) < 0.4).astype(np.float32)
    masks[3] = 0  # pairs without speech stay NaN
    pairs = np.argwhere(np.ones((len(starts), 3)))
    got = {}
    for batch in (1, 16):
        monkeypatch.setattr(ecapa_single_pass, "POOL_BATCH", batch)
        with torch.inference_mode():
            got[batch] = SinglePassEcapa(ecapa.classifier_).embed_pairs(
                waveform, starts, 80000, masks, pairs
            )
    assert np.isnan(got[16][9:12]).all() and not np.isnan(np.delete(got[16], [9, 10, 11], 0)).any()
    np.testing.assert_allclose(got[16], got[1], rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_on_a_gpu_single_pass_embeds_as_on_the_cpu(random_weights, strict_fp32):
    # the GPU pools pairs in padded batches, the CPU one pair at a time
    waveform = _speech(20.0)
    starts = np.arange(0, 15 * 16000 + 1, 8000)
    masks = (np.random.default_rng(1).random((len(starts), 3, 293)) < 0.4).astype(np.float32)
    pairs = np.argwhere(np.ones((len(starts), 3)))
    got = {}
    for device in ("cpu", "cuda"):
        model = LocalSpeechBrainEmbedding(random_weights.embedding, torch.device(device))
        with torch.inference_mode():
            got[device] = SinglePassEcapa(model.classifier_).embed_pairs(
                waveform, starts, 80000, masks, pairs
            )
    np.testing.assert_allclose(got["cuda"], got["cpu"], rtol=1e-3, atol=1e-4)
