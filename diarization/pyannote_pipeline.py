"""The seed pipeline: pyannote.audio's SpeakerDiarization on local weights.

pyannote/segmentation (2022.07) on 5 s windows every 0.5 s, ECAPA-TDNN embeddings
of each (window, local speaker) pair, agglomerative clustering, with the published
pyannote/speaker-diarization@2.1 hyper-parameters. This module loads both models
from `weights/` (it never touches the network), builds the pipeline
(`pyannote_stages`) for a device, and runs it on a waveform in memory
(`PyannotePipeline`: samples in, `RawDiarization` out).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pyannote.audio import Model
from pyannote.audio.pipelines import SpeakerDiarization
from pyannote.audio.pipelines.speaker_verification import SpeechBrainPretrainedSpeakerEmbedding
from pyannote.core import Annotation, SlidingWindowFeature

from diarization.audio import (
    AudioDecodeError,
    DecodingAudio,
    FFmpegNotFoundError,
    decode_audio,
)
from diarization.precision import (
    AUTO_TF32_TOLERANCE,
    DEFAULT_PRECISION,
    check_precision,
    embedding_deviation,
)
from diarization.pyannote_stages import (
    FastSpeakerDiarization,
    SinglePassSpeakerDiarization,
    StockSpeakerDiarization,
)
from diarization.schema import InputError, RawDiarization, SpeakerCount, Turn, WindowEmbeddings
from diarization.weights import ECAPA_FILES, FETCH_COMMAND, WeightsError, WeightsLayout

logger = logging.getLogger(__name__)

#: pyannote/speaker-diarization@2.1's tuned hyper-parameters.
HYPERPARAMETERS = {
    "segmentation": {"threshold": 0.4442333667381752, "min_duration_off": 0.5817029604921046},
    "clustering": {"method": "centroid", "threshold": 0.7153814381597874, "min_cluster_size": 15},
}
DEFAULT_CLUSTERING_THRESHOLD = HYPERPARAMETERS["clustering"]["threshold"]
#: Embedding batch size on a CPU. ECAPA's activations for 32 windows of 5 s overflow
#: the caches: on 2 cores, 93 embeddings took 18.8 s in batches of 32, 11.6-11.9 s in
#: batches of 2-4 and 13.2 s one by one (2026-11-25).
CPU_EMBEDDING_BATCH_SIZE = 4
#: Embedding batch size on a GPU (stock's is 32; the values do not depend on it,
#: `exact_embeddings`). 1 h on an H200, exact fp32: embeddings 5.37 s in batches of
#: 32, 4.70 s of 64 (peak GPU 2.4 GB allocated), 4.39 s of 128 (4.3 GB, over the 4 GB
#: bound); the same embeddings to 3e-7 (scripts/benchmark.py, 2026-11-26).
GPU_EMBEDDING_BATCH_SIZE = 64
#: Segmentation batch size on a GPU. Each window's scores do not depend on the rest
#: of its batch (on the CPU the same at 7, 32 and 256 to 1e-7, tested), and the
#: model's LSTM steps through a window's 293 frames one after the other whatever
#: the batch: 1 h on an H200 took 2.27 s in batches of 32, 1.57 s of 128 and 1.32 s
#: of 256, every score the same (scripts/segmentation_speed.py, 2026-11-26). CPUs
#: keep stock's 32: no faster there.
GPU_SEGMENTATION_BATCH_SIZE = 256

Progress = Callable[[str, float], None]


def pick_device(name: str | None = None) -> torch.device:
    """`name` as a torch device; None picks the first GPU when there is one, else the CPU."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class LocalSpeechBrainEmbedding(SpeechBrainPretrainedSpeakerEmbedding):
    """pyannote's SpeechBrain ECAPA wrapper, loaded from a local folder only.

    pyannote's own loader resolves `pretrained_path` from hyperparams.yaml (a hub id
    in the published file) and links files into a shared cache whose stale links
    survive a change of folder. This one points `pretrained_path` at the folder and
    reads the files where they are.
    """

    def __init__(self, folder: Path, device: torch.device):
        # Skip the parent's __init__: it would load from the hub. Set what it sets.
        super(SpeechBrainPretrainedSpeakerEmbedding, self).__init__()
        self.embedding = str(folder)
        self.revision = None
        self.use_auth_token = None
        self.device = device
        self.classifier_ = self._load(device)

    def _load(self, device: torch.device):
        from speechbrain.inference.speaker import EncoderClassifier
        from speechbrain.utils.fetching import LocalStrategy

        folder = Path(self.embedding)
        return EncoderClassifier.from_hparams(
            source=str(folder),
            savedir=str(folder),
            overrides={"pretrained_path": str(folder)},
            local_strategy=LocalStrategy.NO_LINK,
            run_opts={"device": device},
        )

    def to(self, device: torch.device):
        if device == self.device:
            return self
        self.classifier_ = self._load(device)
        self.device = device
        return self


def _check_checkpoint(path: Path) -> None:
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling or zip error means a damaged file
        raise WeightsError(
            f"weight file {path} is unreadable ({type(e).__name__}: {e}); "
            f"fetch it again with `{FETCH_COMMAND}`"
        ) from e


def load_models(
    layout: WeightsLayout,
    device: torch.device,
    stock: bool = False,
    single_pass: bool = False,
    precision: str = "fp32",
) -> SpeakerDiarization:
    """Load both models from `layout` and build the pyannote pipeline on `device`.

    `stock=True` keeps pyannote's own embedding stage (for side-by-side benchmarks);
    `single_pass=True` uses the approximate single-pass embeddings
    (`SinglePassSpeakerDiarization`). The default is the exact fast stage.
    `precision` says how the networks compute on a GPU (`diarization.precision`);
    stock pyannote only has fp32.

    Raises:
        WeightsError: a file is missing or unreadable; the message names it.
    """
    layout.check()
    from pyannote.audio.core.task import Problem, Resolution, Specifications

    # torch >= 2.6 loads weights only; pyannote checkpoints pickle these classes.
    torch.serialization.add_safe_globals([Specifications, Problem, Resolution])
    for name in ECAPA_FILES:
        if name.endswith(".ckpt"):
            _check_checkpoint(layout.embedding / name)
    _quiet_loggers("lightning", "lightning.pytorch", "lightning_fabric", "pytorch_lightning")
    printed = io.StringIO()
    # pyannote prints "Model was trained with pyannote.audio 0.0.1 ..." for the
    # 2022.07 checkpoint, and torchaudio warns about its own deprecations: expected
    # and harmless here, so they go to the debug log instead of the user's console.
    with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
        warnings.simplefilter("ignore")
        try:
            segmentation = Model.from_pretrained(str(layout.segmentation), map_location=device)
        except Exception as e:
            raise WeightsError(
                f"weight file {layout.segmentation} is unreadable "
                f"({type(e).__name__}: {e}); fetch it again with `{FETCH_COMMAND}`"
            ) from e
        try:
            embedding = LocalSpeechBrainEmbedding(layout.embedding, device)
        except Exception as e:
            raise WeightsError(
                f"could not load the ECAPA model in {layout.embedding} "
                f"({type(e).__name__}: {e}); fetch it again with `{FETCH_COMMAND}`"
            ) from e
        if stock and single_pass:
            raise ValueError("stock pyannote has no single-pass embeddings")
        if stock and check_precision(precision) != "fp32":
            raise ValueError("stock pyannote computes in fp32 only")
        kind = (
            StockSpeakerDiarization
            if stock
            else SinglePassSpeakerDiarization
            if single_pass
            else FastSpeakerDiarization
        )
        pipeline = kind(segmentation, embedding)
        pipeline.instantiate(HYPERPARAMETERS)
        pipeline.to(device)
        if not stock:
            pipeline.precision = check_precision(precision)
        if not stock and device.type == "cpu":
            pipeline.embedding_batch_size = CPU_EMBEDDING_BATCH_SIZE
        if not stock and device.type == "cuda":
            pipeline.segmentation_batch_size = GPU_SEGMENTATION_BATCH_SIZE
            pipeline.embedding_batch_size = GPU_EMBEDDING_BATCH_SIZE
    if printed.getvalue():
        logger.debug("while loading: %s", printed.getvalue().strip())
    return pipeline


#: Seconds of audio `warm_up` runs the pipeline on.
WARM_UP_SECONDS = 10.0
#: Real speech that `settle_precision` compares TF32 with fp32 on, where it is (the
#: example: two LibriSpeech speakers, 41 s); noise otherwise.
CHECK_SPEECH = Path(__file__).resolve().parent.parent / "examples" / "conversation.mp3"


def warm_up(
    pipeline: SpeakerDiarization,
    seconds: float = WARM_UP_SECONDS,
    waveform: np.ndarray | None = None,
) -> np.ndarray:
    """Run `pipeline` once on `waveform` (16 kHz mono), by default on `seconds` of low
    noise, with every local speaker taken as active, so that every stage runs whatever
    the weights find in it. On a GPU the first call of a process loads CUDA's kernels,
    creates cuBLAS's and cuDNN's handles and plans the FFTs; run at load, that no
    longer lands on the first request. Any pyannote `SpeakerDiarization` (stock too);
    its state is as before afterwards.

    Returns:
        (num_chunks, local_speakers, dimension) the embeddings the run computed.
    """
    if waveform is None:
        waveform = np.random.default_rng(0).normal(0.0, 0.01, round(seconds * 16000))
    samples = torch.from_numpy(np.asarray(waveform, dtype=np.float32))[None]
    file = {"waveform": samples, "sample_rate": 16000}
    own = vars(pipeline).get("get_segmentations")  # one set on this pipeline, if any
    segment = pipeline.get_segmentations
    embedded = []

    def everyone_active(file, hook=None):
        scores = segment(file, hook=hook)
        # (num_chunks, num_frames, local_speakers)
        return SlidingWindowFeature(np.ones_like(scores.data), scores.sliding_window)

    def hook(step, artifact, file=None, total=None, completed=None):
        if step == "embeddings" and total is None:
            embedded.append(artifact)

    pipeline.get_segmentations = everyone_active
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            pipeline({**file, "uri": "warm-up"}, hook=hook)
    finally:
        if own is None:
            del pipeline.get_segmentations
        else:
            pipeline.get_segmentations = own
    return embedded[-1]


def settle_precision(pipeline: SpeakerDiarization, seconds: float = WARM_UP_SECONDS) -> float:
    """Choose the embedding stage's precision of a pipeline loaded with precision
    "auto" on a GPU (`diarization.precision`), from its own weights: the warm-up
    (`warm_up`) runs once in strict fp32 and once with the embedding stage in TF32
    (which loads TF32's kernels too), on the real speech of `CHECK_SPEECH` (else on
    `seconds` of noise), and TF32 stays if every embedding of the second run is within
    `AUTO_TF32_TOLERANCE` of the first's (1 - cosine). Logs the choice.

    Returns:
        The largest 1 - cosine measured (`embedding_deviation`).
    """
    speech, checked_on = _check_speech()
    pipeline.tf32_embeddings = False
    strict = warm_up(pipeline, seconds, speech)
    pipeline.tf32_embeddings = True
    try:
        fast = warm_up(pipeline, seconds, speech)
    finally:
        pipeline.tf32_embeddings = False  # unless the check below keeps it
    deviation = embedding_deviation(strict, fast)
    pipeline.tf32_embeddings = deviation <= AUTO_TF32_TOLERANCE
    if pipeline.tf32_embeddings:
        logger.info(
            "embeddings in TF32 on the GPU: within %.1e of strict fp32 on %s (1 - cosine, "
            "tolerance %.0e)",
            deviation,
            checked_on,
            AUTO_TF32_TOLERANCE,
        )
    else:
        logger.warning(
            "embeddings in strict fp32: TF32 moved them by %.1e on %s (1 - cosine), over "
            "the tolerance of %.0e",
            deviation,
            checked_on,
            AUTO_TF32_TOLERANCE,
        )
    return deviation


def _check_speech() -> tuple[np.ndarray | None, str]:
    """The samples `settle_precision` checks on (None: `warm_up`'s noise) and what they are.

    Real speech is what the service embeds: noise drives the network through other
    activations, so a check on it says less about the requests' embeddings."""
    try:
        speech = decode_audio(CHECK_SPEECH)
    except (AudioDecodeError, FFmpegNotFoundError) as e:  # the check still runs
        logger.warning("precision check on noise: %s could not be read (%s)", CHECK_SPEECH, e)
        return None, "noise"
    return speech, f"{len(speech) / 16000:.0f} s of speech ({CHECK_SPEECH.name})"


def warm_up_as_loaded(pipeline: SpeakerDiarization, seconds: float = WARM_UP_SECONDS):
    """What loading runs on a GPU: `settle_precision` under precision "auto" on a GPU
    (returning its deviation), else `warm_up` (returning None)."""
    if getattr(pipeline, "precision", None) == "auto" and pipeline.device.type == "cuda":
        return settle_precision(pipeline, seconds)
    warm_up(pipeline, seconds)
    return None


def _quiet_loggers(*names: str) -> None:
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)


class PyannotePipeline:
    """Runs the seed pipeline on a waveform and returns what post-processing needs."""

    name = "pyannote"
    embedding_model = "speechbrain/spkrec-ecapa-voxceleb"
    #: Takes a `DecodingAudio` and segments it while it decodes.
    reads_while_decoding = True

    def __init__(self, pipeline: SpeakerDiarization):
        self._pipeline = pipeline
        if isinstance(pipeline, SinglePassSpeakerDiarization):
            self.embedding_model += " (single-pass, approximate)"
        precision = getattr(pipeline, "precision", "fp32")
        if precision == "auto":
            precision = "tf32" if pipeline.tf32_embeddings else "fp32"
        if precision != "fp32" and pipeline.device.type == "cuda":
            self.embedding_model += f" ({precision} on the GPU)"
        #: Wall seconds of each stage of the last call.
        self.last_stage_seconds: dict[str, float] = {}

    @classmethod
    def load(
        cls,
        layout: WeightsLayout,
        device: torch.device | None = None,
        single_pass: bool = False,
        precision: str = DEFAULT_PRECISION,
    ) -> PyannotePipeline:
        """Load from a weights folder; `device` defaults to `pick_device()`;
        `single_pass` picks the approximate embeddings, `precision` how the networks
        compute on a GPU (see `load_models`). On a GPU the pipeline is warmed up
        (`warm_up`), and under "auto" its embedding precision chosen on the way
        (`settle_precision`)."""
        device = device or pick_device()
        pipeline = load_models(layout, device, single_pass=single_pass, precision=precision)
        if device.type == "cuda":
            started = time.perf_counter()
            warm_up_as_loaded(pipeline)
            logger.info("warmed up on the GPU in %.2f s", time.perf_counter() - started)
        return cls(pipeline)

    @property
    def device(self) -> torch.device:
        """Where the models run."""
        return self._pipeline.device

    @property
    def embedding_dimension(self) -> int:
        """Length of a speaker embedding (192 for ECAPA)."""
        return int(self._pipeline._embedding.dimension)

    def __call__(
        self,
        waveform: np.ndarray | DecodingAudio,
        sample_rate: int,
        speakers: SpeakerCount = SpeakerCount(),
        progress: Progress | None = None,
        clustering_threshold: float | None = None,
    ) -> RawDiarization:
        """Diarize a mono float32 waveform held in memory, or being decoded.

        Args:
            waveform: (num_samples,) mono samples, or audio being decoded (`open_audio`):
                the faster pipeline's segmentation runs on it while it decodes (the
                same result as on its waveform), the stock one waits for the end.
            sample_rate: samples per second of `waveform`.
            speakers: known number or bounds of speakers.
            progress: called as progress(stage, fraction_done) while it runs.
            clustering_threshold: distance at which the agglomerative clustering stops
                merging (unit-normalised embeddings, centroid linkage; 0 < t < 2). Lower
                splits speakers more readily. None keeps the tuned 0.7154. Ignored when
                `speakers.num_speakers` is set.

        Raises:
            InputError: `clustering_threshold` is outside (0, 2).
        """
        if clustering_threshold is not None and not 0 < clustering_threshold < 2:
            raise InputError(
                f"clustering_threshold must be between 0 and 2 for the pyannote pipeline "
                f"(default {DEFAULT_CLUSTERING_THRESHOLD:.4f}), got {clustering_threshold}"
            )
        clustering = self._pipeline.clustering
        clustering.threshold = clustering_threshold or DEFAULT_CLUSTERING_THRESHOLD
        try:
            return self._run(waveform, sample_rate, speakers, progress)
        finally:
            clustering.threshold = DEFAULT_CLUSTERING_THRESHOLD

    def _run(self, waveform, sample_rate, speakers, progress) -> RawDiarization:
        captured: dict[str, object] = {}
        timer = _StageTimer(progress)

        def hook(step, artifact, file=None, total=None, completed=None):
            if step in ("segmentation", "embeddings") and total is None:
                captured[step] = artifact
            timer(step, completed, total)

        decoding = isinstance(waveform, DecodingAudio)
        if (
            decoding
            and not waveform.finished
            and isinstance(self._pipeline, FastSpeakerDiarization)
        ):
            file = {"decoding": waveform, "sample_rate": sample_rate, "uri": "audio"}
        else:
            file = _waveform_file(waveform.waveform() if decoding else waveform, sample_rate)
        with torch.inference_mode(), warnings.catch_warnings():
            # pyannote warns when the count it finds is outside the bounds asked
            # for (too little audio); the result still says how many it found.
            warnings.simplefilter("ignore", UserWarning)
            annotation, centroids = self._pipeline(
                file,
                num_speakers=speakers.num_speakers,
                min_speakers=speakers.min_speakers,
                max_speakers=speakers.max_speakers,
                return_embeddings=True,
                hook=hook,
            )
        timer.finish()
        self.last_stage_seconds = dict(timer.seconds)
        duration = file["waveform"].shape[-1] / sample_rate
        return _raw_result(annotation, centroids, captured, duration, self.embedding_dimension)


def _waveform_file(waveform: np.ndarray, sample_rate: int) -> dict:
    return {
        "waveform": torch.from_numpy(np.require(waveform, np.float32, ["C", "W"]))[None],
        "sample_rate": sample_rate,
        "uri": "audio",
    }


def _raw_result(
    annotation: Annotation,
    centroids: np.ndarray,
    captured: dict[str, object],
    duration: float,
    dimension: int,
) -> RawDiarization:
    turns = [
        Turn(float(segment.start), float(segment.end), str(label))
        for segment, _, label in annotation.itertracks(yield_label=True)
    ]
    segmentations = captured.get("segmentation")
    embeddings = captured.get("embeddings")
    if isinstance(segmentations, SlidingWindowFeature) and isinstance(embeddings, np.ndarray):
        window = segmentations.sliding_window
        starts = np.array([window[i].start for i in range(len(embeddings))], dtype=np.float64)
        windows = WindowEmbeddings(starts, float(window.duration), embeddings)
    else:  # no speech at all: pyannote stops before the embeddings
        windows = WindowEmbeddings(np.zeros(0), 0.0, np.zeros((0, 1, dimension)))
    labels = annotation.labels()
    return RawDiarization(
        turns=turns,
        windows=windows,
        centroids={label: np.asarray(centroids[k]) for k, label in enumerate(labels)},
        duration=duration,
    )


class _StageTimer:
    """Turns pyannote's hook calls into one timing log line per stage, and progress calls.

    pyannote calls the hook with `total` while a stage runs and without it once the
    stage is done; a stage's time runs from the end of the previous one.
    """

    # pyannote reports clustering (which it does not hook) under its next step.
    _NAMES = {"discrete_diarization": "clustering"}

    def __init__(self, progress: Progress | None):
        self._progress = progress
        self._mark = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def __call__(self, stage: str, completed: int | None, total: int | None) -> None:
        stage = self._NAMES.get(stage, stage)
        if total is not None:
            if self._progress is not None and total:
                self._progress(stage, (completed or 0) / total)
            return
        self._lap(stage)
        if self._progress is not None:
            self._progress(stage, 1.0)

    def _lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._mark
        logger.info("stage %s: %.2f s", stage, now - self._mark)
        self._mark = now

    def finish(self) -> None:
        """Close the last stage (building the annotation)."""
        self._lap("annotation")
