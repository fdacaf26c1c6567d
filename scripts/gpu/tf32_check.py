"""Which of ECAPA's two fp32 forward passes TF32 reaches, under each setting of the flags.

SpeechBrain's module (cuDNN convolutions) and `diarization.ecapa_forward` (cuBLAS matrix
products) on the same batch, each against the module in float64, with the TF32 flags as
importing SpeechBrain leaves them (its `allow_tf32` quirk: both on), with cuDNN's off, and
with both off (pyannote's `fix_reproducibility`, called on every pipeline and segmentation
run).

    python scripts/gpu/tf32_check.py        # on a GPU
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from diarization.ecapa_forward import EcapaForward  # noqa: E402
from diarization.random_weights import ECAPA_LAYOUT  # noqa: E402


def main() -> None:
    cuda = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # cpu: a dry run
    torch.manual_seed(0)
    model = ECAPA_TDNN(80, **ECAPA_LAYOUT).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.5, 2)
    counts = torch.tensor([501, 480, 431, 300, 120, 40])
    feats = torch.randn(len(counts), 501, 80)
    lengths = (counts - 0.5) / feats.shape[1]
    with torch.inference_mode():
        reference = model.double().to(cuda)(feats.double().to(cuda), lengths.to(cuda))[:, 0]
        model.float()
        ours = EcapaForward(model)
        settings = {
            "as SpeechBrain sets": {},
            "cuDNN's TF32 off": {"cudnn": False},
            "both off (pyannote)": {"cudnn": False, "matmul": False},
        }
        for name, flags in settings.items():
            for flag, value in flags.items():  # first row: as importing SpeechBrain left them
                _FLAGS[flag].allow_tf32 = value
            state = " ".join(
                f"{flag}.{name}={getattr(_FLAGS[flag], name, '-')}"
                for flag in _FLAGS
                for name in ("allow_tf32", "fp32_precision")
            )
            feats_cuda = feats.to(cuda)
            module = model(feats_cuda, lengths.to(cuda))[:, 0].double()
            forward = ours(feats_cuda, counts).double()
            print(
                f"{name:20s} module {_error(module, reference):.1e}, ecapa_forward "
                f"{_error(forward, reference):.1e}, between them {_error(forward, module):.1e}"
                f"  ({state})"
            )


_FLAGS = {"cudnn": torch.backends.cudnn, "matmul": torch.backends.cuda.matmul}


def _error(got: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest absolute difference, relative to the reference's largest magnitude."""
    return float((got - reference).abs().max() / reference.abs().max())


if __name__ == "__main__":
    main()
