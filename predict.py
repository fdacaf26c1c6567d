"""Cog adapter: Cog types in, `diarization` calls, Cog types out. Nothing else lives here."""

import tempfile

from cog import BasePredictor, Input, Path

from diarization import Diarizer, SpeakerCount
from diarization.schema import MAX_SPEAKERS_LIMIT


class Predictor(BasePredictor):
    def setup(self) -> None:
        """Load both models once, from weights/ (never from the network)."""
        self.diarizer = Diarizer.load()
        self.output_dir = Path(tempfile.mkdtemp(prefix="diarization-"))

    def predict(
        self,
        audio: Path = Input(description="Audio or video file (wav, mp3, m4a, flac, ogg, mp4, ...)"),
        num_speakers: int | None = Input(
            default=None,
            ge=1,
            le=MAX_SPEAKERS_LIMIT,
            description="Exact number of speakers, if known",
        ),
        min_speakers: int | None = Input(
            default=None,
            ge=1,
            le=MAX_SPEAKERS_LIMIT,
            description="Lower bound on the number of speakers",
        ),
        max_speakers: int | None = Input(
            default=None,
            ge=1,
            le=MAX_SPEAKERS_LIMIT,
            description="Upper bound on the number of speakers",
        ),
    ) -> Path:
        """Diarize `audio` and return output.json (segments, speaker labels, embeddings)."""
        speakers = SpeakerCount(num_speakers, min_speakers, max_speakers)
        result = self.diarizer.diarize(audio, speakers)
        output = self.output_dir / "output.json"
        output.write_text(result.to_json())
        return output
