"""The seed pipeline end to end: real loading code and real pyannote on random weights."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from pyannote.audio.utils.signal import binarize
from pyannote.core import SlidingWindowFeature

from conftest import (
    ROOT,
    check_output_shape,
    segmentation_out_of_memory_over,
    shared_file,
    write_wav,
)
from diarization import AudioDecodeError, Diarizer, SpeakerCount, WeightsError, exact_embeddings
from diarization.audio import decode_audio
from diarization.ecapa_single_pass import SinglePassEcapa
from diarization.fast_clustering import (
    BoundedAgglomerativeClustering,
    euclidean_distances,
    linkage_by_matrix_products,
    linkage_in_place,
)
from diarization.pyannote_frames import binarize_in_blocks
from diarization.pyannote_pipeline import (
    CPU_EMBEDDING_BATCH_SIZE,
    GPU_SEGMENTATION_BATCH_SIZE,
    HYPERPARAMETERS,
    PyannotePipeline,
    load_models,
    warm_up,
)
from diarization.pyannote_stages import BATCH_SIZE
from diarization.weights import FETCH_COMMAND


def test_loads_both_models_from_the_published_layouts(diarizer, random_weights):
    pipeline = diarizer.pipeline._pipeline
    specs = pipeline._segmentation.model.specifications
    assert (specs.duration, len(specs.classes), specs.powerset) == (5.0, 3, False)
    assert pipeline._embedding.dimension == 192
    assert pipeline.parameters(instantiated=True) == HYPERPARAMETERS
    assert pipeline.embedding_exclude_overlap is True
    assert pipeline.segmentation_step == 0.1
    assert pipeline._segmentation.batch_size == BATCH_SIZE
    assert pipeline.embedding_batch_size == CPU_EMBEDDING_BATCH_SIZE  # measured faster on CPUs
    stock = load_models(random_weights, torch.device("cpu"), stock=True)
    assert stock.embedding_batch_size == BATCH_SIZE
    assert diarizer.pipeline.device == torch.device("cpu")


def test_diarizes_a_stereo_recording_end_to_end(diarizer):
    audio = shared_file("real/fw_stereo_diarization.wav")
    output = diarizer.diarize(audio).to_dict()
    check_output_shape(output, duration=5.0)
    # Random weights find speech everywhere: at least one speaker survives the rules.
    assert output["speakers"]["count"] >= 1


def test_raw_result_carries_windows_and_centroids(diarizer):
    waveform = np.random.default_rng(0).normal(0, 0.1, 6 * 16000).astype(np.float32)
    raw = diarizer.pipeline(waveform, 16000, SpeakerCount(num_speakers=2))
    # 5 s windows every 0.5 s over 6 s of audio: starts 0.0, 0.5, 1.0 (and a padded last one).
    assert raw.windows.duration == 5.0
    np.testing.assert_allclose(raw.windows.starts[:3], [0.0, 0.5, 1.0])
    assert raw.windows.embeddings.shape[1:] == (3, 192)
    assert raw.duration == 6.0
    # num_speakers=2 forces two clusters, each with a 192-d centroid.
    assert sorted(raw.centroids) == ["SPEAKER_00", "SPEAKER_01"]
    assert {t.speaker for t in raw.turns} <= set(raw.centroids)
    assert all(c.shape == (192,) for c in raw.centroids.values())


@pytest.mark.parametrize("count", [SpeakerCount(num_speakers=1), SpeakerCount(max_speakers=1)])
def test_one_speaker_requested_gives_one_speaker(diarizer, count):
    waveform = np.random.default_rng(1).normal(0, 0.1, 6 * 16000).astype(np.float32)
    result = diarizer.diarize_waveform(waveform, 16000, count)
    assert result.labels == ["A"]
    assert len(result.embeddings["A"]) == 192


@pytest.fixture
def silent_weights(weights_copy):
    """Weights whose segmentation model never detects a speaker (bias far below 0)."""
    path = weights_copy.segmentation
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    checkpoint["state_dict"]["classifier.bias"].fill_(-30.0)
    torch.save(checkpoint, path)
    return weights_copy


def test_no_speech_gives_a_valid_empty_result(silent_weights, tmp_path):
    diarizer = Diarizer.load(silent_weights, device="cpu")
    audio = write_wav(
        tmp_path / "tone.wav", 0.3 * np.sin(np.arange(48000) / 16000 * 2 * np.pi * 220)
    )
    output = diarizer.diarize(audio).to_dict()
    assert output["segments"] == output["exclusive_segments"] == output["overlaps"] == []
    assert output["speakers"] == {"count": 0, "labels": [], "embeddings": {}}
    assert output["pipeline"]["name"] == "pyannote"


@pytest.mark.parametrize(
    "relative",
    [
        "pyannote-segmentation/pytorch_model.bin",
        "speechbrain-spkrec-ecapa-voxceleb/hyperparams.yaml",
    ],
)
def test_missing_weight_file_is_named(weights_copy, relative):
    (weights_copy.root / relative).unlink()
    with pytest.raises(WeightsError) as error:
        PyannotePipeline.load(weights_copy, torch.device("cpu"))
    assert str(weights_copy.root / relative) in str(error.value)
    assert FETCH_COMMAND in str(error.value)


@pytest.mark.parametrize(
    "relative",
    [
        "pyannote-segmentation/pytorch_model.bin",
        "speechbrain-spkrec-ecapa-voxceleb/embedding_model.ckpt",
    ],
)
def test_corrupt_weight_file_is_named(weights_copy, relative):
    path = weights_copy.root / relative
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError) as error:
        PyannotePipeline.load(weights_copy, torch.device("cpu"))
    assert str(path) in str(error.value)


def test_never_opens_a_network_connection(random_weights, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    diarizer = Diarizer.load(random_weights, device="cpu")
    waveform = np.random.default_rng(2).normal(0, 0.1, 5 * 16000).astype(np.float32)
    assert diarizer.diarize_waveform(waveform).labels


def test_undecodable_input_is_a_clear_error(diarizer, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioDecodeError, match="notes.txt"):
        diarizer.diarize(text)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "diarization", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_writes_output_json_rttm_and_timeline(random_weights, tmp_path):
    audio = shared_file("real/fw_stereo_diarization.wav")
    out, rttm_path, png = tmp_path / "result.json", tmp_path / "result.rttm", tmp_path / "t.png"
    done = run_cli(
        str(audio),
        *("-o", str(out), "--rttm", str(rttm_path), "--timeline", str(png)),
        *("--weights", str(random_weights.root), "--device", "cpu"),
    )
    assert done.returncode == 0, done.stderr
    output = json.loads(out.read_text())
    check_output_shape(output, duration=5.0)
    lines = rttm_path.read_text().splitlines()
    assert len(lines) == len(output["segments"])
    assert all(line.startswith("SPEAKER fw_stereo_diarization 1 ") for line in lines)
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {out}, {rttm_path}, {png}" in done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--min-speakers", "3", "--max-speakers", "2"],
            "min_speakers (3) is larger than max_speakers (2)",
        ),
        (["--num-speakers", "0"], "num_speakers must be between 1 and 50, got 0"),
    ],
)
def test_cli_rejects_contradictory_speaker_counts(random_weights, args, message):
    audio = shared_file("real/fw_stereo_diarization.wav")
    done = run_cli(str(audio), "--weights", str(random_weights.root), *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_cli_reports_missing_weights(tmp_path):
    audio = shared_file("real/fw_stereo_diarization.wav")
    done = run_cli(str(audio), "--weights", str(tmp_path / "nowhere"), "--pipeline", "pyannote")
    assert done.returncode == 1
    assert "missing weight file" in done.stderr and FETCH_COMMAND in done.stderr


@pytest.fixture
def two_speaker_weights(weights_copy):
    """Weights whose segmentation model never activates its third local speaker."""
    path = weights_copy.segmentation
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    checkpoint["state_dict"]["classifier.bias"][2] = -30.0
    torch.save(checkpoint, path)
    return weights_copy


def test_fast_embedding_stage_matches_stock_and_skips_inactive_pairs(
    two_speaker_weights, monkeypatch
):
    stock = load_models(two_speaker_weights, torch.device("cpu"), stock=True)
    fast = load_models(two_speaker_weights, torch.device("cpu"))
    waveform = np.random.default_rng(3).normal(0, 0.1, 6 * 16000).astype(np.float32)
    file = {"waveform": torch.from_numpy(waveform)[None], "sample_rate": 16000, "uri": "x"}
    embedded = []
    original = exact_embeddings.embed
    monkeypatch.setattr(
        exact_embeddings,
        "embed",
        lambda classifier, windows, *args, **kwargs: (
            embedded.append(len(windows)) or original(classifier, windows, *args, **kwargs)
        ),
    )
    with torch.inference_mode():
        scores = fast.get_segmentations(file)
        binarized = binarize(scores, onset=fast.segmentation.threshold, initial_state=False)
        got = fast.get_embeddings(file, binarized, exclude_overlap=True)
        monkeypatch.undo()
        expected = stock.get_embeddings(file, binarized, exclude_overlap=True)
    # (num_chunks, 3, 192): the third local speaker is never active
    assert np.isnan(got[:, 2]).all() and np.isnan(expected[:, 2]).all()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # the model saw only the pairs that get an embedding
    assert sum(embedded) == int((~np.isnan(got[:, :, 0])).sum()) < got.shape[0] * 3


@pytest.mark.gpu
def test_on_a_gpu_the_fast_embedding_stage_matches_stock(two_speaker_weights, strict_fp32):
    # the audio, masks and window starts on the GPU once, each batch cut there
    cuda = torch.device("cuda")
    stock = load_models(two_speaker_weights, cuda, stock=True)
    fast = load_models(two_speaker_weights, cuda)
    waveform = np.random.default_rng(3).normal(0, 0.1, 9 * 16000 + 77).astype(np.float32)
    file = {"waveform": torch.from_numpy(waveform)[None], "sample_rate": 16000, "uri": "x"}
    with torch.inference_mode():
        scores = fast.get_segmentations(file)
        binarized = binarize(scores, onset=fast.segmentation.threshold, initial_state=False)
        got = fast.get_embeddings(file, binarized, exclude_overlap=True)
        expected = stock.get_embeddings(file, binarized, exclude_overlap=True)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert not np.isnan(got[:, :2]).all()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_fast_pipeline_gives_stocks_diarization(two_speaker_weights, device):
    # every stage replaced here (segmentation's audio, binarizing, counting, embeddings,
    # clustering, reconstruction, annotation) against pyannote's, end to end (on a GPU
    # pyannote's calls switch TF32 off for both)
    stock = load_models(two_speaker_weights, torch.device(device), stock=True)
    fast = load_models(two_speaker_weights, torch.device(device))
    audio = decode_audio(shared_file("real/pyannote_sample.wav"))[: 16 * 16000]
    file = {"waveform": torch.from_numpy(audio)[None], "sample_rate": 16000, "uri": "x"}
    # three clusters: random weights alone find one speaker everywhere
    options = dict(num_speakers=3, return_embeddings=True)
    with torch.inference_mode():
        expected, expected_centroids = stock(dict(file), **options)
        got, centroids = fast(dict(file), **options)
    assert list(got.itertracks(yield_label=True)) == list(expected.itertracks(yield_label=True))
    # as the embedding tests compare them on each device
    tolerance = dict(rtol=1e-4, atol=1e-5) if device == "cpu" else dict(rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(centroids, expected_centroids, **tolerance)
    assert len(got) > 3 and len(got.labels()) == 3


def test_fast_embedding_stage_without_speech_runs_nothing(random_weights, monkeypatch):
    fast = load_models(random_weights, torch.device("cpu"))
    file = {"waveform": torch.zeros(1, 8 * 16000), "sample_rate": 16000, "uri": "x"}
    with torch.inference_mode():
        scores = fast.get_segmentations(file)
    silent = SlidingWindowFeature(np.zeros_like(scores.data), scores.sliding_window)
    monkeypatch.setattr(exact_embeddings, "embed", None)  # never called
    monkeypatch.setattr(fast, "_window_cutter", None)  # the audio is not cut either
    progress = []

    def hook(step, artifact, total=None, completed=None):
        progress.append((total, completed))

    got = fast.get_embeddings(file, silent, exclude_overlap=True, hook=hook)
    assert got.shape == (len(scores.data), 3, 192) and np.isnan(got).all()
    assert progress == [(0, 0)]


def test_fast_embedding_stage_pads_each_pair_as_stock_does(two_speaker_weights, monkeypatch):
    # stock pads each batch of 8 pairs (in window order) to its longest speech: a
    # pair's embedding depends on that width, so ours embeds each as in its batch
    stock = load_models(two_speaker_weights, torch.device("cpu"), stock=True)
    fast = load_models(two_speaker_weights, torch.device("cpu"))
    stock.embedding_batch_size = fast.stock_batch_size = 8
    waveform = np.random.default_rng(6).normal(0, 0.1, 12 * 16000).astype(np.float32)
    file = {"waveform": torch.from_numpy(waveform)[None], "sample_rate": 16000, "uri": "x"}
    batches = []
    original = exact_embeddings.embed

    def spy(classifier, windows, masks, speech_samples, stock_width, width, **kwargs):
        batches.append((speech_samples.tolist(), stock_width.tolist(), width))
        return original(classifier, windows, masks, speech_samples, stock_width, width, **kwargs)

    monkeypatch.setattr(exact_embeddings, "embed", spy)
    with torch.inference_mode():
        scores = fast.get_segmentations(file)
        # two speakers per window (of 293 frames), each active over a different length
        activity = np.zeros_like(scores.data)
        rng = np.random.default_rng(7)
        for window in range(len(activity)):
            activity[window, : rng.integers(20, 145), 0] = 1
            activity[window, 146 : 146 + rng.integers(20, 147), 1] = 1
        binarized = SlidingWindowFeature(activity, scores.sliding_window)
        got = fast.get_embeddings(file, binarized, exclude_overlap=True)
        monkeypatch.undo()
        expected = stock.get_embeddings(file, binarized, exclude_overlap=True)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # widest first; each pair padded to at least its stock width where that is within
    # its reach, else past its reach; pairs of different stock widths share a batch
    reach = exact_embeddings.reach_samples(fast._embedding.classifier_)
    widths = [width for _, _, width in batches]
    assert widths == sorted(widths, reverse=True)
    pairs_padded = [
        (stock - speech < reach, width >= stock, width >= speech + reach, width < stock)
        for speeches, stocks, width in batches
        for speech, stock in zip(speeches, stocks, strict=True)
    ]
    assert all(at_stock if near else past for near, at_stock, past, _ in pairs_padded)
    assert any(near for near, *_ in pairs_padded) and not all(near for near, *_ in pairs_padded)
    assert any(narrower for *_, narrower in pairs_padded)  # narrower than stock's
    assert any(len(set(stocks)) > 1 for _, stocks, _ in batches)
    pairs = np.isnan(got[:, :2, 0]).size  # 2 active speakers per window
    assert sum(len(speech) for speech, _, _ in batches) == pairs > 3 * 8


@pytest.mark.parametrize("n, block_rows", [(2, 1024), (50, 7), (50, 50), (301, 64)])
def test_distances_by_matrix_products_are_scipys(n, block_rows):
    from scipy.spatial.distance import pdist

    x = np.random.default_rng(n).normal(size=(n, 24))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[1] = x[0]  # a duplicate: distance 0, not NaN from rounding below zero
    got = euclidean_distances(x, block_rows=block_rows)
    expected = pdist(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)
    assert got[0] < 1e-7 and np.isfinite(got).all()


def test_linkage_by_matrix_products_builds_scipys_dendrogram():
    from scipy.cluster.hierarchy import fcluster, linkage

    rng = np.random.default_rng(8)
    x = rng.normal(size=(4, 32))[rng.integers(0, 4, 600)] + 0.6 * rng.normal(size=(600, 32))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    got = linkage_by_matrix_products(x, method="centroid", metric="euclidean")
    expected = linkage(x, method="centroid", metric="euclidean")
    np.testing.assert_array_equal(got[:, [0, 1, 3]], expected[:, [0, 1, 3]])
    np.testing.assert_allclose(got[:, 2], expected[:, 2], atol=1e-9)
    np.testing.assert_array_equal(
        fcluster(got, 0.7, criterion="distance"), fcluster(expected, 0.7, criterion="distance")
    )
    # other metrics are scipy's own
    np.testing.assert_array_equal(
        linkage_by_matrix_products(x, method="average", metric="cosine"),
        linkage(x, method="average", metric="cosine"),
    )


@pytest.mark.parametrize("method", ["centroid", "average"])
def test_linkage_in_place_is_fastclusters_without_copying_the_distances(method):
    import tracemalloc

    import fastcluster

    x = np.random.default_rng(10).normal(size=(800, 16))
    distances = euclidean_distances(x / np.linalg.norm(x, axis=1, keepdims=True))
    expected = fastcluster.linkage(distances, method=method)  # (copies, keeps the input)
    tracemalloc.start()
    try:
        got = linkage_in_place(distances, method)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got, expected)
    assert peak < distances.nbytes / 4  # fastcluster's own wrapper copies all of them
    with pytest.raises(ValueError, match="not a condensed matrix"):
        linkage_in_place(np.zeros(4), method)


def test_clustering_uses_matrix_product_distances_and_restores_pyannotes_linkage(monkeypatch):
    from pyannote.audio.pipelines import clustering as pyannote_clustering

    import diarization.fast_clustering as module

    original = pyannote_clustering.linkage
    calls = []

    def spy(x, method="single", metric="euclidean"):
        calls.append((x.shape, method, metric))
        return linkage_by_matrix_products(x, method=method, metric=metric)

    monkeypatch.setattr(module, "linkage_by_matrix_products", spy)
    x = np.random.default_rng(9).normal(size=(40, 16))
    clustering = module.BoundedAgglomerativeClustering()
    clustering.instantiate({"method": "centroid", "threshold": 0.7, "min_cluster_size": 3})
    clusters = clustering.cluster(x, min_clusters=1, max_clusters=5)
    assert calls == [((40, 16), "centroid", "euclidean")]
    assert len(clusters) == 40
    assert pyannote_clustering.linkage is original


def test_clustering_is_bounded_and_deterministic_on_many_embeddings():
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    rng = np.random.default_rng(4)
    centers = rng.normal(size=(3, 16))
    # 400 windows x 2 active local speakers, drawn around three speakers
    embeddings = centers[rng.integers(0, 3, (400, 2))] + 0.05 * rng.normal(size=(400, 2, 16))
    embeddings = np.concatenate([embeddings, np.full((400, 1, 16), np.nan)], axis=1)
    activity = np.zeros((400, 10, 3))
    activity[:, :, :2] = 1
    segmentations = SlidingWindowFeature(activity, SlidingWindow(start=0, step=0.5, duration=5))
    clustering = BoundedAgglomerativeClustering(max_num_embeddings=100)
    clustering.instantiate({"method": "centroid", "threshold": 0.7, "min_cluster_size": 5})
    kept, chunks, speakers = clustering.filter_embeddings(embeddings, segmentations)
    assert len(kept) == 100
    assert chunks[0] == 0 and chunks[-1] == 399  # evenly spread over the whole recording
    first = clustering(embeddings=embeddings.copy(), segmentations=segmentations)[0]
    second = clustering(embeddings=embeddings.copy(), segmentations=segmentations)[0]
    np.testing.assert_array_equal(first, second)
    # every active embedding is assigned, and the three speakers are found
    assert len(np.unique(first[:, :2])) == 3


def embed_limited(limit, original):
    """`exact_embeddings.embed` running out of memory on batches larger than `limit`."""

    def call(classifier, windows, *args, **kwargs):
        if len(windows) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return original(classifier, windows, *args, **kwargs)

    return call


def test_embedding_out_of_memory_retries_with_smaller_batches(diarizer, monkeypatch, caplog):
    waveform = np.random.default_rng(5).normal(0, 0.1, 6 * 16000).astype(np.float32)
    expected = diarizer.pipeline(waveform, 16000)
    monkeypatch.setattr(exact_embeddings, "embed", embed_limited(2, exact_embeddings.embed))
    got = diarizer.pipeline(waveform, 16000)
    assert "embeddings ran out of memory: retrying in batches of" in caplog.text
    np.testing.assert_allclose(got.windows.embeddings, expected.windows.embeddings, atol=1e-4)
    assert [t.speaker for t in got.turns] == [t.speaker for t in expected.turns]


def test_embedding_out_of_memory_at_batch_size_one_moves_to_the_cpu(diarizer, monkeypatch, caplog):
    from diarization.pyannote_pipeline import LocalSpeechBrainEmbedding

    embedding = diarizer.pipeline._pipeline._embedding
    # pyannote probes the model for these on its device the first time they are read:
    # read them on the real device, before it pretends to be a GPU
    assert embedding.dimension == 192 and embedding.min_num_samples > 0
    moves = []
    original = exact_embeddings.embed

    def call(classifier, *args, **kwargs):
        if embedding.device.type == "cuda":  # a pretend GPU that is always full
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return original(classifier, *args, **kwargs)

    def move(self, device):
        moves.append(device.type)
        self.device = device
        return self

    monkeypatch.setattr(exact_embeddings, "embed", call)
    monkeypatch.setattr(LocalSpeechBrainEmbedding, "to", move)
    monkeypatch.setattr(embedding, "device", torch.device("cuda"))
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: self)  # no GPU to pin for
    waveform = np.random.default_rng(6).normal(0, 0.1, 6 * 16000).astype(np.float32)
    raw = diarizer.pipeline(waveform, 16000)
    assert "embeddings ran out of memory: retrying on the CPU" in caplog.text
    assert not np.isnan(raw.windows.embeddings).all()
    # moved to the CPU for this call, then back for the next one
    assert moves == ["cpu", "cuda"]


def test_segmentation_out_of_memory_retries_with_smaller_batches(diarizer, monkeypatch, caplog):
    waveform = np.random.default_rng(7).normal(0, 0.1, 8 * 16000).astype(np.float32)
    expected = diarizer.pipeline(waveform, 16000)
    segmentation_out_of_memory_over(monkeypatch, 2)
    got = diarizer.pipeline(waveform, 16000)
    assert "segmentation ran out of memory: retrying with batch size 2" in caplog.text
    assert got.turns == expected.turns
    assert diarizer.pipeline._pipeline._segmentation.batch_size == BATCH_SIZE


def _scores_by_batch_size(pipeline, batch_sizes) -> dict[int, np.ndarray]:
    # 40 s: 71 windows, so the batches of 7 and 32 split them differently from 256
    waveform = np.random.default_rng(12).normal(0, 0.1, 40 * 16000).astype(np.float32)
    file = {"waveform": torch.from_numpy(waveform)[None], "sample_rate": 16000}
    scores = {}
    with torch.inference_mode():
        for size in batch_sizes:
            pipeline._segmentation.batch_size = size
            scores[size] = pipeline.get_segmentations(file).data
    return scores


def test_segmentation_scores_do_not_depend_on_the_batch_size(random_weights):
    # what lets a GPU segment 256 windows at a time (GPU_SEGMENTATION_BATCH_SIZE)
    pipeline = load_models(random_weights, torch.device("cpu"))
    assert pipeline._segmentation.batch_size == BATCH_SIZE  # stock's on a CPU
    scores = _scores_by_batch_size(pipeline, [32, 256, 7])
    threshold = pipeline.segmentation.threshold
    # the same to the bit with torch 2.8 on this CPU; 6e-8 apart with torch 2.11
    for size in (256, 7):
        np.testing.assert_allclose(scores[size], scores[32], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(scores[size] > threshold, scores[32] > threshold)


def test_segmentation_audio_goes_to_the_gpu_only(random_weights, monkeypatch, caplog):
    from diarization.pyannote_stages import FastSpeakerDiarization

    file = {"waveform": torch.zeros(1, 16000), "sample_rate": 16000}
    assert FastSpeakerDiarization._audio_on(file, torch.device("cpu")) is file
    moved = []

    def to(self, device, *args, **kwargs):  # a pretend GPU that is full
        moved.append(device)
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(torch.Tensor, "to", to)
    assert FastSpeakerDiarization._audio_on(file, torch.device("cuda")) is file
    assert moved == [torch.device("cuda")]
    assert "segmentation copies each batch" in caplog.text


@pytest.mark.gpu
def test_on_a_gpu_segmentation_from_the_audio_there_is_pyannotes(random_weights):
    from pyannote.audio.pipelines import SpeakerDiarization

    fast = load_models(random_weights, torch.device("cuda"))
    waveform = np.random.default_rng(12).normal(0, 0.1, 70 * 16000).astype(np.float32)
    file = {"waveform": torch.from_numpy(waveform)[None], "sample_rate": 16000, "uri": "x"}
    moved = fast._audio_on(file, torch.device("cuda"))
    assert moved["waveform"].is_cuda and not file["waveform"].is_cuda
    got = fast.get_segmentations(file)
    expected = SpeakerDiarization.get_segmentations(fast, file)  # batches copied from the host
    np.testing.assert_allclose(got.data, expected.data, rtol=0, atol=1e-6)
    threshold = fast.segmentation.threshold
    np.testing.assert_array_equal(got.data > threshold, expected.data > threshold)


@pytest.mark.gpu
def test_on_a_gpu_segmentation_runs_in_larger_batches_with_the_same_decisions(random_weights):
    pipeline = load_models(random_weights, torch.device("cuda"))
    assert pipeline._segmentation.batch_size == GPU_SEGMENTATION_BATCH_SIZE
    scores = _scores_by_batch_size(pipeline, [BATCH_SIZE, GPU_SEGMENTATION_BATCH_SIZE])
    small, large = scores[BATCH_SIZE], scores[GPU_SEGMENTATION_BATCH_SIZE]
    np.testing.assert_allclose(large, small, atol=1e-5)
    threshold = pipeline.segmentation.threshold
    np.testing.assert_array_equal(large > threshold, small > threshold)


@pytest.mark.parametrize("threshold", [0.3, 1.5])
def test_clustering_threshold_applies_to_one_call(diarizer, monkeypatch, threshold):
    from diarization.pyannote_pipeline import DEFAULT_CLUSTERING_THRESHOLD

    clustering = diarizer.pipeline._pipeline.clustering
    seen = []
    original = type(clustering).cluster

    def spy(self, *args, **kwargs):
        seen.append(self.threshold)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(clustering), "cluster", spy)
    waveform = np.random.default_rng(8).normal(0, 0.1, 6 * 16000).astype(np.float32)
    diarizer.pipeline(waveform, 16000, clustering_threshold=threshold)
    diarizer.pipeline(waveform, 16000)
    assert seen == [threshold, DEFAULT_CLUSTERING_THRESHOLD]


@pytest.mark.parametrize("threshold", [0.0, 2.0, -1.0])
def test_clustering_threshold_out_of_range_is_an_input_error(diarizer, threshold):
    from diarization import InputError

    with pytest.raises(InputError, match="clustering_threshold must be between 0 and 2"):
        diarizer.pipeline(np.zeros(16000, np.float32), 16000, clustering_threshold=threshold)


def test_a_run_past_the_prediction_timeout_stops_with_a_clear_error(diarizer, monkeypatch):
    from diarization.diarizer import PredictionTimeoutError

    monkeypatch.setenv("DIARIZATION_PREDICTION_TIMEOUT_S", "0.000001")
    waveform = np.random.default_rng(9).normal(0, 0.1, 6 * 16000).astype(np.float32)
    with pytest.raises(PredictionTimeoutError, match="DIARIZATION_PREDICTION_TIMEOUT_S"):
        diarizer.diarize_waveform(waveform)
    monkeypatch.delenv("DIARIZATION_PREDICTION_TIMEOUT_S")
    assert diarizer.diarize_waveform(waveform).labels  # the next run is unaffected


def _segmentation_scores(num_windows: int, seed: int = 0):
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    rng = np.random.default_rng(seed)
    data = rng.random((num_windows, 293, 3))
    data[rng.random(data.shape) < 0.05] = 0.44  # exactly at the threshold: keeps its state
    data[0, :10, 0] = np.nan
    return SlidingWindowFeature(data, SlidingWindow(start=0.0, duration=5.0, step=0.5))


def test_binarizing_in_blocks_gives_pyannotes_result(monkeypatch):
    import diarization.pyannote_frames as module

    monkeypatch.setattr(module, "BINARIZE_BLOCK_WINDOWS", 7)
    scores = _segmentation_scores(50)
    scores.data[3, :, 1] = 0.44  # a row with no frame above or below the threshold
    scores.data[4, :40, 2] = 0.44  # ... and one with none until frame 40
    # at 0.5 every frame is above or below the threshold (NaN taken as 0), but in one
    # block of windows: there each frame is its own last defined one, elsewhere not
    scores.data[10, 5:9, 0] = 0.5
    for onset, offset in ((0.44, None), (0.6, 0.3), (0.5, 0.0), (0.5, None)):
        for initial_state in (False, True, None):
            expected = binarize(scores, onset=onset, offset=offset, initial_state=initial_state)
            got = binarize_in_blocks(
                scores, onset=onset, offset=offset, initial_state=initial_state
            )
            np.testing.assert_array_equal(got.data, expected.data)
            assert got.data.dtype == np.float32  # pyannote's float64 takes twice the memory
            assert got.sliding_window == expected.sliding_window
    # what the rows without a defined frame take: the initial state
    got = binarize_in_blocks(scores, onset=0.44, initial_state=True).data
    assert got[3, :, 1].all() and got[4, :40, 2].all()


def test_reconstruct_gives_pyannotes_result(diarizer, monkeypatch):
    from pyannote.audio.pipelines import SpeakerDiarization
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    pipeline = diarizer.pipeline._pipeline
    binarized = binarize(_segmentation_scores(40, seed=1), onset=0.5, initial_state=False)
    rng = np.random.default_rng(2)
    hard_clusters = rng.integers(0, 4, size=(40, 3))
    hard_clusters[5, 2] = -2  # an inactive local speaker
    hard_clusters[7] = [1, 1, 1]  # three local speakers in one cluster: their maximum
    binarized.data[7, 10, 1] = np.nan  # pyannote's maximum keeps a NaN
    frames = pipeline._segmentation.model.receptive_field
    count = pipeline.speaker_count(binarized, frames, warm_up=(0.0, 0.0))
    assert isinstance(count.sliding_window, SlidingWindow)
    expected = SpeakerDiarization.reconstruct(pipeline, binarized, hard_clusters, count)
    got = pipeline.reconstruct(binarized, hard_clusters, count)
    assert isinstance(got, SlidingWindowFeature)
    np.testing.assert_array_equal(got.data, expected.data)
    assert got.data.any()
    # ... and the clustered windows before their aggregation, NaN included
    monkeypatch.setattr(pipeline, "to_diarization", lambda clustered, count: clustered)
    expected = SpeakerDiarization.reconstruct(pipeline, binarized, hard_clusters, count)
    got = pipeline.reconstruct(binarized, hard_clusters, count)
    np.testing.assert_array_equal(got.data, expected.data)
    assert np.isnan(got.data[7, 10, 1]) and got.data.dtype == np.float32


@pytest.mark.parametrize("most_speakers", [2, 3, 5])  # 5: more than the local speakers
def test_to_diarization_gives_pyannotes_result(most_speakers):
    from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    from diarization.pyannote_stages import FastSpeakerDiarization

    rng = np.random.default_rng(most_speakers)
    # clustered binary segmentations: activations of 0, 1 or 2 windows, so most frames
    # tie, and their order is np.argsort's
    clustered = (rng.random((30, 293, 3)) < 0.4).astype(np.float32)
    clustered[2, :, 1] = np.nan  # a cluster absent from a window
    segmentations = SlidingWindowFeature(clustered, SlidingWindow(start=0, duration=5, step=0.5))
    frames = SlidingWindow(start=0.0, duration=0.0619375, step=0.016875)
    count = SlidingWindowFeature(
        rng.integers(0, most_speakers + 1, size=(1200, 1)).astype(np.uint8), frames
    )
    expected = SpeakerDiarizationMixin.to_diarization(segmentations, count)
    got = FastSpeakerDiarization.to_diarization(segmentations, count)
    np.testing.assert_array_equal(got.data, expected.data)
    window = (got.sliding_window.start, got.sliding_window.duration, got.sliding_window.step)
    assert window == (
        expected.sliding_window.start,
        expected.sliding_window.duration,
        expected.sliding_window.step,
    )
    assert got.data.shape[1] == max(3, most_speakers)
    assert 0 < got.data.sum() < got.data.size


@pytest.mark.parametrize("skip_average", [True, False])
def test_aggregating_whole_numbers_gives_pyannotes_result(skip_average):
    from pyannote.audio.core.inference import Inference
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    from diarization.pyannote_frames import aggregate_whole_numbers

    rng = np.random.default_rng(10)
    frames = SlidingWindow(start=0.0, duration=0.0619375, step=0.016875)
    windows = SlidingWindow(start=0.0, duration=5.0, step=0.5)
    data = (rng.random((60, 293, 3)) < 0.4).astype(np.float32)
    data[:, :, 2] *= 3  # counts
    data[2, :, 1] = np.nan  # a cluster absent from a window
    data[59, :, 0] = np.nan  # ... and from the last one: those frames are missing
    fractions = data + 0.25
    for scores, missing in ((data, 0.0), (data, np.nan), (fractions, 0.0)):
        expected = Inference.aggregate(
            SlidingWindowFeature(scores.copy(), windows),  # pyannote's sets NaN to 0
            frames,
            hamming=False,
            missing=missing,
            skip_average=skip_average,
        )
        got = aggregate_whole_numbers(
            SlidingWindowFeature(scores, windows), frames, missing, skip_average
        )
        np.testing.assert_array_equal(got.data, expected.data)
        assert got.data.dtype == expected.data.dtype
        assert (got.sliding_window.start, got.sliding_window.step) == (
            expected.sliding_window.start,
            expected.sliding_window.step,
        )
    assert np.isnan(got.data).sum() == 0 and np.isnan(data).any()  # the input kept its NaN


@pytest.mark.parametrize(
    "windows, frames",
    [
        ((0.0, 5.0, 0.5), (0.0, 0.0619375, 0.016875)),  # the pipeline's, trimmed or not
        ((0.1, 4.8, 0.5), (0.1, 0.0619375, 0.016875)),
        ((0.0, 10.0, 1.0), (0.0, 0.0619375, 0.016875)),  # the community-1 geometry
        ((0.37, 2.0, 0.1), (0.0, 0.025, 0.02)),
        # starts on half frames (rint's ties), where adding and taking away the half
        # frame duration decides 4 of them: leaving both out would not be pyannote's
        ((0.0, 5.0, 0.125), (0.0, 0.3, 0.25)),
    ],
)
def test_each_windows_first_frame_is_pyannotes_on_four_hours_of_windows(windows, frames):
    from pyannote.core import SlidingWindow

    from diarization.pyannote_frames import _first_frames

    chunks = SlidingWindow(start=windows[0], duration=windows[1], step=windows[2])
    frames = SlidingWindow(start=frames[0], duration=frames[1], step=frames[2])
    num_chunks = int(4 * 3600 / chunks.step)
    expected = [
        frames.closest_frame(chunks[c].start + 0.5 * frames.duration) for c in range(num_chunks)
    ]
    got = _first_frames(chunks, frames, num_chunks)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("warm_up", [(0.0, 0.0), (0.1, 0.1)])
def test_speaker_count_gives_pyannotes_result(warm_up):
    from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin
    from pyannote.core import SlidingWindow

    from diarization.pyannote_stages import FastSpeakerDiarization

    binarized = binarize(_segmentation_scores(80, seed=11), onset=0.5, initial_state=False)
    frames = SlidingWindow(start=0.0, duration=0.0619375, step=0.016875)
    expected = SpeakerDiarizationMixin.speaker_count(binarized, frames, warm_up=warm_up)
    got = FastSpeakerDiarization.speaker_count(binarized, frames, warm_up=warm_up)
    np.testing.assert_array_equal(got.data, expected.data)
    assert got.data.dtype == np.uint8 and got.data.max() == 3


@pytest.mark.parametrize("labels", [None, ["x", "y", "z"]])
def test_fast_binarize_gives_pyannotes_annotation(labels):
    from pyannote.audio.utils.signal import Binarize
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    from diarization.pyannote_frames import FastBinarize

    rng = np.random.default_rng(8)
    # (frames, speakers) runs of activity, scores at and between the thresholds, NaN
    data = np.repeat(rng.random((400, 3)), rng.integers(1, 30, 400), axis=0)
    data[rng.random(data.shape) < 0.02] = 0.5
    data[:5, 0] = 0.9  # active from the first frame
    data[-3:, 1] = 0.9  # ... and to the last
    data[100:130, 2] = np.nan
    frames = SlidingWindow(start=0.0, duration=0.0619375, step=0.016875)
    scores = SlidingWindowFeature(data, frames, labels=labels)
    options = [
        dict(onset=0.5, offset=0.5),
        dict(onset=0.7, offset=0.3),
        dict(onset=0.5, min_duration_off=0.58),  # the final diarization's
        dict(onset=0.6, offset=0.4, min_duration_on=0.1, min_duration_off=0.2),
        dict(onset=0.3, offset=0.7),  # onset below offset: pyannote's loop
        dict(onset=0.5, pad_onset=0.1),  # padded: pyannote's
    ]
    for kwargs in options:
        expected = Binarize(**kwargs)(scores)
        got = FastBinarize(**kwargs)(scores)
        assert list(got.itertracks(yield_label=True)) == list(expected.itertracks(yield_label=True))
        assert len(got) > 20


@pytest.mark.parametrize("labels", [None, [f"s{k}" for k in range(12)], ["x", "y"] * 6])
def test_fast_binarize_fills_gaps_as_pyannotes_support(labels):
    # twelve speakers: labels sorted as strings ("10" before "2"), more tracks than
    # letters (track names "AA", ...), regions one frame long (empty segments), gaps at
    # and around the collar; repeated labels go to pyannote's own
    from pyannote.audio.utils.signal import Binarize
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    from diarization.pyannote_frames import FastBinarize

    rng = np.random.default_rng(10)
    data = (np.repeat(rng.random((600, 12)), rng.integers(1, 40, 600), axis=0) < 0.4) * 1.0
    data[rng.random(data.shape) < 0.01] = 1.0  # one-frame regions
    data[-1, 3] = 1.0  # a region starting on the last frame: an empty segment
    frames = SlidingWindow(start=0.0, duration=0.0619375, step=0.016875)
    scores = SlidingWindowFeature(data, frames, labels=labels)
    tracks = {}
    for collar in [0.016875 * 34, 0.58, 1e-7, 2.0]:
        expected = Binarize(onset=0.5, min_duration_off=collar)(scores)
        got = FastBinarize(onset=0.5, min_duration_off=collar)(scores)
        assert list(got.itertracks(yield_label=True)) == list(expected.itertracks(yield_label=True))
        tracks[collar] = len(got)
    assert tracks[1e-7] > 26 and tracks[1e-7] > tracks[0.58] > tracks[2.0] > 0


def test_to_annotation_gives_pyannotes_result():
    from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    from diarization.pyannote_stages import FastSpeakerDiarization

    rng = np.random.default_rng(9)
    binary = np.repeat(rng.random((300, 4)), rng.integers(1, 40, 300), axis=0) < 0.3
    frames = SlidingWindow(start=0.0, duration=0.0619375, step=0.016875)
    discrete = SlidingWindowFeature(binary.astype(np.float32), frames)
    expected = SpeakerDiarizationMixin.to_annotation(discrete, min_duration_off=0.58)
    got = FastSpeakerDiarization.to_annotation(discrete, min_duration_off=0.58)
    assert list(got.itertracks(yield_label=True)) == list(expected.itertracks(yield_label=True))
    assert len(got.labels()) == 4


def test_a_diarization_binarizes_in_blocks_and_restores_pyannotes_function(diarizer, monkeypatch):
    from pyannote.audio.pipelines import speaker_diarization

    import diarization.pyannote_stages as module

    original = speaker_diarization.binarize
    calls = []

    def spy(scores, **kwargs):
        calls.append(scores.data.shape)
        return binarize_in_blocks(scores, **kwargs)

    monkeypatch.setattr(module, "binarize_in_blocks", spy)
    diarizer.diarize(shared_file("real/fw_stereo_diarization.wav"))
    # the segmentation, (windows, frames, local speakers), went through the blocks
    assert calls and len(calls[0]) == 3
    assert speaker_diarization.binarize is original


@pytest.mark.parametrize("single_pass", [False, True])
def test_model_stages_on_the_cpu_reuse_freed_memory(random_weights, single_pass, monkeypatch):
    import contextlib

    from diarization import host_memory
    from diarization.pyannote_pipeline import load_models

    blocks = []
    inside = []

    @contextlib.contextmanager
    def spy():
        blocks.append(len(blocks))
        inside.append(True)
        try:
            yield
        finally:
            inside.pop()

    monkeypatch.setattr(host_memory, "freed_memory_reused", spy)
    pipeline = load_models(random_weights, torch.device("cpu"), single_pass=single_pass)
    # both embedding stages compute ECAPA without the module's forward: the exact one in
    # `embed`, single-pass in `trunk` (pyannote also probes the whole module once,
    # outside any stage, for its minimum length)
    aggregation = pipeline._embedding.classifier_.mods.embedding_model.mfa
    models_seen_inside = []  # (model, whether inside a block)
    for network in (pipeline._segmentation.model, aggregation):
        network.register_forward_pre_hook(
            lambda module, args: models_seen_inside.append((type(module).__name__, bool(inside)))
        )
    owner, name = (SinglePassEcapa, "trunk") if single_pass else (exact_embeddings, "embed")
    original = getattr(owner, name)
    monkeypatch.setattr(
        owner,
        name,
        lambda *args, **kwargs: (
            models_seen_inside.append(("ECAPA", bool(inside))) or original(*args, **kwargs)
        ),
    )
    waveform = np.random.default_rng(11).normal(0, 0.1, 8 * 16000).astype(np.float32)
    PyannotePipeline(pipeline)(waveform, 16000)
    # one block for the segmentation, one for the embeddings; every model call inside one
    assert blocks == [0, 1]
    inside_a_block = {name for name, seen in models_seen_inside if seen}
    assert inside_a_block == {"PyanNet", "ECAPA"}
    # only pyannote's probe of ECAPA runs outside them
    outside = {name for name, seen in models_seen_inside if not seen}
    assert outside <= {"TDNNBlock"}


def test_warm_up_runs_both_models_on_every_pair_and_leaves_the_pipeline_as_it_was(
    random_weights, monkeypatch
):
    pipeline = load_models(random_weights, torch.device("cpu"))
    audio = decode_audio(shared_file("real/pyannote_sample.wav"))[: 8 * 16000]
    before = PyannotePipeline(pipeline)(audio, 16000)
    # a segmentation that finds no one: the warm-up still embeds every local speaker
    segment = pipeline.get_segmentations

    def no_one(file, hook=None):
        scores = segment(file, hook=hook)
        return SlidingWindowFeature(np.zeros_like(scores.data), scores.sliding_window)

    monkeypatch.setattr(pipeline, "get_segmentations", no_one)
    calls = {"segmentation": 0, "pairs": 0}
    pipeline._segmentation.model.register_forward_pre_hook(
        lambda module, args: calls.update(segmentation=calls["segmentation"] + 1)
    )
    original = exact_embeddings.embed
    monkeypatch.setattr(
        exact_embeddings,
        "embed",
        lambda classifier, windows, *args, **kwargs: (
            calls.update(pairs=calls["pairs"] + len(windows))
            or original(classifier, windows, *args, **kwargs)
        ),
    )
    embedded = warm_up(pipeline, seconds=6.0)
    # 6 s: windows starting at 0, 0.5 and 1 s (the last ends at 6 s); 3 speakers each
    assert calls == {"segmentation": 1, "pairs": 3 * 3}
    # what the warm-up returns: the embeddings it computed (settle_precision compares them)
    assert embedded.shape == (3, 3, 192) and not np.isnan(embedded).any()
    assert pipeline.get_segmentations is no_one  # what was set on it is back
    monkeypatch.undo()
    after = PyannotePipeline(pipeline)(audio, 16000)
    assert after.turns == before.turns
    np.testing.assert_array_equal(after.windows.embeddings, before.windows.embeddings)


@pytest.mark.parametrize("kind", ["stock", "single-pass"])
def test_warm_up_embeds_every_local_speaker_with_any_pipeline(random_weights, monkeypatch, kind):
    pipeline = load_models(
        random_weights, torch.device("cpu"), stock=kind == "stock", single_pass=kind != "stock"
    )
    activity = []
    original = pipeline.get_embeddings

    def spy(file, binary_segmentations, *args, **kwargs):
        activity.append(binary_segmentations.data.copy())
        return original(file, binary_segmentations, *args, **kwargs)

    monkeypatch.setattr(pipeline, "get_embeddings", spy)
    segment = pipeline.get_segmentations
    monkeypatch.setattr(  # a segmentation that finds no one
        pipeline,
        "get_segmentations",
        lambda file, hook=None: SlidingWindowFeature(
            np.zeros_like(segment(file).data), segment(file).sliding_window
        ),
    )
    warm_up(pipeline, seconds=6.0)
    # (num_chunks, num_frames, local_speakers): 3 windows in 6 s, every speaker active
    assert len(activity) == 1 and activity[0].shape[::2] == (3, 3) and (activity[0] == 1).all()


def test_loading_warms_up_on_a_gpu_only(random_weights, monkeypatch):
    from diarization import pyannote_pipeline

    warmed = []
    monkeypatch.setattr(pyannote_pipeline, "warm_up", warmed.append)
    monkeypatch.setattr(pyannote_pipeline, "settle_precision", warmed.append)
    runner = PyannotePipeline.load(random_weights, torch.device("cpu"))
    assert warmed == [] and runner.device == torch.device("cpu")
    assert runner._pipeline.precision == "auto" and not runner._pipeline.tf32_embeddings


@pytest.mark.gpu
def test_on_a_gpu_loading_warms_up_with_larger_batches(random_weights, monkeypatch):
    from diarization import pyannote_pipeline

    warmed = []
    monkeypatch.setattr(pyannote_pipeline, "warm_up", warmed.append)
    runner = PyannotePipeline.load(random_weights, torch.device("cuda"), precision="fp32")
    assert warmed == [runner._pipeline]
    assert runner._pipeline.embedding_batch_size == pyannote_pipeline.GPU_EMBEDDING_BATCH_SIZE
    assert runner._pipeline._segmentation.batch_size == GPU_SEGMENTATION_BATCH_SIZE


def test_a_call_gives_its_cached_gpu_memory_back_after_each_model_stage(diarizer, monkeypatch):
    # on a GPU: the segmentation's cache before the embeddings, the embeddings' before the
    # next call's segmentation (a warm-up's left 3.9 GB reserved on 10 min instead of 2.9)
    from diarization import pyannote_stages

    pipeline = diarizer.pipeline._pipeline
    embedded, released = [], []
    monkeypatch.setattr(
        pyannote_stages, "_release_gpu_memory", lambda: released.append(embedded[:])
    )
    original = pipeline.get_embeddings
    monkeypatch.setattr(
        pipeline,
        "get_embeddings",
        lambda *args, **kwargs: embedded.append(True) or original(*args, **kwargs),
    )
    waveform = np.random.default_rng(5).normal(0, 0.1, 6 * 16000).astype(np.float32)
    diarizer.pipeline(waveform, 16000)
    # once before the embedding stage, once after it
    assert released == [[], [True]]
