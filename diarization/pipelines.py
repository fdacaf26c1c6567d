"""Choosing a diarization pipeline by name: the one place that knows them all.

Each pipeline module imports torch and its models, so they are imported only when
asked for.
"""

from __future__ import annotations

from pathlib import Path

from diarization.weights import WeightsLayout, default_layout

#: Names accepted by `load_pipeline`.
PIPELINES = ("pyannote", "bundled")


def load_pipeline(
    name: str,
    weights: str | Path | None = None,
    device: str | None = None,
    single_pass: bool = False,
    precision: str | None = None,
):
    """Load a pipeline by name.

    Args:
        name: "pyannote" (the seed pipeline, on local weights) or "bundled"
            (silero-vad + resemblyzer, from the installed packages).
        weights: the pyannote weights folder (default: $DIARIZATION_WEIGHTS_DIR or
            weights/); the bundled pipeline takes none.
        device: torch device name, e.g. "cpu" or "cuda"; default picks per pipeline.
        single_pass: the pyannote pipeline's approximate single-pass embeddings
            (`diarization.ecapa_single_pass`) instead of the exact ones.
        precision: how the pyannote pipeline's networks compute on a GPU: "auto",
            "fp32", "tf32", "bf16" or "fp16" (`diarization.precision`); None: the
            default ("auto").

    Returns:
        An object with `name`, `embedding_model`, `embedding_dimension`, `device` and
        `__call__(waveform, sample_rate, speakers, progress, clustering_threshold)
        -> RawDiarization`.

    Raises:
        ValueError: unknown name or precision, or an option the bundled pipeline lacks.
    """
    if name == "pyannote":
        from diarization.precision import DEFAULT_PRECISION
        from diarization.pyannote_pipeline import PyannotePipeline, pick_device

        layout = WeightsLayout(Path(weights)) if weights is not None else default_layout()
        return PyannotePipeline.load(
            layout,
            pick_device(device),
            single_pass=single_pass,
            precision=precision or DEFAULT_PRECISION,
        )
    if name == "bundled":
        if single_pass:
            raise ValueError(
                "single-pass embeddings are an option of the pyannote pipeline; "
                "the bundled pipeline has no other embedding stage"
            )
        if precision is not None:
            raise ValueError(
                "precision is an option of the pyannote pipeline; "
                "the bundled pipeline's models compute in fp32"
            )
        if weights is not None:
            raise ValueError(
                "the bundled pipeline loads its models from the installed packages; "
                "drop --weights (it is for --pipeline pyannote)"
            )
        from diarization.bundled_pipeline import BundledPipeline

        return BundledPipeline.load(device)
    raise ValueError(f"unknown pipeline {name!r}; choose one of {', '.join(PIPELINES)}")
