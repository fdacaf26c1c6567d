"""The bundled pipeline: silero-vad + resemblyzer GE2E + clustering, no downloads.

Both models ship inside their PyPI packages (silero-vad: MIT; resemblyzer:
Apache-2.0), so this pipeline runs offline with no weights folder. Stages:

1. speech activity: loudness normalisation, silero-vad probabilities, regions
   (widened over soft utterance edges in noise-gated audio);
2. embeddings: GE2E embeddings of 1.5 s windows inside the speech regions;
3. clustering: divisive clustering with a speaker-count estimate (`clustering`);
4. turns: 1.0 s windows every 0.1 s scored against the speaker centroids,
   Viterbi-smoothed per 50 ms, short same-speaker pauses bridged, both speakers
   kept for a moment at each speaker change (`turns`).

This module and its model wrappers (`vad`, `speaker_encoder`) are the only ones
of this pipeline that import torch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from diarization.clustering import (
    ClusteringOptions,
    centroids_of,
    cluster,
    count_bounds,
    normalize_rows,
)
from diarization.schema import InputError, RawDiarization, SpeakerCount, WindowEmbeddings
from diarization.speaker_encoder import (
    EMBEDDING_DIMENSION,
    SAMPLE_RATE,
    SpeakerEncoder,
    mel_frames,
)
from diarization.turns import (
    crosstalk_turns,
    fill_pauses,
    frame_scores,
    frames_to_turns,
    label_frames,
    merge_turns,
    region_windows,
    restore_speakers,
    to_frame,
)
from diarization.vad import (
    SileroVad,
    VadOptions,
    extend_in_gated_audio,
    normalize_loudness,
    speech_regions,
)

logger = logging.getLogger(__name__)

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class BundledOptions:
    """Hyper-parameters of the bundled pipeline, tuned on the dev set
    (../shared/data: AMI excerpts, other real recordings, simulated conversations).

    Attributes:
        window_vad: regions that embedding windows stay inside: silero's
            defaults with 0.1 s padding; pauses of 0.1 s already separate regions,
            so windows rarely straddle a change of speaker at a pause.
        speech_vad: the speech that is labelled: 0.15 s padding and pauses under
            0.3 s bridged, as references mark short pauses inside a turn as speech.
        cluster_window, cluster_step: seconds per clustering window and hop. GE2E
            was trained on 1.6 s; 1.5 s with half overlap gave the most separable
            windows among 1.0-2.5 s on the dev set.
        label_window, label_step: shorter windows, more often, for locating
            speaker changes once the speakers are known.
        gated_extension: in noise-gated recordings (pauses of digital silence),
            labelled speech is extended by up to this many seconds over the sound
            that silero-vad leaves out at the edges of utterances
            (`vad.extend_in_gated_audio`); 0 turns it off.
        label_step_frames: Viterbi decision step in 10 ms frames (50 ms).
        switch_penalty: Viterbi cost of a change of speaker, in cosine units.
        max_pause: same-speaker pauses shorter than this many seconds are
            bridged (AMI references keep such pauses inside a turn).
        crosstalk: seconds for which both speakers are kept on either side of a
            change of speaker with no pause (overlapped speech at turn-taking).
        clustering: see `ClusteringOptions`.
    """

    window_vad: VadOptions = field(default_factory=lambda: VadOptions(pad=0.1))
    speech_vad: VadOptions = field(
        default_factory=lambda: VadOptions(pad=0.15, min_silence_duration=0.3)
    )
    cluster_window: float = 1.5
    cluster_step: float = 0.75
    label_window: float = 1.0
    label_step: float = 0.1
    gated_extension: float = 0.5
    label_step_frames: int = 5
    switch_penalty: float = 0.1
    max_pause: float = 1.5
    crosstalk: float = 0.25
    clustering: ClusteringOptions = field(default_factory=ClusteringOptions)


class BundledPipeline:
    """Diarization from the models packaged in silero-vad and resemblyzer."""

    name = "bundled"
    embedding_model = SpeakerEncoder.name

    def __init__(
        self, vad: SileroVad, encoder: SpeakerEncoder, options: BundledOptions = BundledOptions()
    ):
        self._vad = vad
        self._encoder = encoder
        self.options = options

    @classmethod
    def load(cls, device: torch.device | str | None = None) -> BundledPipeline:
        """Load both models from the installed packages (offline).

        silero-vad runs on the CPU (a recurrent model stepped every 32 ms gains
        nothing from a GPU); the speaker encoder runs on `device`, default CPU.

        Raises:
            VadError, SpeakerEncoderError: a package is missing; the message says
                what to install.
        """
        device = torch.device(device) if device is not None else torch.device("cpu")
        start = time.perf_counter()
        vad = SileroVad.load()
        encoder = SpeakerEncoder.load(device)
        logger.info("stage load: %.2f s", time.perf_counter() - start)
        return cls(vad, encoder)

    @property
    def device(self) -> torch.device:
        """Where the speaker encoder runs."""
        return self._encoder.device

    @property
    def embedding_dimension(self) -> int:
        """Length of a speaker embedding (256 for GE2E)."""
        return EMBEDDING_DIMENSION

    def __call__(
        self,
        waveform: np.ndarray,
        sample_rate: int,
        speakers: SpeakerCount = SpeakerCount(),
        progress: Progress | None = None,
        clustering_threshold: float | None = None,
    ) -> RawDiarization:
        """Diarize a mono float32 waveform held in memory.

        Args:
            waveform: (num_samples,) mono samples at `sample_rate`.
            sample_rate: must be 16000 (what both models were trained on;
                `decode_audio` resamples to it).
            speakers: known number or bounds of speakers.
            progress: called as progress(stage, fraction_done) after each stage.
            clustering_threshold: the least separation (in cosine similarity,
                0 < t < 2) for splitting a cluster in two, before the term that
                grows for small clusters (`ClusteringOptions.split_gap_floor`).
                Lower finds more speakers. None keeps the tuned 0.045. Ignored
                when `speakers.num_speakers` is set.

        Raises:
            ValueError: the sample rate is not 16 kHz.
            InputError: `clustering_threshold` is outside (0, 2).
        """
        if sample_rate != SAMPLE_RATE:
            raise ValueError(
                f"the bundled pipeline takes {SAMPLE_RATE} Hz audio, got {sample_rate} Hz; "
                "decode with diarization.audio.decode_audio, which resamples"
            )
        opts = self.options
        if clustering_threshold is not None:
            if not 0 < clustering_threshold < 2:
                raise InputError(
                    "clustering_threshold must be between 0 and 2 for the bundled pipeline "
                    f"(default {opts.clustering.split_gap_floor}), got {clustering_threshold}"
                )
            clustering = replace(opts.clustering, split_gap_floor=clustering_threshold)
            opts = replace(opts, clustering=clustering)
        duration = len(waveform) / sample_rate
        timer = _StageTimer(progress)

        samples = normalize_loudness(waveform)
        probabilities = self._vad.probabilities(samples)
        window_regions = speech_regions(probabilities, opts.window_vad, duration=duration)
        speech = speech_regions(probabilities, opts.speech_vad, duration=duration)
        speech = extend_in_gated_audio(speech, samples, opts.gated_extension)
        timer.lap("speech_activity")

        frames = mel_frames(samples)
        num_frames = len(frames)
        indices, spans = region_windows(
            window_regions, opts.cluster_window, opts.cluster_step, num_frames
        )
        # (num_windows, dimension)
        embeddings = self._encoder.embed_frames(frames, indices)
        timer.lap("embeddings")

        labels = cluster(embeddings, spans[:, 0], spans[:, 1], speakers, opts.clustering)
        timer.lap("clustering")

        turns, centroids = self._turns(frames, speech, embeddings, labels, spans, speakers, opts)
        timer.lap("turns")
        windows = WindowEmbeddings(
            starts=spans[:, 0].copy(),
            duration=opts.cluster_window,
            embeddings=embeddings[:, None, :],  # (num_windows, 1, dimension)
        )
        return RawDiarization(turns=turns, windows=windows, centroids=centroids, duration=duration)

    def _turns(self, frames, speech, embeddings, labels, spans, speakers, opts):
        """Turns and the centroid of every speaker that has one."""
        if len(labels) == 0:
            return [], {}
        # (num_speakers, dimension)
        centroids = centroids_of(embeddings, labels)
        names = [f"SPEAKER_{k:02d}" for k in range(len(centroids))]
        label_indices, label_spans = region_windows(
            speech, opts.label_window, opts.label_step, len(frames)
        )
        # (num_label_windows, num_speakers) cosine similarity to each speaker
        scores = self._encoder.embed_frames(frames, label_indices) @ centroids.T.astype(np.float32)
        per_frame = frame_scores(label_spans, scores, len(frames))
        frame_labels = label_frames(speech, per_frame, opts.label_step_frames, opts.switch_penalty)
        required, _ = count_bounds(speakers, len(labels))
        if len(np.unique(frame_labels[frame_labels >= 0])) < required:
            # (num_windows,) similarity of each clustering window to its own speaker
            fit = np.sum(normalize_rows(embeddings) * centroids[labels], axis=1)
            frame_labels = restore_speakers(frame_labels, spans, labels, fit)
        frame_labels = fill_pauses(frame_labels, to_frame(opts.max_pause))
        turns = frames_to_turns(frame_labels, names)
        turns += crosstalk_turns(frame_labels, names, to_frame(opts.crosstalk))
        turns = merge_turns(turns)
        used = {t.speaker for t in turns}
        return turns, {name: centroids[k] for k, name in enumerate(names) if name in used}


class _StageTimer:
    """One timing log line and one progress call per finished stage."""

    def __init__(self, progress: Progress | None):
        self._progress = progress
        self._mark = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        logger.info("stage %s: %.2f s", stage, now - self._mark)
        self._mark = now
        if self._progress is not None:
            self._progress(stage, 1.0)
