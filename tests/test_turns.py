"""From window scores to turns (pure numpy) and the speech-region helpers of `vad`."""

from __future__ import annotations

import numpy as np
import pytest

from diarization.schema import Turn
from diarization.turns import (
    crosstalk_turns,
    fill_pauses,
    frame_scores,
    frames_to_turns,
    label_frames,
    merge_turns,
    region_windows,
    restore_speakers,
    viterbi,
)
from diarization.vad import (
    VadOptions,
    extend_in_gated_audio,
    normalize_loudness,
    speech_regions,
)

NAMES = ["S0", "S1", "S2"]


def _options(pad: float, min_speech: float, min_silence: float) -> VadOptions:
    return VadOptions(pad=pad, min_speech_duration=min_speech, min_silence_duration=min_silence)


def test_region_windows_slide_inside_long_regions_and_tile_short_ones():
    indices, spans = region_windows([(0.0, 0.35), (1.0, 2.0)], 0.4, 0.2, 300)
    # Short region: its 35 frames repeated to fill 40.
    assert list(indices[0]) == list(range(35)) + list(range(5))
    # Long region: onsets 1.0, 1.2, 1.4, 1.6 (the last ends exactly with the region).
    expected = [(0.0, 0.35), (1.0, 1.4), (1.2, 1.6), (1.4, 1.8), (1.6, 2.0)]
    np.testing.assert_allclose(spans, expected)
    assert list(indices[1]) == list(range(100, 140))


def test_region_windows_add_a_last_window_ending_with_the_region():
    _, spans = region_windows([(0.0, 1.0)], 0.4, 0.5, 300)
    np.testing.assert_allclose(spans, [(0.0, 0.4), (0.5, 0.9), (0.6, 1.0)])


def test_region_windows_none():
    indices, spans = region_windows([], 1.5, 0.75, 100)
    assert indices.shape == (0, 150) and spans.shape == (0, 2)


def test_frame_scores_average_covering_windows():
    spans = np.array([[0.0, 0.03], [0.02, 0.05]])
    scores = np.array([[1.0, 0.0], [0.0, 1.0]])
    per_frame = frame_scores(spans, scores, 6)
    assert per_frame.tolist() == [
        [1.0, 0.0],
        [1.0, 0.0],
        [0.5, 0.5],
        [0.0, 1.0],
        [0.0, 1.0],
        [0.0, 0.0],
    ]


@pytest.mark.parametrize(
    ("penalty", "expected"),
    [
        (0.0, [0, 1, 0, 0]),  # no cost: follow the best score at each step
        (0.5, [0, 0, 0, 0]),  # a one-step dip of 0.2 is not worth two changes
        (0.05, [0, 1, 0, 0]),
    ],
)
def test_viterbi(penalty, expected):
    scores = np.array([[1.0, 0.0], [0.4, 0.6], [1.0, 0.0], [1.0, 0.0]])
    assert list(viterbi(scores, penalty)) == expected


def test_label_frames_only_inside_regions():
    scores = np.zeros((10, 2))
    scores[:, 1] = 1.0
    labels = label_frames([(0.02, 0.05), (0.07, 0.09)], scores, 2, 0.1)
    assert labels.tolist() == [-1, -1, 1, 1, 1, -1, -1, 1, 1, -1]


def test_fill_pauses_only_between_the_same_speaker():
    labels = np.array([0, 0, -1, -1, 0, -1, 1, -1, -1, -1, 1])
    assert fill_pauses(labels, 3).tolist() == [0, 0, 0, 0, 0, -1, 1, -1, -1, -1, 1]


def test_frames_to_turns():
    labels = np.array([-1, 0, 0, 1, -1, 0])
    assert frames_to_turns(labels, NAMES) == [
        Turn(0.01, 0.03, "S0"),
        Turn(0.03, 0.04, "S1"),
        Turn(0.05, 0.06, "S0"),
    ]


def test_crosstalk_only_at_changes_without_pause():
    labels = np.array([0] * 5 + [1] * 2 + [-1] + [2] * 3)
    extra = crosstalk_turns(labels, NAMES, 3)
    # S0 -> S1 touch at frame 5: S0 runs on to 7 (S1's run ends there), S1 starts at 2.
    assert extra == [Turn(0.05, 0.07, "S0"), Turn(0.02, 0.05, "S1")]


def test_merge_turns_joins_each_speakers_overlaps():
    turns = [Turn(0.0, 1.0, "A"), Turn(0.5, 2.0, "A"), Turn(1.0, 1.5, "B"), Turn(2.0, 3.0, "A")]
    assert merge_turns(turns) == [Turn(0.0, 3.0, "A"), Turn(1.0, 1.5, "B")]


def test_restore_speakers_gives_a_missing_cluster_its_best_window():
    labels = np.array([0] * 10)
    spans = np.array([[0.0, 0.04], [0.05, 0.08]])
    restored = restore_speakers(labels, spans, np.array([0, 1]), np.array([0.9, 0.8]))
    assert restored.tolist() == [0] * 5 + [1] * 3 + [0] * 2


@pytest.mark.parametrize(
    ("probabilities", "options", "expected"),
    [
        # hysteresis: 0.4 keeps a started region going, never starts one
        ([0.0, 0.6, 0.4, 0.4, 0.1, 0.4, 0.0], _options(0.0, 0.0, 0.0), [(1, 4)]),
        # a gap shorter than min_silence_duration (0.2 s) is bridged, a longer one not
        ([0.9, 0.0, 0.9, 0.0, 0.0, 0.9], _options(0.0, 0.0, 0.2), [(0, 3), (5, 6)]),
        # too short regions are dropped
        ([0.9, 0.0, 0.9, 0.9, 0.9], _options(0.0, 0.25, 0.0), [(2, 5)]),
        # padding, clipped to the audio, and merging of padded regions
        ([0.9, 0.0, 0.0, 0.9, 0.0], _options(0.1, 0.0, 0.0), [(0, 5)]),
    ],
)
def test_speech_regions(probabilities, options, expected):
    regions = speech_regions(np.array(probabilities), options, frame_duration=0.1)
    assert len(regions) == len(expected)
    np.testing.assert_allclose(np.array(regions).reshape(-1, 2), np.array(expected) / 10)


def test_normalize_loudness_raises_quiet_speech_only():
    t = np.arange(16000) / 16000
    quiet = (0.01 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)  # about -43 dBFS
    louder = normalize_loudness(quiet, target_dbfs=-20.0)
    level = 10 * np.log10(np.mean(louder.astype(np.float64) ** 2))
    assert level == pytest.approx(-20.0, abs=0.1)
    loud = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    assert np.array_equal(normalize_loudness(loud), loud)  # never lowered
    silence = np.zeros(16000, dtype=np.float32)
    assert not normalize_loudness(silence).any()
    faint = (1e-4 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)  # -83 dBFS
    assert np.max(np.abs(normalize_loudness(faint, max_gain_db=30.0))) == pytest.approx(
        1e-4 * 10**1.5, rel=1e-3
    )


def _gated_recording(floor: float) -> np.ndarray:
    """4 s at 16 kHz: background at amplitude `floor`, a soft sound (-40 dBFS) in
    0.70-1.00 s, speech (-20 dBFS) in 1.00-2.00 s, a soft sound in 2.00-2.20 s."""
    rng = np.random.default_rng(0)
    samples = floor * rng.standard_normal(64000)
    samples[11200:16000] = 0.01 * rng.standard_normal(4800)
    samples[16000:32000] = 0.1 * rng.standard_normal(16000)
    samples[32000:35200] = 0.01 * rng.standard_normal(3200)
    return samples.astype(np.float32)


def test_gated_audio_regions_grow_over_the_soft_sound_at_their_edges():
    # digital silence around: the region (what silero found) grows to the soft sound's edges
    regions = extend_in_gated_audio([(1.0, 2.0)], _gated_recording(0.0), max_extension=0.5)
    assert len(regions) == 1
    # 32 ms frames: 0.70 s and 2.20 s up to one frame
    assert regions[0][0] == pytest.approx(0.70, abs=0.032)
    assert regions[0][1] == pytest.approx(2.20, abs=0.032)
    # by at most max_extension each way
    short = extend_in_gated_audio([(1.0, 2.0)], _gated_recording(0.0), max_extension=0.1)
    assert short[0][0] == pytest.approx(0.90, abs=0.032)
    assert short[0][1] == pytest.approx(2.10, abs=0.032)
    # regions that grow into each other are joined
    joined = extend_in_gated_audio([(1.0, 1.5), (1.6, 2.0)], _gated_recording(0.0), 0.5)
    assert len(joined) == 1


def test_audio_with_a_noise_floor_or_no_extension_is_left_unchanged():
    # a -50 dBFS noise floor: no digital silence, energy cannot tell sound from noise
    assert extend_in_gated_audio([(1.0, 2.0)], _gated_recording(0.003), 0.5) == [(1.0, 2.0)]
    assert extend_in_gated_audio([(1.0, 2.0)], _gated_recording(0.0), 0.0) == [(1.0, 2.0)]
    assert extend_in_gated_audio([], _gated_recording(0.0), 0.5) == []
