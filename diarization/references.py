"""Known speakers from the user's file: named embeddings (JSON) or recordings (zip).

A zip holds one recording per known speaker, named after them (`Alice.wav`,
`Bob Smith.m4a`). Each is embedded with the same pipeline and rules as the
recording being diarized (through the `embed` callback), so the vectors compare.
Archive members are extracted one at a time into a temporary folder that is
removed afterwards, with limits on their number and size.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

from diarization.audio import AudioDecodeError
from diarization.identify import MAX_KNOWN_SPEAKERS, load_known_speakers, parse_known_speakers
from diarization.schema import InputError

#: Largest recording accepted per known speaker, uncompressed.
MAX_REFERENCE_BYTES = 100 * 2**20

Embed = Callable[[Path], np.ndarray]


def read_known_speakers(path: str | Path, embed: Embed) -> dict[str, np.ndarray]:
    """Name -> embedding from a JSON file of embeddings or a zip of recordings.

    Raises:
        InputError: the file is neither, or an entry is invalid (the message names it).
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        return _from_zip(path, embed)
    return load_known_speakers(path)


def _from_zip(path: Path, embed: Embed) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.infolist() if not m.is_dir() and not _hidden(m.filename)]
        if not members:
            raise InputError("the known speakers zip holds no recordings")
        if len(members) > MAX_KNOWN_SPEAKERS:
            raise InputError(
                f"the known speakers zip holds {len(members)} files; at most {MAX_KNOWN_SPEAKERS}"
            )
        vectors: dict[str, list[float]] = {}
        with tempfile.TemporaryDirectory(prefix="diarization-known-") as folder:
            for member in members:
                name = PurePosixPath(member.filename).stem.strip()
                if member.file_size > MAX_REFERENCE_BYTES:
                    raise InputError(
                        f"recording {member.filename!r} is {member.file_size} bytes; "
                        f"at most {MAX_REFERENCE_BYTES}"
                    )
                if name in vectors:
                    raise InputError(f"two recordings in the zip are named {name!r}")
                # Never trust member paths: write under a fixed name in our folder.
                target = Path(folder) / "recording"
                with archive.open(member) as source, open(target, "wb") as out:
                    out.write(source.read(MAX_REFERENCE_BYTES + 1))
                try:
                    vectors[name] = [float(x) for x in embed(target)]
                except (InputError, AudioDecodeError) as e:
                    raise InputError(f"recording {member.filename!r}: {e}") from e
                finally:
                    target.unlink(missing_ok=True)
    return parse_known_speakers(vectors, source="the known speakers zip")


def _hidden(filename: str) -> bool:
    parts = PurePosixPath(filename).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)
