"""Precision modes of the networks on a GPU (`diarization.precision`).

Autocast is checked on the CPU (bfloat16, which CPUs support); the scope's
switching of TF32 and of pyannote's `fix_reproducibility` is checked with a
CUDA device object, which needs no GPU to exist.
"""

from __future__ import annotations

import pytest
import torch
from pyannote.audio.core import inference

from diarization.ecapa_single_pass import SinglePassEcapa
from diarization.precision import autocast_forward, check_precision, precision_scope
from diarization.pyannote_pipeline import LocalSpeechBrainEmbedding, load_models

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


def _flags():
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def test_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="fp32, tf32, bf16, fp16.*'half'"):
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
