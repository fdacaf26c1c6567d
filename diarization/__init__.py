"""Speaker diarization: who spoke when, in the output of meronym/speaker-diarization.

Importing the package loads no model and no torch; `Diarizer.load()` does.
"""

from diarization.audio import AudioDecodeError, decode_audio
from diarization.diarizer import Diarizer
from diarization.postprocess import PostprocessOptions, postprocess
from diarization.schema import DiarizationResult, InputError, Segment, SpeakerCount
from diarization.weights import WeightsError, WeightsLayout

__all__ = [
    "AudioDecodeError",
    "DiarizationResult",
    "Diarizer",
    "InputError",
    "PostprocessOptions",
    "Segment",
    "SpeakerCount",
    "WeightsError",
    "WeightsLayout",
    "decode_audio",
    "postprocess",
]
