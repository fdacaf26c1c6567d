"""Where the seed pipeline's weights live on disk, and checks that they are there.

Imports neither torch nor pyannote: the layout is plain paths, so the CLI and the
predictor can report a missing file before any model code runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Default weights folder: `weights/` at the project root (`/src/weights` in a Cog image).
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
#: Environment variable that points the service at another weights folder.
WEIGHTS_DIR_ENV = "DIARIZATION_WEIGHTS_DIR"
#: The command that fills a weights folder, quoted in every error about one.
FETCH_COMMAND = "HF_TOKEN=... python scripts/download_weights.py"

SEGMENTATION_FILE = "pytorch_model.bin"
ECAPA_FILES = (
    "hyperparams.yaml",
    "embedding_model.ckpt",
    "mean_var_norm_emb.ckpt",
    "classifier.ckpt",
    "label_encoder.txt",
)


class WeightsError(RuntimeError):
    """A weight file is missing or unreadable; the message names it and the fix."""


@dataclass(frozen=True)
class WeightsLayout:
    """The published layouts of both models under one root folder.

    Attributes:
        root: the weights folder.
    """

    root: Path

    @property
    def segmentation(self) -> Path:
        """pyannote/segmentation@2022.07 checkpoint file (a Lightning checkpoint)."""
        return self.root / "pyannote-segmentation" / SEGMENTATION_FILE

    @property
    def embedding(self) -> Path:
        """speechbrain/spkrec-ecapa-voxceleb folder, as published on the hub."""
        return self.root / "speechbrain-spkrec-ecapa-voxceleb"

    def required_files(self) -> list[Path]:
        """Every file the seed pipeline reads, in load order."""
        return [self.segmentation] + [self.embedding / name for name in ECAPA_FILES]

    def missing_files(self) -> list[Path]:
        """Required files that do not exist or are empty."""
        return [p for p in self.required_files() if not p.is_file() or p.stat().st_size == 0]

    def is_complete(self) -> bool:
        """True when every required file is present and non-empty."""
        return not self.missing_files()

    def check(self) -> None:
        """Raise `WeightsError` naming the first missing file and the fetch command."""
        missing = self.missing_files()
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise WeightsError(
                f"missing weight file {missing[0]}{more}; "
                f"fetch the weights with `{FETCH_COMMAND}`, "
                f"or point {WEIGHTS_DIR_ENV} at a folder that has them"
            )


def default_layout() -> WeightsLayout:
    """The layout under $DIARIZATION_WEIGHTS_DIR, or under `weights/` when unset."""
    return WeightsLayout(Path(os.environ.get(WEIGHTS_DIR_ENV, DEFAULT_WEIGHTS_DIR)))
