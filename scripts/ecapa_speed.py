"""ECAPA's forward pass: SpeechBrain's module against diarization.ecapa_forward, side by side.

Both run on the same batches of random features in one process, in fp32 (TF32 off,
as pyannote runs it), after a warm-up; each case prints their milliseconds per
batch, the ratio, and how far the embeddings differ (largest 1 - cosine).

    python scripts/ecapa_speed.py                          # the GPU if there is one
    python scripts/ecapa_speed.py --device cpu --batch 4 32

A case is a batch of rows of --frames frames (501: five seconds), each row counting
all its frames, or (the second case of each size) rows whose counted frames spread
over the last 70 frames, as the exact stage's batches of pairs do.
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
    args = parser.parse_args()

    import torch

    from diarization.ecapa_forward import EcapaForward
    from diarization.host_memory import freed_memory_reused
    from diarization.pyannote_pipeline import LocalSpeechBrainEmbedding
    from diarization.weights import WeightsLayout

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # TF32 off for both, as pyannote runs them (importing SpeechBrain switched it on)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    weights, kind = pick_weights(args.weights, Path(tempfile.mkdtemp(prefix="ecapa-speed-")))
    print(f"machine: {machine(device.type)}; weights: {kind}; fp32")
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


if __name__ == "__main__":
    main()
