"""Precision modes of the networks on a GPU (`diarization.precision`).

Autocast is checked on the CPU (bfloat16, which CPUs support); the scope's
switching of TF32 and of pyannote's `fix_reproducibility` is checked with a
CUDA device object, which needs no GPU to exist.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from pyannote.audio.core import inference

from conftest import shared_file
from diarization.audio import decode_audio
from diarization.ecapa_single_pass import SinglePassEcapa
from diarization.precision import (
    AUTO_TF32_TOLERANCE,
    autocast_forward,
    check_precision,
    embedding_deviation,
    precision_scope,
)
from diarization.pyannote_pipeline import (
    LocalSpeechBrainEmbedding,
    load_models,
    settle_precision,
    warm_up,
)
from diarization.schema import SpeakerCount

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


def _flags():
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def test_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="auto, fp32, tf32, bf16, fp16.*'half'"):
        check_precision("half")
    with pytest.raises(ValueError, match="precision must be"), precision_scope("fp8", CPU, []):
        pass


def test_autocast_forward_computes_in_the_low_type_and_returns_float32():
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 32)
    x = torch.randn(8, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16
    wrapped = autocast_forward(layer.forward, "cpu", torch.bfloat16)
    out = wrapped(x)
    assert out.dtype == torch.float32
    exact = layer(x)
    assert not torch.equal(out, exact)  # rounded through bfloat16 ...
    torch.testing.assert_close(out, exact, rtol=0.05, atol=0.05)  # ... but close


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "fp16"])
def test_a_cpu_computes_fp32_whatever_is_asked(precision, strict_fp32):
    layer = torch.nn.Linear(4, 4)
    with precision_scope(precision, torch.device("cpu"), [layer]):
        assert _flags() == (False, False)
        assert "forward" not in vars(layer)
        assert inference.fix_reproducibility.__module__.startswith("pyannote")


def test_tf32_on_a_gpu_switches_tf32_on_and_keeps_pyannote_from_switching_it_off(strict_fp32):
    original = inference.fix_reproducibility
    layer = torch.nn.Linear(4, 4)
    with precision_scope("tf32", CUDA, [layer]):
        assert _flags() == (True, True)
        inference.fix_reproducibility(CUDA)  # what pyannote's inference calls first
        assert _flags() == (True, True)
        assert "forward" not in vars(layer)  # no autocast for tf32
    assert _flags() == (False, False)
    assert inference.fix_reproducibility is original


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precisions_wrap_each_network_and_restore_it(precision, strict_fp32):
    networks = [torch.nn.Linear(4, 4), torch.nn.Conv1d(2, 2, 3)]
    with precision_scope(precision, CUDA, networks):
        assert _flags() == (False, False)  # what autocast leaves in float32 stays strict
        assert all("forward" in vars(n) for n in networks)
    assert all("forward" not in vars(n) for n in networks)
    assert _flags() == (False, False)


def test_the_scope_restores_everything_when_the_call_fails(strict_fp32):
    original = inference.fix_reproducibility
    layer = torch.nn.Linear(4, 4)
    with pytest.raises(RuntimeError, match="boom"), precision_scope("fp16", CUDA, [layer]):
        raise RuntimeError("boom")
    assert "forward" not in vars(layer)
    assert inference.fix_reproducibility is original
    assert _flags() == (False, False)


def test_single_pass_trunk_under_autocast_returns_float32_close_to_fp32(random_weights):
    ecapa = LocalSpeechBrainEmbedding(random_weights.embedding, torch.device("cpu"))
    torch.manual_seed(0)
    audio = 0.1 * torch.randn(1, 16000 * 3)
    with torch.inference_mode():
        exact, _ = SinglePassEcapa(ecapa.classifier_).trunk(audio)
        low, attention = SinglePassEcapa(ecapa.classifier_, compute_type=torch.bfloat16).trunk(
            audio
        )
    assert low.dtype == attention.dtype == torch.float32
    assert not torch.equal(low, exact)
    cosine = torch.nn.functional.cosine_similarity(low.flatten(), exact.flatten(), dim=0)
    assert cosine > 0.99


def test_load_models_sets_the_precision_and_refuses_it_for_stock(random_weights):
    pipeline = load_models(random_weights, torch.device("cpu"), precision="fp16")
    assert pipeline.precision == "fp16"
    with pytest.raises(ValueError, match="stock pyannote computes in fp32 only"):
        load_models(random_weights, torch.device("cpu"), stock=True, precision="tf32")
    with pytest.raises(ValueError, match="precision must be"):
        load_models(random_weights, torch.device("cpu"), precision="int8")


def test_diarizer_refuses_an_unknown_precision_before_loading_anything(tmp_path):
    from diarization import Diarizer

    # an empty weights folder: the precision is checked before the pipeline is chosen
    with pytest.raises(ValueError, match="precision must be one of"):
        Diarizer.load(tmp_path, precision="fp64")


def test_the_output_names_a_gpu_precision_and_not_a_cpus(random_weights):
    from diarization.pyannote_pipeline import PyannotePipeline

    on_cpu = PyannotePipeline.load(random_weights, CPU, precision="fp16")
    # a CPU computes fp32 whatever is asked, and the output says nothing else
    assert on_cpu.embedding_model == "speechbrain/spkrec-ecapa-voxceleb"
    on_gpu = load_models(random_weights, CPU, precision="fp16")
    on_gpu.device = CUDA  # as if loaded on a GPU (the label reads the pipeline's device)
    assert PyannotePipeline(on_gpu).embedding_model == (
        "speechbrain/spkrec-ecapa-voxceleb (fp16 on the GPU)"
    )


def test_precision_is_refused_for_the_bundled_pipeline():
    from diarization.pipelines import load_pipeline

    with pytest.raises(ValueError, match="precision is an option of the pyannote pipeline"):
        load_pipeline("bundled", precision="fp16")


def test_cli_passes_the_precision_and_refuses_an_unknown_one(capsys):
    from diarization.__main__ import parse_args

    assert parse_args(["in.wav", "--precision", "tf32"]).precision == "tf32"
    assert parse_args(["in.wav"]).precision is None  # the library's default
    with pytest.raises(SystemExit):
        parse_args(["in.wav", "--precision", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err


def _turned(vectors: np.ndarray, one_minus_cosine: float) -> np.ndarray:
    """Each row of `vectors` turned, its length kept, by the angle whose cosine is
    1 - `one_minus_cosine` (towards a direction orthogonal to it)."""
    angle = np.arccos(1.0 - one_minus_cosine)
    length = np.linalg.norm(vectors, axis=-1, keepdims=True)
    unit = vectors / length
    other = np.random.default_rng(7).normal(size=vectors.shape)
    other -= np.sum(other * unit, axis=-1, keepdims=True) * unit
    other /= np.linalg.norm(other, axis=-1, keepdims=True)
    return length * (np.cos(angle) * unit + np.sin(angle) * other)


@pytest.mark.parametrize("one_minus_cosine", [0.0, 1e-9, 3e-7, 1e-3])
def test_embedding_deviation_resolves_cosines_float32_cannot(one_minus_cosine):
    rng = np.random.default_rng(0)
    # (chunks, local speakers, dimension) as the pipeline's, the third speaker silent
    reference = rng.normal(size=(5, 3, 192))
    reference[:, 2] = np.nan
    other = _turned(reference, one_minus_cosine)
    other[0, 0] = reference[0, 0]  # one pair unchanged: the largest deviation counts
    got = embedding_deviation(reference, other)
    assert got == pytest.approx(one_minus_cosine, rel=1e-4, abs=1e-15)


def test_embedding_deviation_is_infinite_when_the_pairs_embedded_differ():
    reference = np.ones((2, 3, 4))
    other = reference.copy()
    other[1, 1] = np.nan  # a pair one of them did not embed
    assert embedding_deviation(reference, other) == float("inf")
    nothing = np.full((2, 3, 4), np.nan)
    assert embedding_deviation(nothing, nothing) == float("inf")


def _spy_scopes(monkeypatch) -> list[str]:
    """The modes of the precision scopes the pipeline's stages open, in order."""
    from diarization import pyannote_stages

    opened = []
    original = pyannote_stages.precision_scope

    def spy(precision, device, networks):
        opened.append(precision)
        return original(precision, device, networks)

    monkeypatch.setattr(pyannote_stages, "precision_scope", spy)
    return opened


@pytest.mark.parametrize(
    ("precision", "tf32_embeddings", "expected"),
    [
        # the call in strict fp32, the embedding stage in TF32 once checked
        ("auto", True, ["auto", "tf32"]),
        ("auto", False, ["auto", "fp32"]),
        # any other mode covers the whole call; the stage opens nothing of its own
        ("fp16", False, ["fp16", "fp32"]),
        ("tf32", True, ["tf32", "fp32"]),
    ],
)
def test_under_auto_only_the_embedding_stage_computes_in_tf32(
    random_weights, monkeypatch, precision, tf32_embeddings, expected
):
    pipeline = load_models(random_weights, CPU, precision=precision)
    pipeline.tf32_embeddings = tf32_embeddings
    opened = _spy_scopes(monkeypatch)
    warm_up(pipeline, seconds=6.0)
    assert opened == expected


def test_a_tf32_scope_on_a_gpu_is_undone_after_the_stage(strict_fp32):
    # what the embedding stage's scope does on a GPU (a CUDA device object needs no GPU)
    with precision_scope("tf32", CUDA, []):
        assert _flags() == (True, True)
    assert _flags() == (False, False)
    with precision_scope("auto", CUDA, []):  # the call's scope under auto: strict fp32
        assert _flags() == (False, False)


@pytest.mark.parametrize(("one_minus_cosine", "kept"), [(3e-7, True), (1e-3, False)])
def test_settle_precision_keeps_tf32_only_within_the_tolerance(
    random_weights, monkeypatch, caplog, one_minus_cosine, kept
):
    from diarization import pyannote_pipeline

    pipeline = load_models(random_weights, CPU, precision="auto")
    strict = np.random.default_rng(1).normal(size=(11, 3, 192))
    runs = []

    def fake_warm_up(pipeline, seconds, waveform):
        # the two warm-ups: strict fp32 first, then TF32's embeddings, turned
        runs.append(pipeline.tf32_embeddings)
        return _turned(strict, one_minus_cosine) if pipeline.tf32_embeddings else strict

    monkeypatch.setattr(pyannote_pipeline, "warm_up", fake_warm_up)
    with caplog.at_level(logging.INFO, logger="diarization.pyannote_pipeline"):
        deviation = settle_precision(pipeline)
    assert runs == [False, True]
    assert deviation == pytest.approx(one_minus_cosine, rel=1e-4)
    assert pipeline.tf32_embeddings is kept
    assert (deviation <= AUTO_TF32_TOLERANCE) is kept
    message = "embeddings in TF32 on the GPU" if kept else "embeddings in strict fp32"
    assert message in caplog.text and f"{one_minus_cosine:.1e}" in caplog.text


def test_settle_precision_leaves_fp32_when_the_tf32_run_fails(random_weights, monkeypatch):
    from diarization import pyannote_pipeline

    pipeline = load_models(random_weights, CPU, precision="auto")

    def fake_warm_up(pipeline, seconds, waveform):
        if pipeline.tf32_embeddings:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return np.ones((11, 3, 192))

    monkeypatch.setattr(pyannote_pipeline, "warm_up", fake_warm_up)
    with pytest.raises(torch.OutOfMemoryError, match="injected"):
        settle_precision(pipeline)
    assert pipeline.tf32_embeddings is False


@pytest.mark.parametrize("example", ["present", "missing"])
def test_settle_precision_compares_on_the_examples_speech_else_on_noise(
    random_weights, monkeypatch, caplog, tmp_path, example
):
    from diarization import pyannote_pipeline

    if example == "missing":
        monkeypatch.setattr(pyannote_pipeline, "CHECK_SPEECH", tmp_path / "gone.mp3")
    pipeline = load_models(random_weights, CPU, precision="auto")
    checked_on = []

    def fake_warm_up(pipeline, seconds, waveform):
        checked_on.append(waveform)
        return np.ones((11, 3, 192))

    monkeypatch.setattr(pyannote_pipeline, "warm_up", fake_warm_up)
    with caplog.at_level(logging.INFO, logger="diarization.pyannote_pipeline"):
        settle_precision(pipeline)
    assert len(checked_on) == 2 and pipeline.tf32_embeddings
    if example == "present":
        speech = decode_audio(pyannote_pipeline.CHECK_SPEECH)
        assert len(speech) == pytest.approx(41 * 16000, rel=0.02)
        for waveform in checked_on:
            np.testing.assert_array_equal(waveform, speech)
        assert "on 41 s of speech (conversation.mp3)" in caplog.text
    else:
        assert checked_on == [None, None]  # warm_up's noise
        assert "precision check on noise" in caplog.text and "gone.mp3" in caplog.text
        assert "strict fp32 on noise" in caplog.text


def test_warm_up_runs_on_the_samples_it_is_given(random_weights):
    pipeline = load_models(random_weights, CPU, precision="auto")
    speech = decode_audio(shared_file("real/pyannote_sample.wav"))[: 6 * 16000]
    batches = []
    pipeline._segmentation.model.register_forward_pre_hook(
        lambda module, args: batches.append(args[0][:, 0].numpy().copy())
    )
    embedded = warm_up(pipeline, waveform=speech)
    # 6 s: the windows starting at 0, 0.5 and 1 s, cut from the speech given
    windows = np.concatenate(batches)
    np.testing.assert_array_equal(windows, [speech[i : i + 80000] for i in (0, 8000, 16000)])
    assert embedded.shape == (3, 3, 192) and not np.isnan(embedded).any()


@pytest.mark.parametrize(("tf32_embeddings", "label"), [(True, " (tf32 on the GPU)"), (False, "")])
def test_the_output_names_tf32_only_where_auto_kept_it(random_weights, tf32_embeddings, label):
    from diarization.pyannote_pipeline import PyannotePipeline

    pipeline = load_models(random_weights, CPU, precision="auto")
    pipeline.device = CUDA  # as if loaded on a GPU (the label reads the pipeline's device)
    pipeline.tf32_embeddings = tf32_embeddings
    assert PyannotePipeline(pipeline).embedding_model == "speechbrain/spkrec-ecapa-voxceleb" + label


@pytest.mark.gpu
def test_on_a_gpu_auto_checks_tf32_at_load_and_uses_it_in_the_embedding_stage_only(
    two_speaker_weights, monkeypatch
):
    from diarization.pyannote_pipeline import PyannotePipeline

    runner = PyannotePipeline.load(two_speaker_weights, CUDA)  # the default: auto
    pipeline = runner._pipeline
    assert pipeline.precision == "auto" and pipeline.tf32_embeddings  # random weights: 3.6e-7
    assert runner.embedding_model.endswith("(tf32 on the GPU)")
    strict = load_models(two_speaker_weights, CUDA, precision="fp32")
    seen = {}

    def record(name):
        return lambda module, args: seen.setdefault(name, set()).add(_flags())

    pipeline._segmentation.model.register_forward_pre_hook(record("segmentation"))
    monkeypatch.setattr(
        pipeline._ecapa_forward(),
        "_block_outputs",
        lambda *args, original=pipeline._ecapa_forward()._block_outputs: (
            seen.setdefault("embeddings", set()).add(_flags()) or original(*args)
        ),
    )
    audio = decode_audio(shared_file("real/pyannote_sample.wav"))[: 16 * 16000]
    got = runner(audio, 16000, SpeakerCount(num_speakers=3))
    expected = PyannotePipeline(strict)(audio, 16000, SpeakerCount(num_speakers=3))
    assert seen == {"segmentation": {(False, False)}, "embeddings": {(True, True)}}
    assert _flags() == (False, False)  # the stage's scope restored them
    assert got.turns == expected.turns
    assert embedding_deviation(expected.windows.embeddings, got.windows.embeddings) <= (
        AUTO_TF32_TOLERANCE
    )
