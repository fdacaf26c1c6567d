"""Where the exact embedding stage spends its time: torch.profiler's busiest operations.

Builds a conversation as scripts/benchmark.py does, runs this project's pipeline
once to warm up, then once under torch.profiler, and prints the stage times and
the operations that took the most CPU time and the most device time.

    python scripts/profile_embeddings.py --minutes 3 --oracle-activity
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import (  # noqa: E402
    PRECISIONS,
    add_input_arguments,
    build_conversation,
    machine,
    pick_weights,
    use_oracle_segmentations,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    add_input_arguments(parser)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from diarization.audio import decode_audio
    from diarization.pyannote_pipeline import PyannotePipeline, load_models, settle_precision
    from diarization.weights import WeightsLayout

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    work = Path(tempfile.mkdtemp(prefix="diarization-profile-"))
    weights, kind = pick_weights(args.weights, work)
    print(f"machine: {machine(device.type)}; precision {args.precision}; weights: {kind}")
    audio = build_conversation(args.minutes, work / "conversation.wav", speakers=args.speakers)
    pipeline = load_models(WeightsLayout(weights), device, precision=args.precision)
    if args.precision == "auto" and device.type == "cuda":
        settle_precision(pipeline)  # as the service loads: TF32 embeddings once checked
    runner = PyannotePipeline(pipeline)
    waveform = decode_audio(audio)
    runner(waveform[: 60 * 16000], 16000)  # warm-up
    if args.oracle_activity:
        use_oracle_segmentations(pipeline, audio)
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    started = time.perf_counter()
    with profile(activities=activities) as prof:
        runner(waveform, 16000)
    print(f"profiled run: {time.perf_counter() - started:.2f} s; stages (s): ", end="")
    print(", ".join(f"{k} {v:.2f}" for k, v in runner.last_stage_seconds.items()))
    averages = prof.key_averages()
    table = {"row_limit": args.rows, "max_name_column_width": 40}
    print(averages.table(sort_by="self_cpu_time_total", **table))
    if device.type == "cuda":
        print(averages.table(sort_by="self_device_time_total", **table))


if __name__ == "__main__":
    main()
