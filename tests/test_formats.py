"""RTTM text and the timeline picture."""

from __future__ import annotations

import pytest

from diarization.formats import rttm, rttm_field, write_timeline_png
from diarization.schema import DiarizationResult, Overlap, Segment


def test_rttm_has_the_ten_standard_fields():
    segments = [Segment("A", 0.5, 3.0), Segment("Jane Doe", 2.25, 10.125)]
    assert rttm(segments, uri="my interview") == (
        "SPEAKER my_interview 1 0.500 2.500 <NA> <NA> A <NA> <NA>\n"
        "SPEAKER my_interview 1 2.250 7.875 <NA> <NA> Jane_Doe <NA> <NA>\n"
    )
    assert all(len(line.split()) == 10 for line in rttm(segments).splitlines())


@pytest.mark.parametrize(("text", "field"), [("a b\tc", "a_b_c"), (" x ", "x"), ("", "_")])
def test_rttm_field(text, field):
    assert rttm_field(text) == field


def lane_colours(path) -> set[tuple[int, int, int]]:
    """Saturated colours filling whole bars (the lanes), ignoring greys, the pale overlap
    band and the few anti-aliased pixels at bar edges."""
    from collections import Counter

    from matplotlib.image import imread

    pixels = (imread(path)[:, :, :3] * 255).round().astype(int)
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    counts = Counter(tuple(p) for p in pixels[spread > 90])
    return {colour for colour, n in counts.items() if n >= 500}


def test_timeline_has_one_coloured_lane_per_speaker(tmp_path):
    result = DiarizationResult(
        segments=[Segment("A", 0, 10), Segment("B", 8, 20), Segment("C", 25, 28)],
        labels=["A", "B", "C"],
        overlaps=[Overlap(8, 10, ("A", "B"))],
    )
    path = write_timeline_png(result, 30.0, tmp_path / "timeline.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(lane_colours(path)) == 3
    one = DiarizationResult(segments=[Segment("A", 0, 10)], labels=["A"])
    single = write_timeline_png(one, 30.0, tmp_path / "one.png")
    assert len(lane_colours(single)) == 1
    from matplotlib.image import imread

    assert imread(path).shape[0] > imread(single).shape[0]  # a lane per speaker


def test_timeline_of_silence_is_still_a_picture(tmp_path):
    path = write_timeline_png(DiarizationResult([], []), 5.0, tmp_path / "empty.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and lane_colours(path) == set()


def test_write_output_in_each_format(tmp_path):
    import json
    import zipfile

    from diarization.formats import OUTPUT_FORMATS, write_output

    result = DiarizationResult(
        segments=[Segment("A", 0, 4), Segment("B", 5, 9)],
        labels=["A", "B"],
        embeddings={"A": [1.0], "B": [0.0]},
        duration=10.0,
    )
    written = {
        kind: write_output(result, kind, tmp_path / kind, uri="x") for kind in OUTPUT_FORMATS
    }
    assert json.loads(written["json"].read_text()) == result.to_dict()
    assert written["rttm"].read_text() == rttm(result.segments, "x")
    assert written["timeline"].read_bytes()[:4] == b"\x89PNG"
    with zipfile.ZipFile(written["zip"]) as archive:
        assert sorted(archive.namelist()) == ["output.json", "output.rttm", "timeline.png"]
    with pytest.raises(ValueError, match="output_format must be one of json, rttm"):
        write_output(result, "pdf", tmp_path)
