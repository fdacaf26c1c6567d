"""Numeric precision of the two networks on a GPU.

pyannote runs both models in strict float32: every call of its pipeline and of
its segmentation inference switches TF32 off (`fix_reproducibility`). The modes
here keep everything else as it is and change only how the segmentation network
(PyanNet) and the ECAPA network compute:

- ``fp32``: strict float32, pyannote's choice (the reference for the others).
- ``tf32``: float32 tensors, matrix products and convolutions on the tensor
  cores' TF32 (10-bit mantissa inputs, float32 accumulation).
- ``bf16`` / ``fp16``: each network's forward under `torch.autocast` with that
  type; its output is cast back to float32. Feature extraction (ECAPA's filter
  bank, whose power spectrum overflows float16) stays in float32.
- ``auto`` (the default): the segmentation network in strict float32, and the
  embedding network in TF32 once a check at load has found TF32's embeddings
  within `AUTO_TF32_TOLERANCE` of strict float32's on the loaded weights
  (`pyannote_pipeline.settle_precision`); in strict float32 otherwise. On an
  H200 TF32 took the exact embeddings of 1 hour from 4.67 s to 2.55 s.

On a CPU every mode computes in float32: these modes only exist for GPUs.
How far each moves the embeddings and the diarization is measured by
scripts/precision.py (docs/performance.md). Importing this module imports no torch
(the names are checked where options are read); applying a mode does.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "tf32", "bf16", "fp16")
#: The service's mode on a GPU: see the module docstring and docs/performance.md.
DEFAULT_PRECISION = "auto"
#: The largest 1 - cosine between an embedding computed in TF32 and the same one in
#: strict float32 for which ``auto`` keeps TF32: a cosine of at least 0.99999 turns
#: each embedding by at most 0.26 degrees, which moves the (Euclidean) distance between
#: two of them by at most 0.009 (the clustering stops merging at 0.72). On random
#: weights TF32 stayed within 3.6e-7 on every pair of an hour, diarization identical.
AUTO_TF32_TOLERANCE = 1e-5
#: torch's name of the type each half-precision mode computes in
AUTOCAST_TYPES = {"bf16": "bfloat16", "fp16": "float16"}


def check_precision(precision: str) -> str:
    """`precision` if it names a mode, else ValueError listing the modes."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def autocast_type(precision: str, device: torch.device) -> torch.dtype | None:
    """The type the networks compute in under `precision` on `device`, or None for float32."""
    import torch

    name = AUTOCAST_TYPES.get(precision) if device.type == "cuda" else None
    return getattr(torch, name) if name else None


@contextlib.contextmanager
def precision_scope(
    precision: str, device: torch.device, networks: list[torch.nn.Module]
) -> Iterator[None]:
    """Run the enclosed pipeline call with `networks` at `precision` on `device`.

    For the duration of the block: TF32 is switched on (``tf32``) or kept off
    (every other mode), and pyannote's segmentation inference no longer switches
    it off; with ``bf16``/``fp16`` each network's forward runs under autocast and
    returns float32. Everything is restored on exit. fp32, ``auto`` (whose
    embedding stage opens its own ``tf32`` scope) and CPUs: no change.
    """
    check_precision(precision)
    if device.type != "cuda" or precision in ("fp32", "auto"):
        yield
        return
    import torch
    from pyannote.audio.core import inference

    tf32 = precision == "tf32"
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    fix_reproducibility = inference.fix_reproducibility

    def keep_precision(device: torch.device) -> None:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32

    keep_precision(device)
    inference.fix_reproducibility = keep_precision
    dtype = autocast_type(precision, device)
    if dtype is not None:
        for network in networks:
            network.forward = autocast_forward(network.forward, device.type, dtype)
    try:
        yield
    finally:
        inference.fix_reproducibility = fix_reproducibility
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
        if dtype is not None:
            for network in networks:
                del network.forward  # back to the class's forward


def autocast_forward(forward, device_type: str, dtype: torch.dtype):
    """`forward` run under autocast to `dtype` on `device_type`, its output cast to float32."""

    import torch

    @functools.wraps(forward)
    def run(*args, **kwargs):
        with torch.autocast(device_type, dtype=dtype):
            output = forward(*args, **kwargs)
        return output.float()

    return run


def pair_cosines(reference, other):
    """(pairs,) the cosine between the rows of two (..., dimension) arrays of embeddings
    of the same pairs, for the pairs embedded in both (no NaN), in float64 (float32
    cannot resolve cosines within about 1e-7 of 1)."""
    import numpy as np

    dimension = np.shape(reference)[-1]
    reference = np.asarray(reference, np.float64).reshape(-1, dimension)
    other = np.asarray(other, np.float64).reshape(-1, dimension)
    both = ~np.isnan(reference).any(axis=1) & ~np.isnan(other).any(axis=1)
    a, b = reference[both], other[both]
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def embedding_deviation(reference, other) -> float:
    """The largest 1 - cosine between the rows of two (..., dimension) arrays of
    embeddings of the same pairs (`pair_cosines`); pairs without an embedding (NaN) are
    left out. inf where the two differ in which pairs have one, or where no pair has one
    in both.
    """
    import numpy as np

    embedded = ~np.isnan(reference).any(axis=-1)
    if not np.array_equal(embedded, ~np.isnan(other).any(axis=-1)) or not embedded.any():
        return float("inf")
    return float(np.max(1.0 - pair_cosines(reference, other)))
