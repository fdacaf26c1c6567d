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

from diarization.audio import SAMPLE_RATE, decode_audio
from diarization.postprocess import PostprocessOptions, postprocess
from diarization.schema import DiarizationResult, PipelineInfo, SpeakerCount
from diarization.weights import WeightsLayout, default_layout

logger = logging.getLogger(__name__)


class Diarizer:
    """A loaded pipeline plus the post-processor: call `diarize` once per recording."""

    def __init__(self, pipeline, options: PostprocessOptions = PostprocessOptions()):
        self.pipeline = pipeline
        self.options = options

    @classmethod
    def load(
        cls, weights: WeightsLayout | str | os.PathLike | None = None, device: str | None = None
    ) -> Diarizer:
        """Load the seed pipeline from a weights folder.

        Args:
            weights: weights folder (or layout); defaults to `default_layout()`.
            device: torch device name ("cpu", "cuda", "cuda:1"); None picks a GPU if any.

        Raises:
            WeightsError: a weight file is missing or unreadable.
        """
        # The service reads local files only; make any stray hub lookup fail fast
        # instead of hanging. huggingface_hub reads this when first imported, below.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # Imported here so that `import diarization` stays free of torch.
        from diarization.pyannote_pipeline import PyannotePipeline, pick_device

        if weights is None:
            layout = default_layout()
        elif isinstance(weights, WeightsLayout):
            layout = weights
        else:
            layout = WeightsLayout(Path(weights))
        started = time.perf_counter()
        pipeline = PyannotePipeline.load(layout, pick_device(device))
        logger.info(
            "loaded %s pipeline from %s on %s in %.2f s",
            pipeline.name,
            layout.root,
            pipeline.device,
            time.perf_counter() - started,
        )
        return cls(pipeline)

    def diarize(
        self, audio: str | os.PathLike, speakers: SpeakerCount = SpeakerCount()
    ) -> DiarizationResult:
        """Diarize an audio or video file in any format ffmpeg reads.

        Raises:
            AudioDecodeError: the file could not be decoded or holds no audio.
        """
        started = time.perf_counter()
        waveform = decode_audio(audio, SAMPLE_RATE)
        logger.info(
            "stage decode: %.2f s (%.1f s of audio)",
            time.perf_counter() - started,
            len(waveform) / SAMPLE_RATE,
        )
        return self.diarize_waveform(waveform, SAMPLE_RATE, speakers)

    def diarize_waveform(
        self,
        waveform: np.ndarray,
        sample_rate: int = SAMPLE_RATE,
        speakers: SpeakerCount = SpeakerCount(),
    ) -> DiarizationResult:
        """Diarize a mono float32 waveform already in memory."""
        raw = self.pipeline(waveform, sample_rate, speakers, progress=_log_progress())
        started = time.perf_counter()
        result = replace(
            postprocess(raw, self.options),
            pipeline=PipelineInfo(
                self.pipeline.name,
                self.pipeline.embedding_model,
                self.pipeline.embedding_dimension,
            ),
        )
        logger.info("stage postprocess: %.3f s", time.perf_counter() - started)
        logger.info(
            "%d speakers, %d segments in %.1f s of audio",
            len(result.labels),
            len(result.segments),
            raw.duration,
        )
        return result


def _log_progress():
    """A progress callback that logs each stage at most every 10 percent."""
    last: dict[str, int] = {}

    def progress(stage: str, fraction: float) -> None:
        step = int(fraction * 10)
        if last.get(stage) != step:
            last[stage] = step
            logger.info("%s: %d%%", stage, round(fraction * 100))

    return progress
