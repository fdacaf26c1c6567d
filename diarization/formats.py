"""Output files of a result: output.json, RTTM text, a timeline picture, or all three.

`rttm` is pure text. `write_timeline_png` draws with matplotlib (imported when
called, with its non-interactive Agg backend, so no display is needed).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

from diarization.schema import DiarizationResult, Segment

_WHITESPACE = re.compile(r"\s+")


def rttm_field(text: str) -> str:
    """`text` as one RTTM field: fields are space-separated, so spaces become '_'."""
    return _WHITESPACE.sub("_", text.strip()) or "_"


def rttm_line(uri: str, start: float, duration: float, speaker: str) -> str:
    """One standard 10-field RTTM line (no newline), times in seconds with 3 decimals:
    `SPEAKER <uri> 1 <onset> <duration> <NA> <NA> <speaker> <NA> <NA>`."""
    return (
        f"SPEAKER {rttm_field(uri)} 1 {start:.3f} {duration:.3f} <NA> <NA> "
        f"{rttm_field(speaker)} <NA> <NA>"
    )


def rttm(segments: Sequence[Segment], uri: str = "audio") -> str:
    """The RTTM lines of `segments`, one per line."""
    return "".join(rttm_line(uri, s.start, s.stop - s.start, s.speaker) + "\n" for s in segments)


def _clock(seconds: float, _position=None) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def write_timeline_png(result: DiarizationResult, duration: float, path: str | Path) -> Path:
    """Draw one lane per speaker on a time axis, overlaps shaded, and save it as PNG.

    Args:
        result: the post-processed result.
        duration: length of the audio in seconds (the time axis' extent).
        path: where to write the PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    labels = list(result.labels)
    lanes = {label: len(labels) - 1 - i for i, label in enumerate(labels)}
    colors = plt.get_cmap("tab10")
    height = 1.2 + 0.45 * max(1, len(labels))
    figure, axes = plt.subplots(figsize=(12, height), dpi=100)
    for overlap in result.overlaps:
        axes.axvspan(overlap.start, overlap.stop, color="#d62728", alpha=0.18, lw=0)
    for segment in result.segments:
        lane = lanes[segment.speaker]
        axes.broken_barh(
            [(segment.start, segment.stop - segment.start)],
            (lane - 0.35, 0.7),
            color=colors(labels.index(segment.speaker) % 10),
        )
    axes.set_yticks(range(len(labels)), labels=list(reversed(labels)))
    axes.set_ylim(-0.6, max(0.6, len(labels) - 0.4))
    axes.set_xlim(0, max(duration, 1e-3))
    axes.xaxis.set_major_formatter(FuncFormatter(_clock))
    axes.set_xlabel("time (shaded: overlapped speech)")
    axes.grid(axis="x", alpha=0.3)
    speakers = f"{len(labels)} speaker{'s' if len(labels) != 1 else ''}"
    axes.set_title(f"{speakers}, {_clock(duration)} of audio", loc="left", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, format="png")
    plt.close(figure)
    return path


#: `output_format` values and what each writes.
OUTPUT_FORMATS = {
    "json": "output.json (the reference format plus added keys)",
    "rttm": "output.rttm (standard 10-field RTTM of the segments)",
    "timeline": "timeline.png (one lane per speaker, overlaps shaded)",
    "zip": "diarization.zip holding output.json, output.rttm and timeline.png",
}


def write_output(
    result: DiarizationResult, output_format: str, directory: str | Path, uri: str = "audio"
) -> Path:
    """Write `result` in `output_format` (a key of `OUTPUT_FORMATS`) into `directory`.

    Returns:
        The path of the file written.

    Raises:
        ValueError: unknown `output_format`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if output_format == "json":
        path = directory / "output.json"
        path.write_text(result.to_json())
    elif output_format == "rttm":
        path = directory / "output.rttm"
        path.write_text(rttm(result.segments, uri))
    elif output_format == "timeline":
        path = write_timeline_png(result, result.duration, directory / "timeline.png")
    elif output_format == "zip":
        parts = [
            write_output(result, kind, directory, uri) for kind in ("json", "rttm", "timeline")
        ]
        path = directory / "diarization.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for part in parts:
                archive.write(part, part.name)
    else:
        choices = ", ".join(OUTPUT_FORMATS)
        raise ValueError(f"output_format must be one of {choices}; got {output_format!r}")
    return path
