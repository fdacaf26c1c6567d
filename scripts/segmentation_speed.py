"""The segmentation stage at several batch sizes, side by side: time and how far the scores move.

pyannote runs the segmentation model on 32 windows at a time. Each window's scores
do not depend on the others of its batch, so the batch size is free: this runs the
pipeline's segmentation stage on the same audio at each batch size (after a warm-up,
fp32 with TF32 off, as pyannote runs it) and prints its seconds and the largest
score difference from batch size 32, and how many speaker decisions (score above
the pipeline's threshold) differ from 32's. On a GPU the pipeline copies each
batch's span of audio there and cuts its windows there (`streamed_segmentation`);
`--host-audio` adds, for each batch size, a row of pyannote's own stage, which copies
every batch of windows from the host.

    python scripts/segmentation_speed.py                   # the GPU if there is one
    python scripts/segmentation_speed.py --device cpu --minutes 2 --batch 32 128
    python scripts/segmentation_speed.py --minutes 60 --batch 256 512 --host-audio
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import machine, pick_weights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--host-audio", action="store_true")
    args = parser.parse_args()

    import torch
    from pyannote.audio.pipelines import SpeakerDiarization

    from diarization.pyannote_pipeline import load_models
    from diarization.weights import WeightsLayout

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    weights, kind = pick_weights(args.weights, Path(tempfile.mkdtemp(prefix="segmentation-")))
    print(f"machine: {machine(device.type)}; weights: {kind}; fp32; {args.minutes} min")
    pipeline = load_models(WeightsLayout(weights), device)
    inference = pipeline._segmentation
    samples = np.random.default_rng(0).normal(0, 0.1, int(args.minutes * 60 * 16000))
    file = {"waveform": torch.from_numpy(samples.astype(np.float32))[None], "sample_rate": 16000}
    threshold = pipeline.segmentation.threshold
    reference = None
    runs = [(32, "")] + [
        (size, where)
        for size in args.batch
        for where in ("", " (audio on host)")[: 2 if args.host_audio else 1]
    ]
    with torch.inference_mode():
        for size, where in runs:  # the first run of 32 is the warm-up
            inference.batch_size = size
            stage = (
                SpeakerDiarization.get_segmentations if where else type(pipeline).get_segmentations
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            scores = stage(pipeline, file).data
            seconds = time.perf_counter() - started
            if reference is None:
                reference = scores
                continue
            difference = np.abs(scores - reference).max()
            flipped = np.count_nonzero((scores > threshold) != (reference > threshold))
            print(
                f"batch {size:4d}{where}: {seconds:6.2f} s ({args.minutes * 60 / seconds:6.0f}x "
                f"real time); largest score difference from 32: {difference:.1e}; "
                f"decisions differing: {flipped} of {scores.size}"
            )


if __name__ == "__main__":
    main()
