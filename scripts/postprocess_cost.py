"""What each post-processing rule costs in accuracy, on a perfect diarization.

The reference RTTM of every recording is turned into a raw diarization (one `Turn`
per RTTM line, no window embeddings, a dummy centroid per speaker) and run through
`diarization.postprocess.postprocess` under five settings:

  off        every rule off: must give back the reference exactly (DER 0);
  duration   only the drop of turns shorter than `min_segment_duration`;
  share      only the drop of speakers with at most `min_speaker_share` of speech;
  merge      only the merge of same-speaker turns across gaps < `max_merge_gap`;
  all        the three together (the reference model's defaults).

Each output is scored against the reference it came from (DER at collars 0 and 0.5,
overlap scored, split into missed / false alarm / confusion; speaker counts), so
every error is the cost of the rule itself, whatever model runs before it.

    python scripts/postprocess_cost.py                      # ../shared/data/real and sim
    python scripts/postprocess_cost.py FOLDER [FOLDER ...]

A `.uem` beside a `.rttm` restricts scoring to its regions; otherwise the whole
audio (of the audio file of the same stem beside the `.rttm`) is scored.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pyannote.core import Annotation, Timeline
from pyannote.core import Segment as Interval

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diarization.audio import SAMPLE_RATE, decode_audio  # noqa: E402
from diarization.postprocess import PostprocessOptions, postprocess  # noqa: E402
from diarization.schema import RawDiarization, Turn, WindowEmbeddings  # noqa: E402
from diarization.scoring import (  # noqa: E402
    COLLARS,
    FileScore,
    read_rttm,
    read_uem,
    score_file,
    segments_to_annotation,
    total_score,
)

DEFAULT_FOLDERS = (
    ROOT.parent / "shared" / "data" / "real",
    ROOT.parent / "shared" / "data" / "sim",
)

#: Files beside a reference that are never its audio.
_NOT_AUDIO = {".rttm", ".uem", ".json", ".txt", ".md", ".tsv", ".lst"}


@dataclass(frozen=True)
class Recording:
    """One reference to put through the rules.

    Attributes:
        uri: the file's stem.
        group: the folder it came from (e.g. "real", "sim"); totals are per group.
        reference: the reference turns.
        uem: the regions scored.
        duration: length of the audio in seconds (turns are clipped to it).
    """

    uri: str
    group: str
    reference: Annotation
    uem: Timeline
    duration: float


def rule_settings() -> dict[str, PostprocessOptions]:
    """The settings compared: all off, each rule alone at its default, all on."""
    default = PostprocessOptions()
    off = PostprocessOptions.off()
    return {
        "off": off,
        "duration": replace(off, min_segment_duration=default.min_segment_duration),
        "share": replace(off, min_speaker_share=default.min_speaker_share),
        "merge": replace(off, max_merge_gap=default.max_merge_gap),
        "all": default,
    }


def reference_raw(reference: Annotation, duration: float) -> RawDiarization:
    """The reference as a perfect raw diarization: one turn per reference track."""
    turns = sorted(
        (
            Turn(s.start, s.end, str(label))
            for s, _, label in reference.itertracks(yield_label=True)
        ),
        key=lambda t: (t.start, t.end),
    )
    # (num_windows, local_num_speakers, dimension): no window, so every speaker
    # takes its centroid as embedding; embeddings play no part in the score.
    windows = WindowEmbeddings(np.zeros(0), 5.0, np.zeros((0, 1, 1), dtype=np.float32))
    centroids = {t.speaker: np.zeros(1) for t in turns}
    return RawDiarization(turns=turns, windows=windows, centroids=centroids, duration=duration)


def score_setting(recording: Recording, options: PostprocessOptions) -> FileScore:
    """Post-process the perfect diarization of `recording` and score it against itself."""
    result = postprocess(reference_raw(recording.reference, recording.duration), options)
    hypothesis = segments_to_annotation(result.segments, recording.uri)
    return score_file(recording.reference, hypothesis, recording.uem)


def cost_table(
    recordings: Sequence[Recording],
    settings: Mapping[str, PostprocessOptions] | None = None,
) -> dict[str, list[FileScore]]:
    """Setting name -> one score per recording (in the recordings' order).

    Args:
        recordings: the references.
        settings: name -> options; `rule_settings()` when None.
    """
    settings = rule_settings() if settings is None else settings
    return {
        name: [score_setting(recording, options) for recording in recordings]
        for name, options in settings.items()
    }


def group_totals(
    recordings: Sequence[Recording], scores: Sequence[FileScore]
) -> dict[str, FileScore]:
    """Group name -> its total, in order of first appearance, then "all" when there
    are several groups. Weighted by reference speech (pyannote's sum); the uris
    read "TOTAL <group>"."""
    groups: dict[str, list[FileScore]] = {}
    for recording, score in zip(recordings, scores, strict=True):
        groups.setdefault(recording.group, []).append(score)
    totals = {g: replace(total_score(s), uri=f"TOTAL {g}") for g, s in groups.items()}
    if len(groups) > 1:
        totals["all"] = replace(total_score(scores), uri="TOTAL all")
    return totals


def find_audio(rttm: Path) -> Path:
    """The audio file with the same stem as `rttm` beside it.

    Raises:
        FileNotFoundError: there is none (the audio gives the duration scored).
    """
    candidates = sorted(
        p
        for p in rttm.parent.glob(f"{rttm.stem}.*")
        if p.is_file() and p.suffix.lower() not in _NOT_AUDIO
    )
    if not candidates:
        raise FileNotFoundError(
            f"no audio file named {rttm.stem}.* beside {rttm}: its duration is needed "
            "to clip turns and to score the whole file"
        )
    return candidates[0]


def load_recording(rttm: Path) -> Recording:
    """Read a reference, its `.uem` if one is beside it, and its audio's duration."""
    uri = rttm.stem
    waveform = decode_audio(find_audio(rttm), SAMPLE_RATE)
    duration = len(waveform) / SAMPLE_RATE
    annotations = read_rttm(rttm)
    if uri in annotations:
        reference = annotations[uri]
    elif len(annotations) == 1:
        reference = next(iter(annotations.values())).rename_tracks()
        reference.uri = uri
    elif not annotations:
        reference = Annotation(uri=uri)
    else:
        raise ValueError(f"{rttm} holds several uris, none named {uri!r}")
    uem_path = rttm.with_suffix(".uem")
    if uem_path.is_file():
        uems = read_uem(uem_path)
        uem = uems.get(uri) or next(iter(uems.values()))
    else:
        uem = Timeline([Interval(0.0, duration)], uri=uri)
    return Recording(uri, rttm.parent.name, reference, uem, duration)


def find_recordings(folders: Sequence[Path]) -> list[Recording]:
    """Every `.rttm` in `folders` (sorted by name within each folder), loaded."""
    recordings = []
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder")
        recordings.extend(load_recording(p) for p in sorted(folder.glob("*.rttm")))
    return recordings


def describe(options: PostprocessOptions) -> str:
    """The three thresholds on one line."""
    return (
        f"min_segment_duration={options.min_segment_duration:g} "
        f"min_speaker_share={options.min_speaker_share:g} "
        f"max_merge_gap={options.max_merge_gap:g}"
    )


def _row(score: FileScore) -> str:
    row = f"{score.uri[:32]:<32} {score.components[COLLARS[0]].total:6.1f}"
    for collar in COLLARS:
        c = score.components[collar]
        if c.total > 0:
            parts = [c.der, c.missed / c.total, c.false_alarm / c.total, c.confusion / c.total]
            row += " | " + " ".join(f"{100 * x:5.2f}" for x in parts)
        else:
            # No reference speech: pyannote's DER is 0 or 1; the split is in seconds.
            error = c.missed + c.false_alarm + c.confusion
            row += f" | {100 * c.der:5.2f} {'-':>5} {'-':>5} {'-':>5}"
            if error:
                row += f" ({error:.2f} s)"
    if score.uri.startswith("TOTAL"):
        changed = score.files - score.count_matches
        row += f" | {changed}/{score.files} changed"
    else:
        mark = "" if score.count_matches else " *"
        row += f" | {score.reference_speakers:>3} -> {score.hypothesis_speakers}{mark}"
    return row


def format_setting(
    name: str,
    options: PostprocessOptions,
    recordings: Sequence[Recording],
    scores: Sequence[FileScore],
) -> str:
    """One setting's table: a row per file, then the totals."""
    header = f"{'file':<32} {'speech':>6}"
    for collar in COLLARS:
        header += f" | c={collar:<3} {'miss':>5} {'FA':>5} {'conf':>5}"
    header += " | speakers"
    sub = f"{'':<32} {'s':>6}" + f" | {'DER %':>5} {'%':>5} {'%':>5} {'%':>5}" * len(COLLARS)
    lines = [f"== {name}: {describe(options)}", header, sub, "-" * len(header)]
    lines += [_row(s) for s in scores]
    lines += [_row(t) for t in group_totals(recordings, scores).values()]
    return "\n".join(lines)


def format_summary(recordings: Sequence[Recording], table: Mapping[str, list[FileScore]]) -> str:
    """The TOTAL rows of every setting, side by side."""
    header = f"{'setting':<9} {'group':<6}"
    for collar in COLLARS:
        header += f" | c={collar:<3} {'miss':>5} {'FA':>5} {'conf':>5}"
    header += " | speaker count changed"
    lines = ["== summary (DER and its split in % of reference speech)", header, "-" * len(header)]
    for name, scores in table.items():
        for group, total in group_totals(recordings, scores).items():
            row = f"{name:<9} {group:<6}"
            for collar in COLLARS:
                c = total.components[collar]
                parts = [c.der, c.missed / c.total, c.false_alarm / c.total, c.confusion / c.total]
                row += " | " + " ".join(f"{100 * x:5.2f}" for x in parts)
            changed = total.files - total.count_matches
            row += f" | {changed}/{total.files} ({100 * changed / total.files:.0f} %)"
            lines.append(row)
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python scripts/postprocess_cost.py",
        description="Cost of each post-processing rule on a perfect diarization.",
    )
    parser.add_argument(
        "folders",
        type=Path,
        nargs="*",
        default=list(DEFAULT_FOLDERS),
        help="folders of .rttm (+ audio, + .uem); default ../shared/data/real and sim",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print the tables; exit status 1 when rules off do not give back the reference."""
    args = parse_args(argv)
    recordings = find_recordings(args.folders)
    if not recordings:
        print("error: no .rttm file in the given folders", file=sys.stderr)
        return 2
    settings = rule_settings()
    table = cost_table(recordings, settings)
    for name, scores in table.items():
        print(format_setting(name, settings[name], recordings, scores))
        print()
    print(format_summary(recordings, table))
    broken = [
        s.uri
        for s in table["off"]
        if any(s.components[c].der != 0 for c in COLLARS) or not s.count_matches
    ]
    if broken:
        print(f"\nerror: with every rule off, DER is not 0 on {', '.join(broken)}", file=sys.stderr)
        return 1
    print("\nsanity: with every rule off, DER is 0 at both collars on every file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
