"""Command line: `python -m diarization INPUT [-o output.json] [--num-speakers N ...]`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from diarization.audio import AudioDecodeError
from diarization.diarizer import PIPELINE_CHOICES, Diarizer
from diarization.formats import rttm, write_timeline_png
from diarization.postprocess import PostprocessOptions
from diarization.precision import DEFAULT_PRECISION, PRECISIONS
from diarization.schema import InputError, SpeakerCount
from diarization.weights import WeightsError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    defaults = PostprocessOptions()
    parser = argparse.ArgumentParser(
        prog="python -m diarization",
        description="Who spoke when: writes the reference model's output.json for one recording.",
    )
    parser.add_argument("input", type=Path, help="audio or video file (any format ffmpeg reads)")
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("output.json"), help="default: output.json"
    )
    parser.add_argument("--rttm", type=Path, help="also write the segments as RTTM here")
    parser.add_argument("--timeline", type=Path, help="also draw the timeline PNG here")
    parser.add_argument("--num-speakers", type=int, help="exact number of speakers, when known")
    parser.add_argument("--min-speakers", type=int, help="lower bound on the number of speakers")
    parser.add_argument("--max-speakers", type=int, help="upper bound on the number of speakers")
    parser.add_argument(
        "--clustering-threshold", type=float, help="lower finds more speakers (pyannote: 0-2)"
    )
    parser.add_argument(
        "--min-segment-duration",
        type=float,
        default=defaults.min_segment_duration,
        help="drop shorter segments, seconds; 0: off (default: %(default)s)",
    )
    parser.add_argument(
        "--min-speaker-share",
        type=float,
        default=defaults.min_speaker_share,
        help="drop speakers with at most this share of speech; 0: off (default: %(default)s)",
    )
    parser.add_argument(
        "--max-merge-gap",
        type=float,
        default=defaults.max_merge_gap,
        help="join a speaker's segments across shorter gaps, seconds; 0: off "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--known-speakers",
        type=Path,
        help="JSON {name: embedding} or a zip of recordings named after each speaker",
    )
    parser.add_argument(
        "--identification-threshold", type=float, help="least cosine similarity for a name"
    )
    parser.add_argument(
        "--pipeline",
        choices=PIPELINE_CHOICES,
        default="auto",
        help="auto (default): pyannote when its weights are present, else bundled",
    )
    parser.add_argument(
        "--single-pass-embeddings",
        action="store_true",
        help="pyannote pipeline: approximate speaker embeddings from one pass over the audio "
        "(much faster on long audio; not the same answer as stock pyannote)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help=f"pyannote pipeline on a GPU: how the networks compute (default "
        f"{DEFAULT_PRECISION}; a CPU always computes fp32); see docs/performance.md",
    )
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
        options = PostprocessOptions(
            args.min_segment_duration, args.min_speaker_share, args.max_merge_gap
        )
        diarizer = Diarizer.load(
            args.weights,
            args.device,
            pipeline=args.pipeline,
            single_pass_embeddings=args.single_pass_embeddings,
            precision=args.precision,
        )
        known = None
        if args.known_speakers:
            known = diarizer.known_speakers(args.known_speakers)
        result = diarizer.diarize(
            args.input,
            speakers,
            clustering_threshold=args.clustering_threshold,
            options=options,
            known_speakers=known,
            identification_threshold=args.identification_threshold,
        )
    except (InputError, AudioDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    args.output.write_text(result.to_json())
    written = [args.output]
    if args.rttm:
        args.rttm.write_text(rttm(result.segments, args.input.stem))
        written.append(args.rttm)
    if args.timeline:
        written.append(write_timeline_png(result, result.duration, args.timeline))
    names = ", ".join(str(p) for p in written)
    print(f"wrote {names}: {len(result.labels)} speakers, {len(result.segments)} segments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
