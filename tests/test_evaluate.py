"""Scoring and the evaluation command on tiny made-up cases with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from conftest import write_wav
from diarization import evaluate
from diarization.evaluate import find_items, format_table, group_totals, load_reference
from diarization.schema import RawDiarization, Turn, WindowEmbeddings
from diarization.schema import Segment as OutputSegment
from diarization.scoring import (
    Components,
    RttmError,
    equal_error_rate,
    read_rttm,
    read_uem,
    rttm_lines,
    score_file,
    segments_to_annotation,
    total_score,
    turns_to_annotation,
    write_rttm,
)


def _annotation(uri: str, *turns: tuple[float, float, str]) -> Annotation:
    annotation = Annotation(uri=uri)
    for k, (start, end, label) in enumerate(turns):
        annotation[Segment(start, end), k] = label
    return annotation


def _whole(duration: float) -> Timeline:
    return Timeline([Segment(0.0, duration)])


# Reference A 0-10, B 10-20; hypothesis X 0-12, Y 12-20 (X maps to A, Y to B).
REFERENCE = _annotation("u", (0, 10, "A"), (10, 20, "B"))
HYPOTHESIS = _annotation("u", (0, 12, "X"), (12, 20, "Y"))


def test_confusion_and_collars_by_hand():
    score = score_file(REFERENCE, HYPOTHESIS, _whole(20))
    # collar 0: 10-12 is B's speech given to X (=A): 2 s confused of 20 s.
    assert score.components[0.0] == Components(20.0, 0.0, 0.0, 2.0)
    assert score.der(0.0) == pytest.approx(0.10)
    # collar 0.5: 0.25 s removed around the boundaries at 0, 10 and 20 -> 19 s
    # scored; the confused part shrinks to 10.25-12 = 1.75 s. 1.75 / 19:
    assert score.components[0.5] == Components(19.0, 0.0, 0.0, 1.75)
    assert score.der(0.5) == pytest.approx(1.75 / 19)
    # JER: A~X 1 - 10/12, B~Y 1 - 8/10, averaged over the 2 reference speakers.
    assert score.jer == pytest.approx((2 / 12 + 2 / 10) / 2)
    assert (score.reference_speakers, score.hypothesis_speakers, score.count_matches) == (2, 2, 1)


def test_missed_and_false_alarm_split_by_hand():
    reference = _annotation("m", (0, 10, "A"))
    hypothesis = _annotation("m", (2, 12, "X"))
    score = score_file(reference, hypothesis, _whole(12))
    assert score.components[0.0] == Components(10.0, 2.0, 2.0, 0.0)
    assert score.der(0.0) == pytest.approx(0.4)
    # collar 0.5 removes 0-0.25 and 9.75-10.25: 9.5 s scored, 1.75 s missed, 1.75 s false alarm
    assert score.components[0.5] == Components(9.5, 1.75, 1.75, 0.0)
    assert score.der(0.5) == pytest.approx(3.5 / 9.5)


def test_uem_restricts_scoring():
    score = score_file(REFERENCE, HYPOTHESIS, Timeline([Segment(0, 10)]))
    assert score.components[0.0] == Components(10.0, 0.0, 0.0, 0.0)


def test_speaker_count_comparison():
    three = _annotation("u", (0, 12, "X"), (12, 15, "Y"), (15, 20, "Z"))
    score = score_file(REFERENCE, three, _whole(20))
    assert (score.reference_speakers, score.hypothesis_speakers, score.count_matches) == (2, 3, 0)


def test_empty_reference_false_alarm_is_der_one_and_jer_undefined():
    score = score_file(Annotation(uri="e"), _annotation("e", (1, 3, "X")), _whole(5))
    assert score.components[0.0] == Components(0.0, 0.0, 2.0, 0.0)
    assert score.der(0.0) == 1.0
    assert score.jer is None
    silent = score_file(Annotation(uri="e"), Annotation(uri="e"), _whole(5))
    assert silent.der(0.0) == 0.0 and silent.count_matches == 1


def test_total_is_weighted_by_reference_speech_like_pyannote():
    first = score_file(REFERENCE, HYPOTHESIS, _whole(20))  # 2 s error of 20 s
    reference = _annotation("m", (0, 10, "A"))
    second = score_file(reference, _annotation("m", (2, 12, "X")), _whole(12))  # 4 of 10
    total = total_score([first, second])
    assert total.der(0.0) == pytest.approx(6 / 30)  # not the mean of 0.10 and 0.40
    assert total.der(0.5) == pytest.approx((1.75 + 3.5) / (19 + 9.5))
    assert (total.files, total.count_matches) == (2, 2)
    # JER sums speaker errors over reference speakers: (1/6 + 1/5 + 1/3) / 3.
    assert total.jer == pytest.approx((1 / 6 + 1 / 5 + 1 / 3) / 3)
    for collar in (0.0, 0.5):
        metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
        metric(REFERENCE, HYPOTHESIS, uem=_whole(20))
        metric(reference, _annotation("m", (2, 12, "X")), uem=_whole(12))
        assert total.der(collar) == pytest.approx(abs(metric))


def test_rttm_round_trip_keeps_non_ascii_names(tmp_path):
    annotation = _annotation("ami x", (1.5, 3.25, "MÉO069"), (2.0, 4.0, "B"))
    annotation.uri = "ami_x"
    path = tmp_path / "h.rttm"
    write_rttm(annotation, path)
    assert path.read_text(encoding="utf-8").splitlines() == [
        "SPEAKER ami_x 1 1.500 1.750 <NA> <NA> MÉO069 <NA> <NA>",
        "SPEAKER ami_x 1 2.000 2.000 <NA> <NA> B <NA> <NA>",
    ]
    back = read_rttm(path)["ami_x"]
    assert sorted(back.labels()) == ["B", "MÉO069"]
    assert back.label_duration("MÉO069") == pytest.approx(1.75)
    assert rttm_lines(back) == rttm_lines(annotation)


def test_read_rttm_rejects_bad_lines(tmp_path):
    path = tmp_path / "bad.rttm"
    path.write_text("SPEAKER u 1 zero 1.0 <NA> <NA> A <NA> <NA>\n")
    with pytest.raises(RttmError, match="bad.rttm:1"):
        read_rttm(path)


def test_read_uem(tmp_path):
    path = tmp_path / "a.uem"
    path.write_text("a 1 0.000 30.000\n")
    assert read_uem(path)["a"].duration() == pytest.approx(30.0)


def test_turns_and_segments_to_annotation():
    turns = [Turn(0.0, 1.0, "SPEAKER_00"), Turn(0.5, 2.0, "SPEAKER_01"), Turn(3.0, 3.0, "X")]
    annotation = turns_to_annotation(turns, "u")
    assert annotation.labels() == ["SPEAKER_00", "SPEAKER_01"]
    segments = [OutputSegment("A", 0.0, 1.0), OutputSegment("B", 1.0, 2.5)]
    assert segments_to_annotation(segments, "u").label_duration("B") == pytest.approx(1.5)


def test_equal_error_rate_by_hand():
    # Threshold 0.5: 1 of 3 same-speaker trials rejected, 1 of 3 others accepted.
    eer, threshold = equal_error_rate(np.array([0.9, 0.8, 0.4]), np.array([0.5, 0.3, 0.2]))
    assert (eer, threshold) == (pytest.approx(1 / 3), 0.5)
    assert equal_error_rate(np.array([0.9, 0.8]), np.array([0.1, 0.2]))[0] == 0.0
    with pytest.raises(ValueError, match="both kinds"):
        equal_error_rate(np.array([0.9]), np.array([]))


def _folder(tmp_path):
    """Two recordings with references (one with a UEM), one without, and a stray file."""
    folder = tmp_path / "set"
    folder.mkdir()
    write_wav(folder / "a.wav", np.zeros(16000 * 20))
    (folder / "a.rttm").write_text(
        "SPEAKER a 1 0.0 10.0 <NA> <NA> A <NA> <NA>\nSPEAKER a 1 10.0 10.0 <NA> <NA> B <NA> <NA>\n"
    )
    write_wav(folder / "b.wav", np.zeros(16000 * 12))
    (folder / "b.rttm").write_text("SPEAKER other_name 1 0.0 10.0 <NA> <NA> A <NA> <NA>\n")
    (folder / "b.uem").write_text("b 1 0.0 12.0\n")
    write_wav(folder / "c.wav", np.zeros(1600))  # no reference: skipped
    (folder / "notes.txt").write_text("not audio")
    return folder


def test_find_items_and_load_reference(tmp_path):
    folder = _folder(tmp_path)
    items = find_items([folder])
    assert [(i.audio.name, i.rttm.name, i.uem and i.uem.name) for i in items] == [
        ("a.wav", "a.rttm", None),
        ("b.wav", "b.rttm", "b.uem"),
    ]
    reference, uem = load_reference(items[0], 20.0)
    assert reference.labels() == ["A", "B"] and uem.duration() == 20.0
    reference, uem = load_reference(items[1], 12.0)  # single uri under another name
    assert reference.uri == "b" and reference.label_duration("A") == 10.0


class _FakePipeline:
    """Returns fixed turns: X 0-12, Y 12-20 (both recordings)."""

    name = "fake"
    device = "cpu"

    def __call__(self, waveform, sample_rate, speakers, progress=None):
        duration = len(waveform) / sample_rate
        turns = [Turn(0.0, 12.0, "X"), Turn(12.0, min(20.0, duration), "Y")]
        windows = WindowEmbeddings(np.zeros(0), 0.0, np.zeros((0, 1, 2)))
        centroids = {"X": np.ones(2), "Y": np.ones(2)}
        return RawDiarization(turns, windows, centroids, duration)


def test_command_prints_rows_and_totals(tmp_path, monkeypatch, capsys):
    folder = _folder(tmp_path)
    monkeypatch.setattr(evaluate, "load_pipeline", lambda *args: _FakePipeline())
    status = evaluate.main([str(folder), "--rttm-out", str(tmp_path / "out")])
    assert status == 0
    out = capsys.readouterr().out
    # a: confusion 2 of 20 s (10.0 %); b (12 s, so only X 0-12): false alarm 10-12, 2 of 10 s.
    raw_table = out.split("POST-PROCESSED")[0]
    assert "a " in raw_table and "  10.0 " in raw_table
    total_line = next(line for line in raw_table.splitlines() if line.startswith("TOTAL"))
    assert " 13.3 " in total_line  # (2 + 2) / (20 + 10) = 13.3 %
    assert " 0.0   6.7   6.7 " in total_line  # missed, false alarm, confusion (% of 30 s)
    assert "2/2 right" in total_line
    assert (tmp_path / "out" / "a.raw.rttm").read_text().startswith("SPEAKER a 1 0.000 12.000")
    assert (tmp_path / "out" / "b.rttm").exists()


def test_command_without_references(tmp_path, capsys):
    assert evaluate.main([str(tmp_path)]) == 2
    assert "no audio file with a .rttm" in capsys.readouterr().err


def test_group_totals_and_table(tmp_path):
    first = score_file(REFERENCE, HYPOTHESIS, _whole(20))
    second = score_file(REFERENCE, REFERENCE, _whole(20))
    rows = group_totals([first, second], [tmp_path / "x", tmp_path / "y"])
    assert [r.uri for r in rows] == ["TOTAL x", "TOTAL y", "TOTAL"]
    assert rows[-1].der(0.0) == pytest.approx(2 / 40)
    table = format_table([first, *rows], "title")
    assert table.splitlines()[0] == "title"
    assert "TOTAL" in table.splitlines()[-1] and "2/2 right" in table.splitlines()[-1]


def test_load_pipeline_refuses_unknown_names_and_stray_weights(tmp_path):
    from diarization.pipelines import load_pipeline

    with pytest.raises(ValueError, match="unknown pipeline 'nope'"):
        load_pipeline("nope")
    with pytest.raises(ValueError, match="drop --weights"):
        load_pipeline("bundled", weights=tmp_path)
