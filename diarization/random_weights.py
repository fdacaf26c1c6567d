"""Randomly initialised models saved in the exact published on-disk layouts.

The real weights are gated downloads that cannot be fetched on every machine (CI
has no Hugging Face access). Tests and the benchmark use these stand-ins instead:
same architectures, same file names, same checkpoint structure, random values.
They exercise the real loading code, never the real accuracy.
"""

from __future__ import annotations

from pathlib import Path

import torch

from diarization.weights import WeightsLayout

# pyannote/segmentation@2022.07 was trained with these hyper-parameters; the
# versions are those written in the published checkpoint.
_SEGMENTATION_HPARAMS = {
    "sincnet": {"stride": 10, "sample_rate": 16000},
    "lstm": {
        "hidden_size": 128,
        "num_layers": 4,
        "bidirectional": True,
        "monolithic": True,
        "dropout": 0.5,
        "batch_first": True,
    },
    "linear": {"hidden_size": 128, "num_layers": 2},
    "sample_rate": 16000,
    "num_channels": 1,
}
_PUBLISHED_VERSIONS = {"torch": "1.10.0+cu102", "pyannote.audio": "0.0.1"}

# speechbrain/spkrec-ecapa-voxceleb's hyperparams.yaml as published: note the
# hub id in `pretrained_path`, which the loader overrides with the local folder.
ECAPA_HYPERPARAMS = """\
# ############################################################################
# Model: ECAPA big for Speaker verification
# ############################################################################

# Feature parameters
n_mels: 80

# Pretrain folder (HuggingFace)
pretrained_path: speechbrain/spkrec-ecapa-voxceleb

# Output parameters
out_n_neurons: 7205

# Model params
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [1024, 1024, 1024, 1024, 3072]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 128
    lin_neurons: 192

classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 192
    out_neurons: !ref <out_n_neurons>

mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""
_NUM_TRAINING_SPEAKERS = 7205


def write_random_weights(root: Path, seed: int = 0) -> WeightsLayout:
    """Write random-valued models in the published layouts under `root`.

    Args:
        root: folder to fill; it becomes a valid weights folder.
        seed: torch seed, so that two calls with one seed give equal files.

    Returns:
        The layout of the written folder.
    """
    layout = WeightsLayout(Path(root))
    torch.manual_seed(seed)
    _write_segmentation(layout.segmentation)
    _write_ecapa(layout.embedding)
    return layout


def _write_segmentation(path: Path) -> None:
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.segmentation import PyanNet

    hparams = _SEGMENTATION_HPARAMS
    model = PyanNet(sincnet=hparams["sincnet"], lstm=hparams["lstm"], linear=hparams["linear"])
    model.specifications = Specifications(
        problem=Problem.MULTI_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=5.0,
        warm_up=(0.0, 0.0),
        classes=["speaker#1", "speaker#2", "speaker#3"],
        permutation_invariant=True,
    )
    model.build()
    checkpoint = {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": "1.5.4",
        "state_dict": model.state_dict(),
        "hyper_parameters": hparams,
    }
    model.on_save_checkpoint(checkpoint)
    checkpoint["pyannote.audio"]["versions"] = dict(_PUBLISHED_VERSIONS)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)


#: speechbrain/spkrec-ecapa-voxceleb's ECAPA_TDNN arguments (after its 80 fbank features)
ECAPA_LAYOUT = {
    "channels": [1024, 1024, 1024, 1024, 3072],
    "kernel_sizes": [5, 3, 3, 3, 1],
    "dilations": [1, 2, 3, 4, 1],
    "attention_channels": 128,
    "lin_neurons": 192,
}


def _write_ecapa(folder: Path) -> None:
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hyperparams.yaml").write_text(ECAPA_HYPERPARAMS)
    ecapa = ECAPA_TDNN(80, **ECAPA_LAYOUT)
    torch.save(ecapa.state_dict(), folder / "embedding_model.ckpt")
    classifier = Classifier(input_size=192, out_neurons=_NUM_TRAINING_SPEAKERS)
    torch.save(classifier.state_dict(), folder / "classifier.ckpt")
    # speechbrain 1.0.3 reads the legacy InputNormalization layout.
    torch.save(
        {
            "count": 1000,
            "glob_mean": torch.zeros(192),
            "glob_std": torch.ones(192),
            "spk_dict_mean": {},
            "spk_dict_std": {},
            "spk_dict_count": {},
        },
        folder / "mean_var_norm_emb.ckpt",
    )
    lines = [f"'id{10001 + i}' => {i}" for i in range(_NUM_TRAINING_SPEAKERS)]
    lines += ["================", "'starting_index' => 0"]
    (folder / "label_encoder.txt").write_text("\n".join(lines) + "\n")


__all__ = ["ECAPA_HYPERPARAMS", "ECAPA_LAYOUT", "write_random_weights"]
