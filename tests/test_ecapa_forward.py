"""`diarization.ecapa_forward` against SpeechBrain's ECAPA_TDNN module on the same input."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

from diarization import ecapa_forward
from diarization.ecapa_forward import EcapaForward, unsupported
from diarization.random_weights import ECAPA_LAYOUT


def _ecapa(seed: int, **options) -> ECAPA_TDNN:
    """A small ECAPA (the published layout, fewer channels) whose batch norms have
    statistics and scales of both signs, as a trained one has."""
    torch.manual_seed(seed)
    layout = {**ECAPA_LAYOUT, "channels": [64, 64, 64, 64, 192], "attention_channels": 16}
    model = ECAPA_TDNN(80, **{**layout, "lin_neurons": 24, **options})
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.weight.normal_(0, 1)
                module.bias.normal_(0, 0.5)
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.5, 2)
    return model.eval()


def _stock(model: ECAPA_TDNN, feats: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    # SpeechBrain keeps the frames below relative length x frames: stock's lengths
    return model(feats, (counts - 0.5) / feats.shape[1])[:, 0]


CASES = {
    # batch, frames, the counted frames of each row
    "every frame counted": (4, 200, [200, 200, 200, 200]),
    "rows of different lengths": (6, 300, [300, 296, 250, 120, 40, 5]),
    # most frames lie beyond what the pooled frames depend on: they are cut, and
    # cutting one more would change the embeddings
    "frames far past the counted ones": (3, 500, [150, 140, 90]),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("rows_per_step", [1, 4, 64])
def test_forward_is_speechbrains(case, rows_per_step, monkeypatch):
    monkeypatch.setattr(ecapa_forward, "CPU_ROWS_PER_STEP", rows_per_step)
    model = _ecapa(seed=1)
    batch, num_frames, counts = CASES[case]
    counts = torch.tensor(counts)
    feats = torch.randn(batch, num_frames, 80, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = _stock(model, feats, counts)
        got = EcapaForward(model)(feats, counts)
    assert got.shape == expected.shape == (batch, 24)
    assert expected.abs().max() > 0.1
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=2e-6)


@pytest.mark.parametrize("rows_per_step", [1, 64])
def test_rows_ending_before_the_batch_are_what_speechbrain_computes_on_them_alone(
    rows_per_step, monkeypatch
):
    # a batch of rows of their own lengths (ends), the rest of each row noise: each
    # row's embedding is the module's on that row cut to its length, not the one it
    # has when its convolutions reflect at the batch's end
    monkeypatch.setattr(ecapa_forward, "CPU_ROWS_PER_STEP", rows_per_step)
    model = _ecapa(seed=11)
    ends = torch.tensor([400, 390, 300, 260, 120, 6])
    counts = torch.tensor([398, 330, 299, 200, 119, 5])
    feats = torch.randn(6, 420, 80, generator=torch.Generator().manual_seed(12))
    with torch.inference_mode():
        expected = torch.cat(
            [_stock(model, feats[r : r + 1, :end], counts[r : r + 1]) for r, end in enumerate(ends)]
        )
        got = EcapaForward(model)(feats, counts, ends)
        at_batch_end = EcapaForward(model)(feats, counts)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=2e-6)
    # reflected at the batch's end instead, the rows counted up to their end differ,
    # the shortest most (pooled over 5 frames, 1e-2; 1e-5 for the one over 398)
    differs = (at_batch_end - expected).abs().amax(dim=1)
    assert differs[5] > 1e-3 and differs[[2, 4]].min() > 1e-4


def test_rows_cannot_end_before_the_batch_in_a_models_own_forward():
    forward = EcapaForward(_ecapa(seed=5, global_context=False))
    feats = torch.randn(2, 90, 80)
    with torch.inference_mode():
        with pytest.raises(ValueError, match="rows cannot end before the batch's frames: its"):
            forward(feats, torch.tensor([90, 60]), torch.tensor([90, 70]))
        # ends at (or past) the batch's: the model's own forward
        np.testing.assert_array_equal(
            forward(feats, torch.tensor([90, 60]), torch.tensor([90, 95])),
            _stock(forward.model, feats, torch.tensor([90, 60])),
        )


def test_folded_batch_norms_keep_negative_scales():
    # s * relu(z) + t is a clamp from above where s < 0: the model has such channels,
    # and flipping one of them changes the output as it changes SpeechBrain's
    model = _ecapa(seed=3)
    norm = model.blocks[0].norm.norm
    assert (norm.weight < 0).any() and (norm.weight > 0).any()
    feats = torch.randn(2, 120, 80, generator=torch.Generator().manual_seed(4))
    counts = torch.tensor([120, 100])
    with torch.inference_mode():
        before = EcapaForward(model)(feats, counts)
        norm.weight[:8] *= -1
        expected = _stock(model, feats, counts)
        got = EcapaForward(model)(feats, counts)
    assert (got - before).abs().max() > 1e-3
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=2e-6)


def test_a_model_of_another_layout_runs_its_own_forward(caplog):
    model = _ecapa(seed=5, global_context=False)
    assert unsupported(model) == "its attentive pooling has no global context"
    feats = torch.randn(3, 90, 80, generator=torch.Generator().manual_seed(6))
    counts = torch.tensor([90, 60, 30])
    with caplog.at_level(logging.WARNING, logger="diarization.ecapa_forward"):
        forward = EcapaForward(model)
    assert "ECAPA runs its own (slower) forward pass: its attentive pooling" in caplog.text
    with torch.inference_mode():
        np.testing.assert_array_equal(forward(feats, counts), _stock(model, feats, counts))


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda model: model.train(), "the model is in training mode"),
        (lambda model: torch.nn.Linear(2, 2), "Linear is not SpeechBrain's ECAPA_TDNN"),
    ],
)
def test_unsupported_names_what_differs(change, reason):
    assert unsupported(_ecapa(seed=7)) is None
    assert unsupported(change(_ecapa(seed=7))) == reason


def test_too_few_frames_to_reflect_is_an_error():
    model = _ecapa(seed=8)
    feats = torch.randn(1, 4, 80)  # the last block's dilation is 4, as SpeechBrain's padding
    with torch.inference_mode(), pytest.raises(ValueError, match="4 frames are too few"):
        EcapaForward(model)(feats, torch.tensor([4]))
    with torch.inference_mode(), pytest.raises(RuntimeError, match="[Pp]adding size"):
        _stock(model, feats, torch.tensor([4]))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [None, torch.float16])
def test_on_a_gpu_the_forward_is_speechbrains(dtype, strict_fp32):
    # fp32 as pyannote runs it (TF32 off); fp16 as the precision mode runs both
    cuda = torch.device("cuda")
    model = _ecapa(seed=9).to(cuda)
    batch, num_frames, counts = CASES["rows of different lengths"]
    counts = torch.tensor(counts)
    feats = torch.randn(batch, num_frames, 80, generator=torch.Generator().manual_seed(10))
    feats = feats.to(cuda)
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
        expected = _stock(model, feats, counts.to(cuda)).float()
        got = EcapaForward(model)(feats, counts).float()
    if dtype is None:
        np.testing.assert_allclose(got.cpu(), expected.cpu(), rtol=1e-4, atol=2e-6)
    else:  # two different float16 computations: close in direction
        assert torch.nn.functional.cosine_similarity(got, expected).min() > 0.999
