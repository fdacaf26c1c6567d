"""ECAPA's forward pass: SpeechBrain's module against diarization.ecapa_forward, side by side.

Both run on the same batches of random features in one process, in fp32 (TF32 off,
as pyannote runs it), after a warm-up; each case prints their milliseconds per
batch, the ratio, and how far the embeddings differ (largest 1 - cosine).

    python scripts/ecapa_speed.py                          # the GPU if there is one
    python scripts/ecapa_speed.py --device cpu --batch 4 32

A case is a batch of rows of --frames frames (501: five seconds), each row counting
all its frames, or (the second case of each size) rows whose counted frames spread
over the last 70 frames, as the exact stage's batches of pairs do.

--tf32 runs both with TF32 on (precision "auto"'s embedding stage). On a GPU, ours
also runs replayed from a CUDA graph captured once per case (an experiment: the
exact stage does not do this): what launching its kernels from Python costs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import machine, pick_weights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--batch", type=int, nargs="+", default=[4, 32])
    parser.add_argument("--frames", type=int, default=501)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tf32", action="store_true", help="TF32 on for both (GPU)")
    args = parser.parse_args()

    import torch

    from diarization.ecapa_forward import EcapaForward
    from diarization.host_memory import freed_memory_reused
    from diarization.pyannote_pipeline import LocalSpeechBrainEmbedding
    from diarization.weights import WeightsLayout

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # TF32 off for both, as pyannote runs them (importing SpeechBrain switched it on),
    # unless asked for
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    weights, kind = pick_weights(args.weights, Path(tempfile.mkdtemp(prefix="ecapa-speed-")))
    precision = "tf32" if args.tf32 else "fp32"
    print(f"machine: {machine(device.type)}; weights: {kind}; {precision}")
    embedding = LocalSpeechBrainEmbedding(WeightsLayout(weights).embedding, device)
    module = embedding.classifier_.mods.embedding_model
    ours = EcapaForward(module)
    generator = torch.Generator().manual_seed(0)

    def timed(run, *inputs) -> tuple[float, torch.Tensor]:
        run(*inputs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(args.repeats):
            out = run(*inputs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / args.repeats * 1000, out

    host = freed_memory_reused() if device.type == "cpu" else torch.no_grad()
    with torch.inference_mode(), host:
        for batch in args.batch:
            for spread in (0, 70):
                feats = torch.randn(batch, args.frames, 80, generator=generator).to(device)
                counts = args.frames - torch.randint(0, spread + 1, (batch,), generator=generator)
                lengths = ((counts - 0.5) / args.frames).to(device)
                stock_ms, expected = timed(module, feats, lengths)
                ours_ms, got = timed(ours, feats, counts)
                expected = expected[:, 0]
                cosine = torch.nn.functional.cosine_similarity(got, expected)
                print(
                    f"batch {batch:3d} x {args.frames} frames, counted {int(counts.min())}-"
                    f"{int(counts.max())}: SpeechBrain {stock_ms:8.1f} ms, ours {ours_ms:8.1f} ms"
                    f" ({stock_ms / ours_ms:.2f}x); 1 - cosine at most "
                    f"{float((1 - cosine).max()):.1e}"
                )
                if device.type == "cuda":
                    print(f"    {graph_figures(ours, feats, counts, got, timed)}", flush=True)


def graph_figures(ours, feats, counts, eager, timed) -> str:
    """Ours replayed from a CUDA graph, captured once: its milliseconds per batch and
    whether it gives the eager pass's embeddings, or why the capture failed."""
    import torch

    static = feats.clone()
    pinned = counts.pin_memory()  # copied to the GPU inside the graph, without pinning
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # allocations and cached index tensors before the capture
                ours(static, pinned)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = ours(static, pinned)
    except Exception as e:  # an experiment: say why, go on with the next case
        return f"CUDA graph: capture failed ({type(e).__name__}: {str(e)[:200]})"
    graph_ms, _ = timed(graph.replay)
    same = "the same" if torch.equal(out, eager) else "DIFFERENT"
    return f"ours from a CUDA graph {graph_ms:8.1f} ms; embeddings {same}"


if __name__ == "__main__":
    main()
