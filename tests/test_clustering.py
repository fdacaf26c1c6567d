"""Clustering and speaker-count estimation on synthetic embeddings (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from diarization.clustering import (
    centroids_of,
    cluster,
    count_bounds,
    relabel,
    split_gap,
    two_means,
)
from diarization.schema import SpeakerCount

DIMENSION = 64


def _speakers(num_speakers: int, windows_each: int, noise: float = 0.6, seed: int = 0):
    """Windows of `num_speakers` synthetic voices in turns of 3 windows, 1 s apart.

    Each voice is a random unit direction; each window that direction plus Gaussian
    noise of norm ~`noise`, giving same-speaker cosines ~0.75 and different-speaker
    ~0.0, like centred GE2E embeddings.
    """
    rng = np.random.default_rng(seed)
    voices = rng.normal(size=(num_speakers, DIMENSION))
    voices /= np.linalg.norm(voices, axis=1, keepdims=True)
    truth = np.repeat(np.tile(np.arange(num_speakers), windows_each // 3 + 1), 3)
    truth = truth[: num_speakers * windows_each]
    noise_vectors = rng.normal(size=(len(truth), DIMENSION)) * noise / np.sqrt(DIMENSION)
    embeddings = voices[truth] + noise_vectors
    starts = np.arange(len(truth), dtype=float)
    return embeddings, starts, starts + 1.0, truth


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(relabel(a), relabel(b))


@pytest.mark.parametrize(
    ("speakers", "num_items", "expected"),
    [
        (SpeakerCount(), 10, (1, 10)),
        (SpeakerCount(), 0, (0, 0)),
        (SpeakerCount(num_speakers=3), 10, (3, 3)),
        (SpeakerCount(num_speakers=3), 2, (2, 2)),
        (SpeakerCount(min_speakers=2), 10, (2, 10)),
        (SpeakerCount(max_speakers=4), 10, (1, 4)),
        (SpeakerCount(min_speakers=2, max_speakers=4), 3, (2, 3)),
    ],
)
def test_count_bounds(speakers, num_items, expected):
    assert count_bounds(speakers, num_items) == expected


@pytest.mark.parametrize("num_speakers", [1, 2, 3, 5])
def test_estimates_the_count_and_the_partition(num_speakers):
    embeddings, starts, ends, truth = _speakers(num_speakers, windows_each=12)
    labels = cluster(embeddings, starts, ends)
    assert labels.max() + 1 == num_speakers
    assert _same_partition(labels, truth)


@pytest.mark.parametrize("requested", [1, 2, 4, 6])
def test_exact_count_is_honoured(requested):
    embeddings, starts, ends, _ = _speakers(3, windows_each=12)
    labels = cluster(embeddings, starts, ends, SpeakerCount(num_speakers=requested))
    assert labels.max() + 1 == requested
    assert set(labels) == set(range(requested))


def test_exact_count_with_identical_windows_still_splits():
    embeddings = np.ones((4, DIMENSION))
    starts = np.arange(4.0)
    labels = cluster(embeddings, starts, starts + 1, SpeakerCount(num_speakers=2))
    assert sorted(set(labels)) == [0, 1]


def test_bounds_clip_the_estimate():
    embeddings, starts, ends, _ = _speakers(3, windows_each=12)
    assert cluster(embeddings, starts, ends, SpeakerCount(max_speakers=2)).max() + 1 == 2
    assert cluster(embeddings, starts, ends, SpeakerCount(min_speakers=5)).max() + 1 == 5
    both = SpeakerCount(min_speakers=2, max_speakers=6)
    assert cluster(embeddings, starts, ends, both).max() + 1 == 3


def test_more_speakers_than_windows_gives_one_per_window():
    embeddings, starts, ends, _ = _speakers(2, windows_each=1)
    labels = cluster(embeddings, starts, ends, SpeakerCount(num_speakers=5))
    assert list(labels) == [0, 1]


def test_no_windows_and_one_window():
    empty = np.zeros((0, DIMENSION))
    assert cluster(empty, np.zeros(0), np.zeros(0)).shape == (0,)
    one = np.ones((1, DIMENSION))
    assert list(cluster(one, np.zeros(1), np.ones(1))) == [0]


def test_labels_are_numbered_by_first_appearance():
    assert list(relabel(np.array([5, 5, 2, 7, 2]))) == [0, 0, 1, 2, 1]
    embeddings, starts, ends, _ = _speakers(3, windows_each=12)
    labels = cluster(embeddings, starts, ends)
    firsts = [int(np.flatnonzero(labels == k)[0]) for k in range(labels.max() + 1)]
    assert firsts == sorted(firsts)


def test_split_gap_by_hand():
    # Two tight pairs, orthogonal to each other; windows 0/1 and 2/3 do not overlap.
    e = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    halves = np.array([0, 0, 1, 1])
    starts = np.array([0.0, 2.0, 4.0, 6.0])
    # within: 1.0 in both halves; across: 0.0
    assert split_gap(e, halves, starts, starts + 1) == pytest.approx(1.0)
    # Windows overlapping in time are not within-half pairs: no pair left -> None.
    assert split_gap(e, halves, np.zeros(4), np.ones(4)) is None


def test_two_means_is_deterministic_and_separates_blobs():
    rng = np.random.default_rng(3)
    points = np.concatenate([rng.normal(0, 0.1, (10, 3)), rng.normal(2, 0.1, (7, 3))])
    labels = two_means(points)
    assert _same_partition(labels, np.array([0] * 10 + [1] * 7))
    assert np.array_equal(labels, two_means(points))


def test_centroids_are_unit_means():
    e = np.array([[2.0, 0.0], [0.0, 3.0], [0.0, 1.0]])
    c = centroids_of(e, np.array([0, 1, 1]))
    assert np.allclose(c, [[1.0, 0.0], [0.0, 1.0]])
