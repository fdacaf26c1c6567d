"""How far TF32, bf16 and fp16 move the segmentation, the embeddings and the diarization.

Runs this project's pipeline (exact embeddings, and single-pass with
--single-pass) on one conversation built as scripts/benchmark.py builds it, once
per precision (diarization.precision), in one process on the same weights, and
compares each run with the fp32 run:

  segmentation  largest absolute difference of the speaker scores, and the share
                of (window, frame, speaker) decisions at the pipeline's threshold
                that flip;
  embeddings    cosine similarity of every (window, speaker) embedding to fp32
                (mean, 5th percentile, min), and pairs embedded by one run only;
  diarization   DER against the fp32 run, and whether segments and labels are identical;
  time          wall seconds of the whole pipeline (after one warm-up run).

    python scripts/precision.py --minutes 3                  # on the GPU, if any
    python scripts/precision.py --minutes 3 --oracle-activity --single-pass

Precision modes only change anything on a GPU; on a CPU every run is fp32.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import (  # noqa: E402
    PRECISIONS,
    add_input_arguments,
    build_conversation,
    cosine_summary,
    der,
    machine,
    pick_weights,
    use_oracle_segmentations,
)


def run(pipeline, waveform: np.ndarray) -> dict:
    """One diarization: its segmentation scores, window embeddings, turns and seconds."""
    import torch

    captured = {}

    def hook(step, artifact, file=None, total=None, completed=None):
        if step in ("segmentation", "embeddings") and total is None:
            captured[step] = artifact

    file = {"waveform": torch.from_numpy(waveform)[None], "sample_rate": 16000, "uri": "x"}
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    with torch.inference_mode():
        annotation = pipeline(file, hook=hook)
    seconds = time.perf_counter() - started
    turns = [(s.start, s.end, label) for s, _, label in annotation.itertracks(yield_label=True)]
    return {
        "scores": np.asarray(captured["segmentation"].data, dtype=np.float32),
        "embeddings": np.asarray(captured["embeddings"], dtype=np.float32),
        "turns": turns,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    add_input_arguments(parser)
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=PRECISIONS)
    parser.add_argument("--single-pass", action="store_true", help="also the single-pass stage")
    args = parser.parse_args()
    # pyannote.metrics warns that the scored extent is the union of both annotations
    warnings.filterwarnings("ignore", message="'uem' was approximated")

    import torch

    from diarization.audio import decode_audio
    from diarization.pyannote_pipeline import HYPERPARAMETERS, load_models
    from diarization.weights import WeightsLayout

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    work = Path(tempfile.mkdtemp(prefix="diarization-precision-"))
    weights, kind = pick_weights(args.weights, work)
    print(f"machine: {machine(device.type)}")
    print(f"device: {device}; weights: {kind}; {args.minutes:g} min of audio", flush=True)
    audio = build_conversation(args.minutes, work / "conversation.wav", speakers=args.speakers)
    waveform = decode_audio(audio)
    threshold = HYPERPARAMETERS["segmentation"]["threshold"]
    variants = ["exact"] + (["single-pass"] if args.single_pass else [])
    for variant in variants:
        pipeline = load_models(WeightsLayout(weights), device, single_pass=variant != "exact")
        run(pipeline, waveform[: 60 * 16000])  # warm-up: CUDA context, kernels
        if args.oracle_activity:
            use_oracle_segmentations(pipeline, audio)
            print("segmentation: the conversation's known turns (oracle)")
        results = {}
        for precision in ["fp32"] + [p for p in args.precision if p != "fp32"]:
            pipeline.precision = precision
            results[precision] = run(pipeline, waveform)
        reference = results["fp32"]
        print(f"\n{variant} embeddings: fp32 run {reference['seconds']:.2f} s")
        for precision, r in results.items():
            if precision == "fp32":
                continue
            flips = np.mean((r["scores"] > threshold) != (reference["scores"] > threshold))
            difference = np.nanmax(np.abs(r["scores"] - reference["scores"]))
            identical = r["turns"] == reference["turns"]
            print(
                f"  {precision}: {r['seconds']:.2f} s "
                f"({reference['seconds'] / r['seconds']:.2f}x fp32)\n"
                f"    segmentation: max |score difference| {difference:.2e}, "
                f"decisions flipped {100 * flips:.3f} %\n"
                f"    embeddings: {cosine_summary(reference['embeddings'], r['embeddings'])}\n"
                f"    diarization: DER against fp32 "
                f"{100 * der(reference['turns'], r['turns']):.2f} %, "
                f"identical segments and labels: {'yes' if identical else 'no'}",
                flush=True,
            )


if __name__ == "__main__":
    main()
