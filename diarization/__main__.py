"""Command line: `python -m diarization INPUT [-o output.json] [--num-speakers N ...]`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from diarization.audio import AudioDecodeError
from diarization.diarizer import Diarizer
from diarization.schema import InputError, SpeakerCount
from diarization.weights import WeightsError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m diarization",
        description="Who spoke when: writes the reference model's output.json for one recording.",
    )
    parser.add_argument("input", type=Path, help="audio or video file (any format ffmpeg reads)")
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("output.json"), help="default: output.json"
    )
    parser.add_argument("--num-speakers", type=int, help="exact number of speakers, when known")
    parser.add_argument("--min-speakers", type=int, help="lower bound on the number of speakers")
    parser.add_argument("--max-speakers", type=int, help="upper bound on the number of speakers")
    parser.add_argument(
        "--weights",
        type=Path,
        help="weights folder (default: $DIARIZATION_WEIGHTS_DIR or weights/)",
    )
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda (default: GPU if any)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status (0 ok, 2 bad input, 1 other failure)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        speakers = SpeakerCount(args.num_speakers, args.min_speakers, args.max_speakers)
        diarizer = Diarizer.load(args.weights, args.device)
        result = diarizer.diarize(args.input, speakers)
    except (InputError, AudioDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    args.output.write_text(result.to_json())
    print(f"wrote {args.output}: {len(result.labels)} speakers, {len(result.segments)} segments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
