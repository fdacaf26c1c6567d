"""torchaudio >= 2.9 compatibility, for running the benchmarks on a GPU image.

The project pins torch/torchaudio 2.8 (requirements.txt). A lent GPU machine has
its own newer torch and torchaudio (2.11 when this was written), which removed
`torchaudio.info`, `AudioMetaData` and `list_audio_backends` and moved `load` to
torchcodec. pyannote.audio 3.4 and speechbrain 1.0.3 use them at import and when
stock pyannote reads a file by path. This module, put on PYTHONPATH by
scripts/gpu/run.sh, gives them back for 16-bit PCM WAV files (all the benchmarks
write) with the standard library's `wave`; Python imports it at start-up in every
process, benchmark children included. Nothing in the service imports it.
"""

import dataclasses
import wave

import numpy as np
import torch
import torchaudio

if not hasattr(torchaudio, "AudioMetaData"):

    @dataclasses.dataclass
    class AudioMetaData:
        sample_rate: int
        num_frames: int
        num_channels: int
        bits_per_sample: int = 16
        encoding: str = "PCM_S"

    def info(path, format=None, backend=None):
        with wave.open(str(path)) as w:
            return AudioMetaData(w.getframerate(), w.getnframes(), w.getnchannels())

    def load(path, frame_offset=0, num_frames=-1, normalize=True, channels_first=True, **kwargs):
        with wave.open(str(path)) as w:
            if w.getsampwidth() != 2:
                raise RuntimeError(f"{path}: only 16-bit PCM WAV is supported here")
            channels, rate = w.getnchannels(), w.getframerate()
            w.setpos(frame_offset)
            count = w.getnframes() - frame_offset if num_frames < 0 else num_frames
            data = np.frombuffer(w.readframes(count), dtype="<i2").reshape(-1, channels)
        samples = torch.from_numpy(data.astype(np.float32) / 32768.0)
        return (samples.T.contiguous() if channels_first else samples), rate

    torchaudio.AudioMetaData = AudioMetaData
    torchaudio.info = info
    torchaudio.load = load
    torchaudio.list_audio_backends = lambda: ["soundfile"]
