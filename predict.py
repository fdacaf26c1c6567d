"""Cog adapter: Cog types in, `diarization` calls, Cog types out. Nothing else lives here."""

import logging
import os
import tempfile

from cog import BasePredictor, Input, Path

from diarization import Diarizer, PostprocessOptions, SpeakerCount
from diarization.audio import require_upload
from diarization.diarizer import PIPELINE_CHOICES
from diarization.formats import OUTPUT_FORMATS, write_output
from diarization.schema import MAX_SPEAKERS_LIMIT

SPEAKERS = {"default": None, "ge": 1, "le": MAX_SPEAKERS_LIMIT}


class Predictor(BasePredictor):
    def setup(self) -> None:
        """Load the models once, from local files only (never from the network)."""
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        self.diarizer = Diarizer.load(
            pipeline=os.environ.get("DIARIZATION_PIPELINE", "auto"),
            # approximate, faster embeddings: a deployment's choice, off unless set to 1
            single_pass_embeddings=os.environ.get("DIARIZATION_SINGLE_PASS_EMBEDDINGS") == "1",
            # auto / fp32 / tf32 / bf16 / fp16 on a GPU (diarization.precision); unset: auto
            precision=os.environ.get("DIARIZATION_PRECISION") or None,
        )
        self.output_dir = Path(tempfile.mkdtemp(prefix="diarization-"))

    def predict(
        self,
        audio: Path = Input(description="Audio or video file (wav, mp3, m4a, flac, ogg, mp4, ...)"),
        num_speakers: int | None = Input(**SPEAKERS, description="Exact number of speakers"),
        min_speakers: int | None = Input(**SPEAKERS, description="At least this many speakers"),
        max_speakers: int | None = Input(**SPEAKERS, description="At most this many speakers"),
        clustering_threshold: float | None = Input(
            default=None,
            ge=0.0,
            le=2.0,
            description="Clustering distance threshold; lower finds more speakers. "
            "Default: the pipeline's tuned value (pyannote 0.7154)",
        ),
        min_segment_duration: float = Input(
            default=1.0, ge=0.0, le=60.0, description="Drop segments shorter than this (s); 0: off"
        ),
        min_speaker_share: float = Input(
            default=0.01,
            ge=0.0,
            le=0.5,
            description="Drop speakers with at most this share of the speech; 0: off",
        ),
        max_merge_gap: float = Input(
            default=2.0,
            ge=0.0,
            le=60.0,
            description="Join a speaker's segments across gaps shorter than this (s); 0: off",
        ),
        pipeline: str = Input(
            default="auto",
            choices=list(PIPELINE_CHOICES),
            description="auto: pyannote when its weights are installed, else bundled",
        ),
        known_speakers: Path | None = Input(
            default=None,
            description="Known speakers to recognise: JSON {name: embedding} from this model's "
            "output, or a zip with one recording per speaker named after them (Alice.wav)",
        ),
        identification_threshold: float | None = Input(
            default=None,
            ge=-1.0,
            le=1.0,
            description="Least cosine similarity to take a known speaker's name "
            "(default: per pipeline, see README)",
        ),
        output_format: str = Input(
            default="json",
            choices=list(OUTPUT_FORMATS),
            description="json: output.json; rttm; timeline: a PNG; zip: all three",
        ),
    ) -> Path:
        """Diarize `audio`; returns output.json (or the format asked for)."""
        uploads = tempfile.gettempdir()  # where Cog writes uploads and downloads
        known = None
        if known_speakers is not None:
            known = self.diarizer.known_speakers(require_upload(known_speakers, uploads), pipeline)
        result = self.diarizer.diarize(
            require_upload(audio, uploads),
            SpeakerCount(num_speakers, min_speakers, max_speakers),
            pipeline=pipeline,
            clustering_threshold=clustering_threshold,
            options=PostprocessOptions(min_segment_duration, min_speaker_share, max_merge_gap),
            known_speakers=known,
            identification_threshold=identification_threshold,
        )
        return Path(write_output(result, output_format, self.output_dir))
