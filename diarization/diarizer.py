"""The library entry point: decode, diarize, post-process, with one log line per stage.

`Diarizer` ties the stages together for the CLI, the Cog predictor and library users:

    >>> diarizer = Diarizer.load()                       # doctest: +SKIP
    >>> result = diarizer.diarize("meeting.m4a")         # doctest: +SKIP
    >>> result.to_dict()["speakers"]["count"]            # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from diarization.audio import SAMPLE_RATE, DecodingAudio, open_audio
from diarization.cpu_threads import fit_threads_to_cpus
from diarization.identify import DEFAULT_THRESHOLDS, apply_names, match_speakers
from diarization.limits import ENV_PREDICTION_TIMEOUT_S, prediction_timeout_s
from diarization.postprocess import PostprocessOptions, postprocess
from diarization.precision import check_precision
from diarization.references import read_known_speakers
from diarization.schema import DiarizationResult, InputError, PipelineInfo, SpeakerCount
from diarization.weights import FETCH_COMMAND, WeightsLayout, default_layout

logger = logging.getLogger(__name__)

#: Accepted pipeline names; "auto" is the seed pipeline when its weights are present,
#: the bundled one otherwise.
PIPELINE_CHOICES = ("auto", "pyannote", "bundled")


def choose_pipeline(name: str, layout: WeightsLayout) -> tuple[str, str]:
    """(pipeline to run, why) for a requested name.

    Raises:
        InputError: unknown name.
        WeightsError: "pyannote" asked for explicitly and its weights are incomplete
            (never a quiet fallback).
    """
    if name not in PIPELINE_CHOICES:
        raise InputError(f"pipeline must be one of {', '.join(PIPELINE_CHOICES)}, got {name!r}")
    if name == "bundled":
        return "bundled", "asked for"
    if name == "pyannote":
        layout.check()
        return "pyannote", "asked for"
    missing = layout.missing_files()
    if not missing:
        return "pyannote", f"auto: its weights are in {layout.root}"
    return "bundled", (
        f"auto: {missing[0]} is missing, so the pyannote pipeline cannot run "
        f"(fetch its weights with `{FETCH_COMMAND}`)"
    )


class Diarizer:
    """Loaded pipelines plus the post-processor: call `diarize` once per recording.

    The pipeline chosen at load time is the default; another one asked for in a call
    is loaded then and kept.
    """

    def __init__(
        self,
        pipeline,
        options: PostprocessOptions = PostprocessOptions(),
        layout: WeightsLayout | None = None,
        device: str | None = None,
        single_pass_embeddings: bool = False,
        precision: str | None = None,
    ):
        self._pipelines = {pipeline.name: pipeline}
        self.pipeline = pipeline
        self.options = options
        self._layout = layout or default_layout()
        self._device = device
        self._single_pass = single_pass_embeddings
        self._precision = precision

    @classmethod
    def load(
        cls,
        weights: WeightsLayout | str | os.PathLike | None = None,
        device: str | None = None,
        pipeline: str = "auto",
        single_pass_embeddings: bool = False,
        precision: str | None = None,
    ) -> Diarizer:
        """Load a pipeline: the seed pipeline from a weights folder, or the bundled one.

        Args:
            weights: the seed pipeline's weights folder (or layout); defaults to
                `default_layout()`.
            device: torch device name ("cpu", "cuda", "cuda:1"); None picks a GPU if any.
            pipeline: "auto", "pyannote" or "bundled" (see `choose_pipeline`).
            single_pass_embeddings: the pyannote pipeline computes approximate
                embeddings in one pass over the audio (`diarization.ecapa_single_pass`;
                faster, not the same answer as stock pyannote). Off by default; the
                bundled pipeline ignores it.
            precision: how the pyannote pipeline's networks compute on a GPU: "auto",
                "fp32", "tf32", "bf16" or "fp16" (`diarization.precision`); None takes
                the default, "auto" (strict fp32, the embeddings in TF32 where a check
                at load finds them within tolerance). CPUs always compute fp32; the
                bundled pipeline ignores it.

        Raises:
            WeightsError: "pyannote" asked for and a weight file is missing or unreadable.
        """
        if weights is None:
            layout = default_layout()
        elif isinstance(weights, WeightsLayout):
            layout = weights
        else:
            layout = WeightsLayout(Path(weights))
        name, why = choose_pipeline(pipeline, layout)
        logger.info("pipeline %s (%s)", name, why)
        if precision is not None:
            check_precision(precision)
        return cls(
            _load(name, layout, device, single_pass_embeddings, precision),
            layout=layout,
            device=device,
            single_pass_embeddings=single_pass_embeddings,
            precision=precision,
        )

    def pipeline_for(self, name: str | None):
        """The loaded pipeline for a requested name (None or "auto": the default)."""
        if name in (None, "auto"):
            return self.pipeline
        name, _ = choose_pipeline(name, self._layout)
        if name not in self._pipelines:
            self._pipelines[name] = _load(
                name, self._layout, self._device, self._single_pass, self._precision
            )
        return self._pipelines[name]

    def diarize(
        self,
        audio: str | os.PathLike,
        speakers: SpeakerCount = SpeakerCount(),
        *,
        pipeline: str | None = None,
        clustering_threshold: float | None = None,
        options: PostprocessOptions | None = None,
        known_speakers: dict[str, np.ndarray] | None = None,
        identification_threshold: float | None = None,
    ) -> DiarizationResult:
        """Diarize an audio or video file in any format ffmpeg reads.

        Args:
            audio: the file.
            speakers: known number or bounds of speakers.
            pipeline: "pyannote" or "bundled" for this call; None for the default.
            clustering_threshold: the pipeline's clustering threshold for this call.
            options: post-processing thresholds for this call.
            known_speakers: name -> embedding (see `known_speakers`); detected speakers
                that match one take its name.
            identification_threshold: least cosine similarity for a match; None takes
                the pipeline's default (`identify.DEFAULT_THRESHOLDS`).

        Raises:
            AudioDecodeError: the file could not be decoded or holds no audio.
            InputError: an option is out of range.
        """
        with open_audio(audio, SAMPLE_RATE) as decoding:
            return self.diarize_waveform(
                decoding,
                SAMPLE_RATE,
                speakers,
                pipeline=pipeline,
                clustering_threshold=clustering_threshold,
                options=options,
                known_speakers=known_speakers,
                identification_threshold=identification_threshold,
            )

    def diarize_waveform(
        self,
        waveform: np.ndarray | DecodingAudio,
        sample_rate: int = SAMPLE_RATE,
        speakers: SpeakerCount = SpeakerCount(),
        *,
        pipeline: str | None = None,
        clustering_threshold: float | None = None,
        options: PostprocessOptions | None = None,
        known_speakers: dict[str, np.ndarray] | None = None,
        identification_threshold: float | None = None,
    ) -> DiarizationResult:
        """Diarize a mono float32 waveform already in memory, or audio being decoded
        (`audio.open_audio`; see `diarize`): a pipeline that reads it while it decodes
        (``reads_while_decoding``) is given it, the others its waveform once decoded."""
        if identification_threshold is not None and not -1 <= identification_threshold <= 1:
            raise InputError(
                f"identification_threshold is a cosine similarity between -1 and 1, "
                f"got {identification_threshold}"
            )
        runner = self.pipeline_for(pipeline)
        decoding = waveform if isinstance(waveform, DecodingAudio) else None
        if decoding is not None and not getattr(runner, "reads_while_decoding", False):
            waveform = decoding.waveform()
            _log_decoded(decoding, "")
        raw = runner(
            waveform,
            sample_rate,
            speakers,
            progress=_log_progress(time.monotonic() + prediction_timeout_s()),
            clustering_threshold=clustering_threshold,
        )
        if decoding is not None and waveform is decoding:
            _log_decoded(decoding, " while the pipeline segmented it")
        started = time.perf_counter()
        info = PipelineInfo(runner.name, runner.embedding_model, runner.embedding_dimension)
        result = replace(postprocess(raw, options or self.options), pipeline=info)
        if known_speakers:
            threshold = identification_threshold
            if threshold is None:
                threshold = DEFAULT_THRESHOLDS[runner.name]
            matches = match_speakers(result.embeddings, known_speakers, threshold)
            result = apply_names(result, matches, threshold)
        logger.info("stage postprocess: %.3f s", time.perf_counter() - started)
        logger.info(
            "%s pipeline: %d speakers, %d segments in %.1f s of audio",
            runner.name,
            len(result.labels),
            len(result.segments),
            raw.duration,
        )
        return result

    def known_speakers(self, path: str | os.PathLike, pipeline: str | None = None):
        """Name -> embedding from a JSON file of embeddings or a zip of recordings
        (each embedded with `embed_recording`).

        Raises:
            InputError: the file is invalid, or a recording holds no speech.
        """
        return read_known_speakers(path, lambda file: self.embed_recording(file, pipeline))

    def embed_recording(self, path: str | os.PathLike, pipeline: str | None = None) -> np.ndarray:
        """A known speaker's embedding from a recording of them alone: the recording
        diarized as one speaker with the clean-up rules off, which is the same
        computation as an output speaker embedding.

        Raises:
            InputError: the recording holds no speech.
        """
        result = self.diarize(
            path, SpeakerCount(num_speakers=1), pipeline=pipeline, options=PostprocessOptions.off()
        )
        if not result.labels:
            raise InputError("no speech found in it")
        return np.asarray(result.embeddings[result.labels[0]])


def _load(
    name: str,
    layout: WeightsLayout,
    device: str | None,
    single_pass: bool = False,
    precision: str | None = None,
):
    """Load pipeline `name`; the pyannote-only options are dropped for the bundled one."""
    # The service reads local files only; make any stray hub lookup fail fast
    # instead of hanging. huggingface_hub reads this when first imported, below.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Imported here so that `import diarization` stays free of torch.
    from diarization.pipelines import load_pipeline

    fit_threads_to_cpus()  # no more threads than a container's CPU quota allows

    started = time.perf_counter()
    weights = layout.root if name == "pyannote" else None
    if name == "pyannote":
        pipeline = load_pipeline(name, weights, device, single_pass, precision)
    else:
        pipeline = load_pipeline(name, weights, device)
    logger.info(
        "loaded %s pipeline on %s in %.2f s", name, pipeline.device, time.perf_counter() - started
    )
    return pipeline


class PredictionTimeoutError(RuntimeError):
    """A diarization ran past its time limit and was stopped."""


def _log_decoded(decoding: DecodingAudio, overlap: str) -> None:
    logger.info(
        "stage decode: %.2f s (%.1f s of audio)%s",
        decoding.seconds,
        len(decoding.waveform()) / decoding.sample_rate,
        overlap,
    )


def _log_progress(deadline: float):
    """A progress callback that logs each stage at most every 10 percent, and stops
    the run (raising `PredictionTimeoutError`) once `deadline` (time.monotonic) passes."""
    last: dict[str, int] = {}
    started = time.monotonic()

    def progress(stage: str, fraction: float) -> None:
        if time.monotonic() > deadline:
            raise PredictionTimeoutError(
                f"the diarization took longer than its limit of {deadline - started:.0f} s and "
                f"was stopped during {stage} ({fraction:.0%} done); set "
                f"{ENV_PREDICTION_TIMEOUT_S} to raise the limit, or send shorter audio"
            )
        step = int(fraction * 10)
        if last.get(stage) != step:
            last[stage] = step
            logger.info("%s: %d%%", stage, round(fraction * 100))

    return progress
