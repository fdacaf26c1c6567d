"""scripts/postprocess_cost.py: the cost of each post-processing rule on a perfect
diarization, checked on made-up references whose costs are worked out by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from pyannote.core import Annotation, Timeline
from pyannote.core import Segment as Interval

from conftest import write_wav
from diarization.postprocess import PostprocessOptions

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "postprocess_cost.py"


@pytest.fixture(scope="module")
def cost():
    spec = importlib.util.spec_from_file_location("postprocess_cost", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["postprocess_cost"] = module
    spec.loader.exec_module(module)
    return module


def make_recording(cost, turns, duration, uri="made_up", group="real"):
    reference = Annotation(uri=uri)
    for k, (start, end, speaker) in enumerate(turns):
        reference[Interval(start, end), k] = speaker
    uem = Timeline([Interval(0.0, duration)], uri=uri)
    return cost.Recording(uri, group, reference, uem, duration)


# 200 s of speech in 300 s of audio:
#   S1  0-50 and 51.5-100    a 1.5 s gap: the merge rule fills it (false alarm 1.5 s)
#   S2  110-110.6, 120-219.9 a 0.6 s turn: the duration rule drops it (missed 0.6 s)
#   S3  250-251              1 s = 0.5 % of all speech: the share rule drops it (missed 1 s)
REFERENCE = [
    (0.0, 50.0, "S1"),
    (51.5, 100.0, "S1"),
    (110.0, 110.6, "S2"),
    (120.0, 219.9, "S2"),
    (250.0, 251.0, "S3"),
]

# At collar 0.5, 0.25 s on each side of the 10 reference boundaries is not scored:
# 10 x 0.25 s of speech leave 197.5 s; 0.1 s of the short turn, the middle 1 s of
# the gap and the middle 0.5 s of S3's turn stay scored.
#            setting     collar 0: (missed, FA)   collar 0.5: (missed, FA)   speakers
EXPECTED = {
    "off": ((0.0, 0.0), (0.0, 0.0), 3),
    "duration": ((0.6, 0.0), (0.1, 0.0), 3),
    "share": ((1.0, 0.0), (0.5, 0.0), 2),
    "merge": ((0.0, 1.5), (0.0, 1.0), 3),
    "all": ((1.6, 1.5), (0.6, 1.0), 2),
}


def test_rule_settings_turn_on_one_default_at_a_time(cost):
    settings = cost.rule_settings()
    assert list(settings) == ["off", "duration", "share", "merge", "all"]
    assert settings["off"] == PostprocessOptions(0.0, 0.0, 0.0)
    assert settings["duration"] == PostprocessOptions(1.0, 0.0, 0.0)
    assert settings["share"] == PostprocessOptions(0.0, 0.01, 0.0)
    assert settings["merge"] == PostprocessOptions(0.0, 0.0, 2.0)
    assert settings["all"] == PostprocessOptions(1.0, 0.01, 2.0)


@pytest.mark.parametrize("setting", list(EXPECTED))
def test_cost_of_each_rule_matches_the_hand_count(cost, setting):
    recording = make_recording(cost, REFERENCE, duration=300.0)
    (score,) = cost.cost_table([recording])[setting]
    (missed_0, fa_0), (missed_05, fa_05), speakers = EXPECTED[setting]
    c0, c05 = score.components[0.0], score.components[0.5]
    assert c0.total == pytest.approx(200.0, abs=1e-9)
    assert (c0.missed, c0.false_alarm, c0.confusion) == pytest.approx(
        (missed_0, fa_0, 0.0), abs=1e-9
    )
    assert score.der(0.0) == pytest.approx((missed_0 + fa_0) / 200.0, abs=1e-12)
    assert c05.total == pytest.approx(197.5, abs=1e-9)
    assert (c05.missed, c05.false_alarm, c05.confusion) == pytest.approx(
        (missed_05, fa_05, 0.0), abs=1e-9
    )
    assert (score.reference_speakers, score.hypothesis_speakers) == (3, speakers)


def test_another_speaker_in_between_blocks_the_merge(cost):
    # The merge rule only looks at the previous segment in start order: S2's
    # backchannel (overlapping S1) starts after S1's first turn, so S1's 1 s gap
    # is not filled; without it, it is.
    with_backchannel = [(0.0, 10.0, "S1"), (4.0, 5.0, "S2"), (11.0, 20.0, "S1")]
    without = [(0.0, 10.0, "S1"), (11.0, 20.0, "S1")]
    recordings = [
        make_recording(cost, with_backchannel, 30.0, uri="backchannel"),
        make_recording(cost, without, 30.0, uri="plain", group="sim"),
    ]
    table = cost.cost_table(recordings)
    backchannel, plain = table["merge"]
    assert backchannel.components[0.0].false_alarm == 0.0
    assert plain.components[0.0].false_alarm == pytest.approx(1.0, abs=1e-9)
    # Overlapped speech is scored and given back exactly with every rule off.
    assert [s.der(c) for s in table["off"] for c in (0.0, 0.5)] == [0.0] * 4
    totals = cost.group_totals(recordings, table["merge"])
    assert list(totals) == ["real", "sim", "all"]
    # Reference speech: 10 + 1 + 9 s (the overlap counts once per speaker) and 10 + 9 s.
    assert totals["all"].components[0.0].total == pytest.approx(20.0 + 19.0, abs=1e-9)
    assert totals["all"].der(0.0) == pytest.approx(1.0 / 39.0, abs=1e-12)
    assert totals["real"].der(0.0) == 0.0


def test_load_recording_reads_rttm_uem_and_audio_duration(cost, tmp_path):
    folder = tmp_path / "real"
    folder.mkdir()
    write_wav(folder / "talk.wav", np.zeros(3 * 16000))
    (folder / "talk.rttm").write_text(
        "SPEAKER other_name 1 0.500 1.000 <NA> <NA> MÉO069 <NA> <NA>\n"
        "SPEAKER other_name 1 2.000 0.500 <NA> <NA> X <NA> <NA>\n",
        encoding="utf-8",
    )
    (folder / "talk.uem").write_text("talk 1 0.000 2.000\n", encoding="utf-8")
    (recording,) = cost.find_recordings([folder])
    assert (recording.uri, recording.group, recording.duration) == ("talk", "real", 3.0)
    assert sorted(recording.reference.labels()) == ["MÉO069", "X"]
    assert recording.uem.duration() == 2.0
    # Scored inside the UEM only: X's turn (2.0-2.5 s) lies outside it.
    (score,) = cost.cost_table([recording], {"off": PostprocessOptions.off()})["off"]
    assert score.components[0.0].total == pytest.approx(1.0, abs=1e-9)


def test_a_reference_without_audio_is_an_error(cost, tmp_path):
    (tmp_path / "lonely.rttm").write_text("", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"no audio file named lonely\.\*"):
        cost.load_recording(tmp_path / "lonely.rttm")
