"""Memory of the seed pipeline on long audio, stage by stage.

Builds (or takes) a long conversation, decodes it and runs this project's pyannote
pipeline in this process, printing the resident memory and the peak so far after
decoding and after each stage. Random weights in the real formats are used when
weights/ has none. `--stub-embeddings` replaces the embedding stage with random
vectors, to measure every other stage on hours of audio in minutes (the exact
embedding stage works in fixed-size batches; `benchmark.py --only single-pass`
measures a real one end to end).

    MALLOC_MMAP_THRESHOLD_=131072 python scripts/memory_profile.py --minutes 240 --stub-embeddings
    MALLOC_MMAP_THRESHOLD_=131072 python scripts/memory_profile.py --minutes 240 --oracle-activity

Run it with the allocator setting of the Cog image (cog.yaml), as above. On a GPU
(the default when there is one) it also prints the peak GPU memory allocated.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from benchmark import add_input_arguments  # noqa: E402


def report(label: str) -> None:
    import torch

    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * resource.getpagesize()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gpu = ""
    if torch.cuda.is_initialized():
        gpu = (
            f", GPU peak so far {torch.cuda.max_memory_allocated() / 2**30:5.2f} GiB allocated"
            f" ({torch.cuda.max_memory_reserved() / 2**30:.2f} reserved)"
        )
    print(
        f"{time.strftime('%H:%M:%S')} {label:28s} RSS {rss / 2**30:5.2f} GiB, "
        f"peak so far {peak / 2**30:5.2f} GiB{gpu}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=240.0)
    parser.add_argument("--audio", type=Path, help="a recording to use instead of building one")
    parser.add_argument("--stub-embeddings", action="store_true")
    parser.add_argument("--single-pass", action="store_true")
    add_input_arguments(parser)
    args = parser.parse_args()

    import torch
    from benchmark import build_conversation, pick_weights, use_oracle_segmentations

    from diarization.audio import decode_audio
    from diarization.pyannote_pipeline import PyannotePipeline, load_models
    from diarization.pyannote_stages import FastSpeakerDiarization
    from diarization.schema import SpeakerCount
    from diarization.weights import WeightsLayout

    work = Path(tempfile.mkdtemp(prefix="diarization-memory-"))
    audio = args.audio
    if audio is None:
        # built in another process, so that this one's peak is the pipeline's
        audio = work / "conversation.wav"
        builder = multiprocessing.get_context("spawn").Process(
            target=build_conversation,
            args=(args.minutes, audio),
            kwargs={"speakers": args.speakers},
        )
        builder.start()
        builder.join()
    weights, kind = pick_weights(args.weights, work)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    allocator = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "default")
    print(f"device: {device}; weights: {kind}; PYTORCH_CUDA_ALLOC_CONF: {allocator}")
    if args.stub_embeddings:

        def stub(self, file, binary_segmentations, exclude_overlap=False, hook=None):
            num_chunks, _, local_speakers = binary_segmentations.data.shape
            rng = np.random.default_rng(0)
            return rng.standard_normal((num_chunks, local_speakers, 192)).astype(np.float32)

        FastSpeakerDiarization.get_embeddings = stub
    models = load_models(WeightsLayout(weights), device, single_pass=args.single_pass)
    if args.oracle_activity:
        # on a GPU the model still runs, so that its memory counts (on a CPU it
        # would take minutes of the run for memory the profile shows without it)
        use_oracle_segmentations(models, audio, run_model=device.type == "cuda")
    pipeline = PyannotePipeline(models)
    report("models loaded")
    waveform = decode_audio(audio)
    report(f"decoded {len(waveform) / 16000 / 3600:.2f} h")

    def progress(stage: str, done: float) -> None:
        if done == 1.0:
            report(stage)

    raw = pipeline(waveform, 16000, SpeakerCount(), progress=progress)
    report("done")
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in pipeline.last_stage_seconds.items())
    print(f"stages: {stages}; {len({t.speaker for t in raw.turns})} speakers")


if __name__ == "__main__":
    main()
