"""ffmpeg's decoding overlapped with the segmentation, side by side with one after the other.

The pyannote pipeline segments a compressed upload while ffmpeg decodes it
(`diarization.streamed_segmentation`). This builds a conversation of real speech
(`benchmark.build_conversation`), encodes it as uploads usually come (44.1 kHz stereo;
MP3 and AAC at 128 kb/s), and runs, alternately in one process and on the same model:

- sequential: `decode_audio`, then the pipeline's segmentation stage on the waveform;
- overlapped: `open_audio`, then the same stage reading the audio as it decodes;

and prints each run's seconds, the median of each and their ratio, and whether the two
segmentations are the same to the bit.

    python scripts/decode_overlap.py                      # the GPU if there is one; 60 min MP3
    python scripts/decode_overlap.py --device cpu --minutes 10 --format mp3 aac
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import SPEAKERS, build_conversation, machine, pick_weights  # noqa: E402

ENCODINGS = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "aac": ["-c:a", "aac", "-b:a", "128k"],
    "flac": ["-c:a", "flac"],
}
SUFFIXES = {"mp3": ".mp3", "aac": ".m4a", "flac": ".flac"}


def encode(wav: Path, fmt: str) -> Path:
    path = wav.with_suffix(SUFFIXES[fmt])
    command = ["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-ar", "44100", "-ac", "2"]
    subprocess.run(command + ENCODINGS[fmt] + [str(path)], check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--speakers", type=Path, default=SPEAKERS)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--format", nargs="+", choices=sorted(ENCODINGS), default=["mp3"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from diarization.audio import decode_audio, open_audio
    from diarization.pyannote_pipeline import load_models
    from diarization.weights import WeightsLayout

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    work = Path(tempfile.mkdtemp(prefix="decode-overlap-"))
    weights, kind = pick_weights(args.weights, work)
    pipeline = load_models(WeightsLayout(weights), device)
    batch = pipeline._segmentation.batch_size
    print(
        f"machine: {machine(device.type)}; weights: {kind}; {args.minutes} min; "
        f"segmentation batch {batch}; torch threads {torch.get_num_threads()}"
    )
    wav = build_conversation(args.minutes, work / "conversation.wav", speakers=args.speakers)

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def sequential(path):
        synchronize()
        started = time.perf_counter()
        waveform = decode_audio(path)
        decoded = time.perf_counter() - started
        file = {"waveform": torch.from_numpy(waveform)[None], "sample_rate": 16000}
        scores = pipeline.get_segmentations(file).data
        synchronize()
        return time.perf_counter() - started, decoded, scores

    def overlapped(path):
        synchronize()
        started = time.perf_counter()
        with open_audio(path) as decoding:
            file = {"decoding": decoding, "sample_rate": 16000}
            scores = pipeline.get_segmentations(file).data
        synchronize()
        return time.perf_counter() - started, decoding.seconds, scores

    with torch.inference_mode():
        pipeline.get_segmentations(  # warm-up
            {"waveform": torch.zeros(1, 60 * 16000), "sample_rate": 16000}
        )
        for fmt in args.format:
            path = encode(wav, fmt)
            times = {"sequential": [], "overlapped": []}
            same = True
            reference = None
            for repeat in range(args.repeats):
                for name, run in (("sequential", sequential), ("overlapped", overlapped)):
                    total, decoded, scores = run(path)
                    times[name].append(total)
                    if reference is None:
                        reference = scores
                    same = same and np.array_equal(scores, reference)
                    how = "then segmenting" if name == "sequential" else "alongside"
                    print(
                        f"{fmt} run {repeat + 1} {name:10s}: {total:6.2f} s "
                        f"(decoding {decoded:5.2f} s, {how})"
                    )
            medians = {name: statistics.median(t) for name, t in times.items()}
            print(
                f"{fmt}: sequential {medians['sequential']:.2f} s, overlapped "
                f"{medians['overlapped']:.2f} s (median of {args.repeats}): "
                f"{medians['sequential'] / medians['overlapped']:.2f}x; "
                f"segmentations {'the same to the bit' if same else 'DIFFERENT'}"
            )


if __name__ == "__main__":
    main()
