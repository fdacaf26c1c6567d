"""Speaker-embedding check: same-speaker vs different-speaker cosine similarity, and EER.

    python scripts/speaker_eer.py [/work/shared/data/speakers]

Each sub-folder of the given folder is one speaker; each audio file in it one
utterance. Every utterance is embedded as the bundled pipeline's encoder sees
audio (loudness-normalised, resemblyzer GE2E on 1.6 s partials averaged), then all
pairs are scored by cosine similarity and the equal error rate is printed.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diarization.audio import decode_audio  # noqa: E402
from diarization.scoring import equal_error_rate  # noqa: E402
from diarization.speaker_encoder import SpeakerEncoder  # noqa: E402
from diarization.vad import normalize_loudness  # noqa: E402

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder", type=Path, nargs="?", default=ROOT.parent / "shared" / "data" / "speakers"
    )
    parser.add_argument("--pairs", action="store_true", help="also print every pair's score")
    args = parser.parse_args(argv)
    encoder = SpeakerEncoder.load(torch.device("cpu"))
    names, files, embeddings = [], [], []
    for speaker in sorted(p for p in args.folder.iterdir() if p.is_dir()):
        for path in sorted(speaker.iterdir()):
            if path.suffix.lower() in AUDIO_SUFFIXES:
                waveform = normalize_loudness(decode_audio(path))
                names.append(speaker.name)
                files.append(f"{speaker.name}/{path.name}")
                embeddings.append(encoder.embed_utterance(waveform))
    if len(set(names)) < 2:
        print(f"error: need at least two speaker folders in {args.folder}", file=sys.stderr)
        return 2
    vectors = np.stack(embeddings)
    same, different, pairs = [], [], []
    for i, j in itertools.combinations(range(len(names)), 2):
        score = float(vectors[i] @ vectors[j])
        kind = "same" if names[i] == names[j] else "diff"
        (same if kind == "same" else different).append(score)
        pairs.append(f"{files[i]}\t{files[j]}\t{kind}\t{score:.4f}")
    same_arr, different_arr = np.array(same), np.array(different)
    eer, threshold = equal_error_rate(same_arr, different_arr)
    counts = {n: names.count(n) for n in dict.fromkeys(names)}
    print(f"encoder: {encoder.name}; {len(names)} utterances of {len(counts)} speakers")
    print("utterances per speaker: " + ", ".join(f"{n} {c}" for n, c in counts.items()))
    for label, scores in (("same-speaker", same_arr), ("different-speaker", different_arr)):
        print(
            f"{label:>17} pairs: {len(scores):4d}  cosine mean {scores.mean():.3f} "
            f"sd {scores.std():.3f} min {scores.min():.3f} max {scores.max():.3f}"
        )
    print(f"EER {100 * eer:.2f} % at cosine threshold {threshold:.3f}")
    if args.pairs:
        print("\n".join(pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
