"""Which pipeline runs: `choose_pipeline` (pure) and the CLI's new options."""

from __future__ import annotations

import pytest

from diarization.diarizer import choose_pipeline
from diarization.schema import InputError
from diarization.weights import FETCH_COMMAND, WeightsError, WeightsLayout


def test_auto_picks_pyannote_when_its_weights_are_present(random_weights):
    name, why = choose_pipeline("auto", random_weights)
    assert name == "pyannote" and str(random_weights.root) in why


def test_auto_falls_back_to_bundled_and_says_why(tmp_path):
    layout = WeightsLayout(tmp_path / "empty")
    name, why = choose_pipeline("auto", layout)
    assert name == "bundled"
    assert str(layout.segmentation) in why and FETCH_COMMAND in why


def test_pyannote_asked_for_without_weights_is_an_error_not_a_fallback(tmp_path):
    layout = WeightsLayout(tmp_path / "empty")
    with pytest.raises(WeightsError, match="missing weight file"):
        choose_pipeline("pyannote", layout)


def test_bundled_asked_for_never_needs_weights(tmp_path):
    assert choose_pipeline("bundled", WeightsLayout(tmp_path / "empty"))[0] == "bundled"


def test_unknown_pipeline_is_an_input_error(random_weights):
    with pytest.raises(InputError, match="pipeline must be one of auto, pyannote, bundled"):
        choose_pipeline("whisper", random_weights)


def test_another_pipeline_is_loaded_on_request_and_kept(diarizer):
    from conftest import ROOT

    example = ROOT / "examples" / "conversation.mp3"  # shipped: two LibriSpeech speakers
    result = diarizer.diarize(example, pipeline="bundled")
    assert result.pipeline.name == "bundled" and result.pipeline.embedding_dimension == 256
    assert result.labels == ["A", "B"]
    assert diarizer.pipeline.name == "pyannote"  # the default is unchanged
    assert diarizer.pipeline_for("bundled") is diarizer.pipeline_for("bundled")
