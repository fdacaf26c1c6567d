"""Evaluation command: run a pipeline over folders of references and score it.

    python -m diarization.evaluate FOLDER [FOLDER ...] --pipeline bundled [--rttm-out DIR]
    python -m diarization.evaluate FOLDER --pipeline pyannote --weights DIR

Every audio file (any format ffmpeg reads) with a `.rttm` of the same stem beside it
is diarized; a `.uem` beside it restricts scoring, else the whole audio is scored.
Both the raw diarization and the post-processed output are scored (DER at each
collar with its missed / false alarm / confusion split, JER, speaker count), one
row per file and a TOTAL row weighted by reference speech. The scoring itself is
in `diarization.scoring`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pyannote.core import Annotation, Timeline
from pyannote.core import Segment as Interval

from diarization.audio import SAMPLE_RATE, decode_audio
from diarization.pipelines import PIPELINES, load_pipeline
from diarization.postprocess import postprocess
from diarization.schema import SpeakerCount
from diarization.scoring import (
    COLLARS,
    FileScore,
    read_rttm,
    read_uem,
    score_file,
    segments_to_annotation,
    total_score,
    turns_to_annotation,
    write_rttm,
)

logger = logging.getLogger(__name__)

#: Files beside the audio that are never audio themselves.
_NOT_AUDIO = {".rttm", ".uem", ".json", ".txt", ".md", ".tsv", ".lst"}


@dataclass(frozen=True)
class Item:
    """One recording to evaluate: its audio, reference and optional scoring regions."""

    audio: Path
    rttm: Path
    uem: Path | None

    @property
    def uri(self) -> str:
        """The file's name without extension, used as the RTTM uri."""
        return self.audio.stem


@dataclass(frozen=True)
class ItemResult:
    """Scores of one recording, raw and post-processed, and how long the pipeline ran."""

    raw: FileScore
    post: FileScore
    audio_duration: float
    seconds: float


def find_items(folders: Sequence[Path]) -> list[Item]:
    """Audio files that have a reference `.rttm` (same stem) beside them, sorted by path."""
    items = []
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder")
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.suffix.lower() in _NOT_AUDIO:
                continue
            rttm = path.with_suffix(".rttm")
            if rttm.is_file():
                uem = path.with_suffix(".uem")
                items.append(Item(path, rttm, uem if uem.is_file() else None))
    return items


def load_reference(item: Item, duration: float) -> tuple[Annotation, Timeline]:
    """The item's reference annotation and the regions to score.

    The RTTM's turns for the file's uri are used; an RTTM with a single uri under
    another name is taken as this file's. Without a UEM the whole audio is scored.
    """
    annotations = read_rttm(item.rttm)
    if item.uri in annotations:
        reference = annotations[item.uri]
    elif len(annotations) == 1:
        reference = next(iter(annotations.values())).rename_tracks()
        reference.uri = item.uri
    elif not annotations:
        reference = Annotation(uri=item.uri)
    else:
        raise ValueError(f"{item.rttm} holds several uris, none named {item.uri!r}")
    if item.uem is not None:
        uems = read_uem(item.uem)
        uem = uems.get(item.uri) or next(iter(uems.values()))
    else:
        uem = Timeline([Interval(0.0, duration)], uri=item.uri)
    return reference, uem


def evaluate_item(
    pipeline, item: Item, oracle_count: bool = False, rttm_out: Path | None = None
) -> ItemResult:
    """Diarize one item and score its raw and post-processed output.

    Args:
        pipeline: a loaded pipeline (see `diarization.pipelines`).
        item: the recording.
        oracle_count: pass the reference's number of speakers as `num_speakers`.
        rttm_out: folder for `<uri>.raw.rttm` and `<uri>.rttm` (post-processed).
    """
    waveform = decode_audio(item.audio, SAMPLE_RATE)
    duration = len(waveform) / SAMPLE_RATE
    reference, uem = load_reference(item, duration)
    speakers = SpeakerCount()
    if oracle_count and reference.labels():
        speakers = SpeakerCount(num_speakers=len(reference.labels()))
    start = time.perf_counter()
    raw = pipeline(waveform, SAMPLE_RATE, speakers)
    seconds = time.perf_counter() - start
    result = postprocess(raw)
    raw_hypothesis = turns_to_annotation(raw.turns, item.uri)
    post_hypothesis = segments_to_annotation(result.segments, item.uri)
    if rttm_out is not None:
        rttm_out.mkdir(parents=True, exist_ok=True)
        write_rttm(raw_hypothesis, rttm_out / f"{item.uri}.raw.rttm")
        write_rttm(post_hypothesis, rttm_out / f"{item.uri}.rttm")
    return ItemResult(
        raw=score_file(reference, raw_hypothesis, uem),
        post=score_file(reference, post_hypothesis, uem),
        audio_duration=duration,
        seconds=seconds,
    )


def group_totals(scores: Sequence[FileScore], folders: Sequence[Path]) -> list[FileScore]:
    """A TOTAL row per folder (named "TOTAL <folder name>") when there are several
    folders, then the TOTAL over all files."""
    totals = []
    distinct = list(dict.fromkeys(folders))
    if len(distinct) > 1:
        for folder in distinct:
            group = [s for s, f in zip(scores, folders, strict=True) if f == folder]
            totals.append(replace(total_score(group), uri=f"TOTAL {folder.name}"))
    totals.append(total_score(scores))
    return totals


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def format_table(scores: Sequence[FileScore], title: str) -> str:
    """A fixed-width table: one row per score (the TOTAL row last, if given).

    Columns: reference speech (s), DER and its missed / false alarm / confusion
    split in % of reference speech at each collar, JER %, speaker counts.
    """
    header = f"{'file':<32} {'speech':>6}"
    for collar in COLLARS:
        header += f" | c={collar:<4} {'DER':>5} {'miss':>5} {'FA':>5} {'conf':>5}"
    header += f" | {'JER':>5} | {'ref':>3} {'hyp':>3}"
    lines = [title, header, "-" * len(header)]
    for s in scores:
        row = f"{s.uri[:32]:<32} {s.components[COLLARS[0]].total:6.1f}"
        for collar in COLLARS:
            c = s.components[collar]
            scale = c.total if c.total > 0 else None

            def share(x, scale=scale):
                return "-" if scale is None else f"{100 * x / scale:.1f}"

            row += (
                f" | {'':6} {_percent(c.der):>5} {share(c.missed):>5}"
                f" {share(c.false_alarm):>5} {share(c.confusion):>5}"
            )
        if s.uri.startswith("TOTAL"):
            counts = f"{s.count_matches}/{s.files} right"
            row += f" | {_percent(s.jer):>5} | {counts}"
        else:
            mark = "" if s.count_matches else " x"
            row += (
                f" | {_percent(s.jer):>5} | {s.reference_speakers:>3} {s.hypothesis_speakers:>3}"
                f"{mark}"
            )
        lines.append(row)
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m diarization.evaluate",
        description="Diarize every audio file that has a .rttm beside it and score it.",
    )
    parser.add_argument("folders", type=Path, nargs="+", help="folders of audio + .rttm (+ .uem)")
    parser.add_argument("--pipeline", choices=PIPELINES, default="bundled")
    parser.add_argument("--weights", type=Path, help="weights folder (pyannote pipeline only)")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--rttm-out", type=Path, help="write hypotheses as RTTM into this folder")
    parser.add_argument(
        "--oracle-count",
        action="store_true",
        help="give the pipeline the reference's number of speakers",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each stage's time")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; returns the exit status (0 ok, 2 nothing to evaluate)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    items = find_items(args.folders)
    if not items:
        print("error: no audio file with a .rttm beside it in the given folders", file=sys.stderr)
        return 2
    pipeline = load_pipeline(args.pipeline, args.weights, args.device)
    wall = time.perf_counter()
    results = [evaluate_item(pipeline, item, args.oracle_count, args.rttm_out) for item in items]
    wall = time.perf_counter() - wall
    folders = [item.audio.parent for item in items]
    for kind in ("raw", "post"):
        scores = [getattr(r, kind) for r in results]
        rows = [*scores, *group_totals(scores, folders)]
        title = (
            "RAW diarization (RawDiarization.turns)"
            if kind == "raw"
            else "POST-PROCESSED output (postprocess() with the default rules)"
        )
        print(format_table(rows, title))
        print()
    audio = sum(r.audio_duration for r in results)
    compute = sum(r.seconds for r in results)
    print(
        f"pipeline {pipeline.name} on {pipeline.device}: {len(results)} files, "
        f"{audio:.1f} s of audio, pipeline time {compute:.2f} s "
        f"({audio / compute:.1f}x real time); wall time with decoding "
        f"and scoring {wall:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
