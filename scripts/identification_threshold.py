"""Measure false accepts and false rejects of known-speaker identification.

Every utterance in ../shared/data/speakers (one folder per speaker) is embedded the
way the service embeds a known speaker's recording (diarized as one speaker, rules
off). Each speaker is enrolled with one utterance; every other utterance is then a
genuine trial against its own speaker and an impostor trial against every other
speaker. Prints the equal error rate and false accept / false reject rates per
threshold, for choosing `identify.DEFAULT_THRESHOLDS`.

    python scripts/identification_threshold.py [--pipeline bundled] [--speakers DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from diarization.diarizer import Diarizer
    from diarization.scoring import equal_error_rate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="bundled", choices=["bundled", "pyannote"])
    parser.add_argument("--speakers", type=Path, default=ROOT.parent / "shared/data/speakers")
    parser.add_argument("--weights", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    diarizer = Diarizer.load(args.weights, "cpu", pipeline=args.pipeline)
    vectors: dict[str, list[np.ndarray]] = {}
    for folder in sorted(p for p in args.speakers.iterdir() if p.is_dir()):
        for recording in sorted(folder.iterdir()):
            vectors.setdefault(folder.name, []).append(diarizer.embed_recording(recording))
    unit = {s: [v / np.linalg.norm(v) for v in vs] for s, vs in vectors.items()}
    enrolled = {s: vs[0] for s, vs in unit.items()}
    genuine, impostor = [], []
    for speaker, tests in unit.items():
        for vector in tests[1:]:
            for other, reference in enrolled.items():
                (genuine if other == speaker else impostor).append(float(vector @ reference))
    genuine, impostor = np.array(genuine), np.array(impostor)
    eer, at = equal_error_rate(genuine, impostor)
    print(
        f"pipeline {args.pipeline}: {len(unit)} speakers, {len(genuine)} genuine and "
        f"{len(impostor)} impostor trials (one enrolment utterance per speaker)"
    )
    print(f"equal error rate {100 * eer:.1f} % at cosine similarity {at:.3f}")
    print("threshold  false accept  false reject")
    for threshold in np.arange(0.5, 0.96, 0.05):
        far = float(np.mean(impostor >= threshold))
        frr = float(np.mean(genuine < threshold))
        print(f"   {threshold:.2f}      {100 * far:5.1f} %      {100 * frr:5.1f} %")


if __name__ == "__main__":
    main()
