"""pyannote's SpeakerDiarization built from loaded models: stock, and made faster.

`StockSpeakerDiarization` is pyannote's pipeline unchanged (the reference the
benchmarks and tests compare with). `FastSpeakerDiarization` is the same pipeline
with the same answer: its embedding stage skips what stock throws away and embeds
each pair as in its stock batch (`exact_embeddings`, `ecapa_forward`), its
binarization, aggregation and annotation work on arrays instead of looping over
frames (`pyannote_frames`), its clustering is bounded in memory, and out of GPU
memory a stage retries with smaller batches, then on the CPU.
`SinglePassSpeakerDiarization` swaps in the approximate single-pass embeddings
(`ecapa_single_pass`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from pyannote.audio import Model
from pyannote.audio.core.inference import Inference
from pyannote.audio.core.io import Audio
from pyannote.audio.pipelines import SpeakerDiarization, speaker_diarization
from pyannote.audio.pipelines.clustering import AgglomerativeClustering
from pyannote.audio.pipelines.speaker_verification import SpeechBrainPretrainedSpeakerEmbedding
from pyannote.audio.utils.reproducibility import fix_reproducibility
from pyannote.audio.utils.signal import binarize
from pyannote.core import SlidingWindowFeature

from diarization import exact_embeddings, host_memory
from diarization.audio import DecodingAudio
from diarization.ecapa_forward import EcapaForward, FbankFeatures
from diarization.ecapa_single_pass import SinglePassEcapa
from diarization.fast_clustering import BoundedAgglomerativeClustering
from diarization.precision import autocast_type, precision_scope
from diarization.pyannote_frames import (
    FastBinarize,
    aggregate_whole_numbers,
    binarize_in_blocks,
)
from diarization.streamed_segmentation import slide_while_decoding, streams

logger = logging.getLogger(__name__)

#: Window step as a fraction of the 5 s window (0.5 s), as in 2.1.
SEGMENTATION_STEP = 0.1
#: Stock's batch size, as the reference calls it: windows per segmentation batch, pairs
#: per embedding batch (each pair is embedded as in its stock batch, whatever ours).
BATCH_SIZE = 32
#: Embedding batches queued on the device ahead of the one whose results are fetched.
IN_FLIGHT_BATCHES = 2
#: On a GPU, embedding batches pad to a multiple of this (0.25 s) where their pairs
#: allow it, so that cuDNN and cuFFT build plans for a few widths and reuse them.
GPU_WIDTH_QUANTUM_SAMPLES = 4000


class StockSpeakerDiarization(SpeakerDiarization):
    """pyannote's SpeakerDiarization, unchanged, built from loaded models instead of hub ids."""

    def __init__(self, segmentation: Model, embedding: SpeechBrainPretrainedSpeakerEmbedding):
        # The parent loads its embedding model from a string; oracle clustering is the
        # one mode in which it loads none. Install ours and the real clustering after.
        super().__init__(
            segmentation=segmentation,
            segmentation_step=SEGMENTATION_STEP,
            embedding=embedding.embedding,
            embedding_exclude_overlap=True,
            clustering="OracleClustering",
            embedding_batch_size=BATCH_SIZE,
            segmentation_batch_size=BATCH_SIZE,
        )
        self.klustering = "AgglomerativeClustering"
        self._embedding = embedding
        self._audio = Audio(sample_rate=embedding.sample_rate, mono="downmix")
        self.clustering = AgglomerativeClustering(metric=embedding.metric)


class FastSpeakerDiarization(StockSpeakerDiarization):
    """The same pipeline with a faster embedding stage and the same answer.

    Stock pyannote embeds every (window, local speaker) pair in window order and
    throws away the embeddings of pairs with too little speech afterwards. Here
    those pairs get their NaN without running the model, and the others are
    embedded as stock embeds them: each as in its stock batch (its frames counted
    from stock's width, and padded to it or past ECAPA's reach), with the batch cut
    on the model's device from inputs put there once (`exact_embeddings`), ECAPA
    computed with fewer operations (`ecapa_forward`); only the pairs it shares the
    model call with differ. The host stages between the models work on arrays
    (`pyannote_frames`). On the
    CPU the model stages reuse their temporaries' memory (`host_memory`). The
    clustering's memory is bounded and its linkage faster (`fast_clustering`), with
    the same dendrogram.

    Out of GPU memory, a stage retries with half the batch, down to one item,
    then on the CPU for the rest of the call; each step logs a warning.
    """

    def __init__(self, segmentation: Model, embedding: SpeechBrainPretrainedSpeakerEmbedding):
        super().__init__(segmentation, embedding)
        self.clustering = BoundedAgglomerativeClustering(metric=embedding.metric)
        #: How the networks compute on a GPU (`diarization.precision`); fp32 is stock's.
        self.precision = "fp32"
        #: Under "auto": whether the embedding stage computes in TF32, which only a
        #: check on the loaded weights sets (`pyannote_pipeline.settle_precision`).
        self.tf32_embeddings = False
        #: Stock's embedding batch size: each pair is padded as stock pads it in its
        #: batch (`exact_embeddings.stock_widths`), whatever batch it is embedded in.
        self.stock_batch_size = BATCH_SIZE
        #: Whether pairs of different stock widths share an embedding batch, where the
        #: model allows it (`exact_embeddings.mixes_widths`; the same embeddings). Off,
        #: those padded to their stock width are batched by it (fewer pairs per batch:
        #: scripts/benchmark.py --grouped-widths measures what mixing saves).
        self.mixed_width_batches = True
        self._ecapa: EcapaForward | None = None
        self._fbank: tuple | None = None

    def _ecapa_forward(self) -> EcapaForward:
        """The embedding model's forward pass (`ecapa_forward`), the same object for as
        long as the model is (`precision_scope` wraps it for the call)."""
        model = self._embedding.classifier_.mods.embedding_model
        if self._ecapa is None or self._ecapa.model is not model:
            self._ecapa = EcapaForward(model)
        return self._ecapa

    def _features(self) -> FbankFeatures:
        """The embedding model's features (`FbankFeatures`) on its
        device, the same object for as long as the classifier stays there."""
        classifier = self._embedding.classifier_
        key = (classifier, classifier.device)
        if self._fbank is None or self._fbank[0] != key:
            self._fbank = (
                key,
                FbankFeatures(classifier.mods.compute_features, classifier.device),
            )
        return self._fbank[1]

    def apply(self, file, *args, **kwargs):
        devices = (self._segmentation.device, self._embedding.device)
        batch_size = self._segmentation.batch_size
        # pyannote's apply calls the `binarize` its module imported: for this call,
        # the same function applied block by block (see `binarize_in_blocks`).
        speaker_diarization.binarize = binarize_in_blocks
        networks = [self._segmentation.model, self._ecapa_forward()]
        try:
            # "auto" runs the call in strict fp32, its embedding stage in its own scope
            with precision_scope(self.precision, devices[1], networks):
                return super().apply(file, *args, **kwargs)
        finally:
            speaker_diarization.binarize = binarize
            # the GPU memory this call cached goes back: the next call's segmentation
            # would otherwise come on top of this call's embedding blocks
            _release_gpu_memory()
            # undo this call's out-of-memory fallbacks for the next call
            self._segmentation.batch_size = batch_size
            if self._segmentation.device != devices[0]:
                self._segmentation.to(devices[0])
            if self._embedding.device != devices[1]:
                self._embedding.to(devices[1])

    def _embedding_stage_precision(self):
        """The embedding stage's own precision scope: TF32 under "auto" once checked
        (`tf32_embeddings`); under any other mode the call's scope covers the stage."""
        mode = "tf32" if self.precision == "auto" and self.tf32_embeddings else "fp32"
        return precision_scope(mode, self._embedding.device, [])

    def __call__(self, file, **kwargs):
        """As pyannote's, and a file may be ``{"decoding": DecodingAudio, "sample_rate":
        ..., "uri": ...}``: audio still being decoded, which the segmentation reads as it
        comes (`streamed_segmentation`) and leaves in ``file["waveform"]`` for the
        stages after it. pyannote's own call would refuse a file without a waveform."""
        if isinstance(file, Mapping) and "decoding" in file:
            if not self.instantiated:
                raise RuntimeError("instantiate the pipeline before applying it")
            fix_reproducibility(self.device)
            return self.apply(file, **kwargs)
        return super().__call__(file, **kwargs)

    def get_segmentations(self, file, hook=None):
        audio = self._slidable_audio(file)
        if audio is not None:
            segmentations = self._segment_while_decoding(audio, hook)
            if "waveform" not in file:
                file["waveform"] = torch.from_numpy(audio.waveform())[None]
            if segmentations is not None:
                return segmentations
        inference = self._segmentation
        while True:
            try:
                with self._host_memory(inference.device):
                    audio_there = self._audio_on(file, inference.device)
                    segmentations = super().get_segmentations(audio_there, hook=hook)
                # the GPU memory this stage cached (the audio, the batches) goes back,
                # so that the embedding stage's blocks do not come on top of it
                audio_there = None
                _release_gpu_memory()
                return segmentations
            except (MemoryError, torch.OutOfMemoryError):
                # pyannote turns CUDA out-of-memory into MemoryError
                audio_there = None  # the audio's copy on the GPU: freed with the rest
                _release_gpu_memory()
                if inference.batch_size > 1:
                    inference.batch_size //= 2
                    logger.warning(
                        "segmentation ran out of memory: retrying with batch size %d",
                        inference.batch_size,
                    )
                elif inference.device.type != "cpu":
                    logger.warning("segmentation ran out of memory: retrying on the CPU")
                    inference.to(torch.device("cpu"))
                else:
                    raise

    @staticmethod
    def _slidable_audio(file) -> DecodingAudio | None:
        """What `slide_while_decoding` reads: the audio being decoded (taken out of
        the file), or a mono float32 waveform on the host, as done decoding. On a GPU
        the latter's windows are then cut there from each batch's span of audio (8 MB
        for 256 windows) instead of from the whole audio copied there first
        (`_audio_on`: 0.9 GB for 4 hours); the same windows either way."""
        if not isinstance(file, Mapping):
            return None
        if "decoding" in file:
            return file.pop("decoding")
        waveform = file.get("waveform")
        if (
            isinstance(waveform, torch.Tensor)
            and waveform.device.type == "cpu"
            and waveform.dtype == torch.float32
            and waveform.ndim == 2
            and len(waveform) == 1
            and isinstance(file.get("sample_rate"), int)
        ):
            return DecodingAudio(None, file["sample_rate"], waveform=waveform[0].numpy())
        return None

    def _segment_while_decoding(self, audio, hook):
        """`slide_while_decoding`, or None where it cannot run (the waveform then goes
        to the stock inference, which retries out of memory with smaller batches)."""
        inference = self._segmentation
        if not streams(inference, audio):
            return None
        if hook is not None:
            hook = functools.partial(hook, "segmentation", None)
        try:
            with self._host_memory(inference.device):
                segmentations = slide_while_decoding(inference, audio, hook)
        except (MemoryError, torch.OutOfMemoryError):
            _release_gpu_memory()
            logger.warning("segmentation ran out of memory: retrying after the decoding")
            return None
        _release_gpu_memory()
        return segmentations

    @staticmethod
    def _audio_on(file, device: torch.device):
        """`file` with its in-memory audio on `device` when that is a GPU, for the
        segmentation's retry out of memory (`slide_while_decoding` copies each batch's
        span instead, 8 MB for 256 windows): pyannote's inference cuts its
        overlapping windows from the audio it is given and copies each batch to the
        model's device, so from the
        host a batch of 256 five-second windows is 82 MB gathered and copied for
        every 8 MB of new audio; from the GPU nothing is copied after the audio
        (1 hour: 230 MB once instead of 2.3 GB). The windows' values are the same.
        Without GPU memory for it, the audio stays where it is."""
        waveform = file.get("waveform") if isinstance(file, Mapping) else None
        if device.type != "cuda" or waveform is None or waveform.device == device:
            return file
        try:
            return {**file, "waveform": waveform.to(device)}
        except torch.OutOfMemoryError:
            _release_gpu_memory()
            logger.warning("no GPU memory for the audio: segmentation copies each batch")
            return file

    @staticmethod
    def speaker_count(binarized_segmentations, frames, warm_up=(0.1, 0.1)):
        """pyannote's `speaker_count` with `aggregate_whole_numbers`."""
        trimmed = Inference.trim(binarized_segmentations, warm_up=warm_up)
        count = aggregate_whole_numbers(
            np.sum(trimmed, axis=-1, keepdims=True), frames, missing=0.0
        )
        count.data = np.rint(count.data).astype(np.uint8)
        return count

    @staticmethod
    def to_diarization(segmentations, count):
        """pyannote's `to_diarization` with its loop over frames as array operations:
        each frame marks its `count` most active speakers in the order of the same
        `np.argsort` (ties included). 1 hour: 0.58 s -> 0.26 s on 2 cores, most of the rest
        the aggregation (tested equal)."""
        activations = aggregate_whole_numbers(
            segmentations, count.sliding_window, missing=0.0, skip_average=True
        )
        _, num_speakers = activations.data.shape
        max_speakers_per_frame = np.max(count.data)
        if num_speakers < max_speakers_per_frame:
            activations.data = np.pad(
                activations.data, ((0, 0), (0, max_speakers_per_frame - num_speakers))
            )
        extent = activations.extent & count.extent
        activations = activations.crop(extent, return_data=False)
        count = count.crop(extent, return_data=False)
        sorted_speakers = np.argsort(-activations, axis=-1)
        binary = np.zeros_like(activations.data)
        num_frames = min(len(count.data), len(sorted_speakers))  # pyannote zips them
        # (frames, speakers) True for each frame's first `count` ranks
        ranked = np.arange(binary.shape[1]) < count.data[:num_frames, :1].astype(np.int64)
        frames, ranks = np.nonzero(ranked)
        binary[frames, sorted_speakers[frames, ranks]] = 1.0
        return SlidingWindowFeature(binary, activations.sliding_window)

    @staticmethod
    def to_annotation(discrete_diarization, min_duration_on=0.0, min_duration_off=0.0):
        """pyannote's `to_annotation` with `FastBinarize`."""
        binarize = FastBinarize(
            onset=0.5,
            offset=0.5,
            min_duration_on=min_duration_on,
            min_duration_off=min_duration_off,
        )
        return binarize(discrete_diarization).rename_tracks(generator="string")

    def reconstruct(self, segmentations, hard_clusters, count):
        """pyannote's `reconstruct`, building one float32 array where pyannote builds
        two float64 ones (`np.nan * np.zeros(...)`), a local speaker at a time where
        pyannote loops over windows (7200 windows: 0.11 s -> 0.03 s on 2 cores): the values
        are 0, 1 or NaN, each window's cluster the maximum of its local speakers in
        that cluster, so the result is the same, and on 4 hours of a ten-person
        meeting the temporary shrinks from 1.4 GB to 0.3 GB."""
        data = segmentations.data
        num_chunks, num_frames, local_speakers = data.shape
        num_clusters = np.max(hard_clusters) + 1
        clustered = np.full((num_chunks, num_frames, num_clusters), np.nan, dtype=np.float32)
        # (num_chunks, num_clusters) whether a local speaker has filled it yet
        filled = np.zeros((num_chunks, num_clusters), dtype=bool)
        for speaker in range(local_speakers):
            clusters = hard_clusters[:, speaker]
            # -2: a local speaker that was never active
            chunks = np.flatnonzero(clusters != -2)
            clusters = clusters[chunks]
            # (chunks, num_frames)
            activity = data[chunks, :, speaker]
            before = clustered[chunks, :, clusters]
            clustered[chunks, :, clusters] = np.where(
                filled[chunks, clusters][:, None], np.maximum(before, activity), activity
            )
            filled[chunks, clusters] = True
        clustered = SlidingWindowFeature(clustered, segmentations.sliding_window)
        return self.to_diarization(clustered, count)

    def _embed(self, windows, masks, speech_samples, stock_width, width: int) -> torch.Tensor:
        """Embeddings of one batch (`exact_embeddings.embed`), halving it (then moving to
        the CPU) when out of memory."""
        per_pair = (windows, masks, speech_samples, stock_width)
        try:
            return exact_embeddings.embed(
                self._embedding.classifier_,
                *per_pair,
                width,
                ecapa=self._ecapa_forward(),
                features=self._features(),
            )
        except torch.OutOfMemoryError:
            _release_gpu_memory()
            if len(windows) > 1:
                half = len(windows) // 2
                logger.warning(
                    "embeddings ran out of memory: retrying in batches of %d", len(windows) - half
                )
                first = self._embed(*[t[:half] for t in per_pair], width)
                second = self._embed(*[t[half:] for t in per_pair], width)
                return torch.cat([first.cpu(), second.cpu()])
            if self._embedding.device.type != "cpu":
                logger.warning("embeddings ran out of memory: retrying on the CPU")
                self._embedding.to(torch.device("cpu"))
                return self._embed(*per_pair, width)
            raise

    def _host_memory(self, device: torch.device):
        """Where a model stage runs on the CPU, each batch reuses the heap memory of the
        one before (`host_memory`); on a GPU its tensors are not on the host."""
        if device.type == "cpu":
            return host_memory.freed_memory_reused()
        return contextlib.nullcontext()

    def _window_cutter(self, file, window, chunks: np.ndarray, device: torch.device):
        """`cut(these)`: (len(chunks[these]), num_samples) the windows of `chunks[these]`,
        each as pyannote's `Audio.crop(file, window[c], duration=window.duration,
        mode="pad")` cuts it. On a GPU from the audio put there once
        (`exact_embeddings.windows_on_device`); on the CPU, or without GPU memory for
        the audio, pyannote's crops of the audio in memory (a copy of 4 hours of it
        would raise the peak RSS by 0.9 GB, for under a millisecond per batch of CPU
        work)."""
        if device.type != "cpu":
            try:
                return exact_embeddings.windows_on_device(
                    *self._audio(file), window, chunks, device
                )
            except torch.OutOfMemoryError:
                _release_gpu_memory()
                logger.warning("no GPU memory for the audio: cutting windows on the host")

        def crops(these: slice) -> torch.Tensor:
            duration = window.duration
            return torch.vstack(
                [
                    self._audio.crop(file, window[c], duration=duration, mode="pad")[0]
                    for c in chunks[these]
                ]
            )

        return crops

    def _pairs_to_embed(self, binary_segmentations, exclude_overlap):
        """What both embedding stages start from.

        Returns:
            masks: (num_chunks, local_speakers, num_frames) each pair's frame mask.
            speech: (num_chunks, local_speakers) samples each pair's masked signal keeps.
            pairs: (num_pairs, 2) (chunk, speaker) of the pairs with enough speech.
            embeddings: (num_chunks, local_speakers, dimension) all NaN, to fill in.
        """
        window = binary_segmentations.sliding_window
        num_chunks, num_frames, local_speakers = binary_segmentations.data.shape
        embedding = self._embedding
        masks = _embedding_masks(
            binary_segmentations.data, exclude_overlap, window.duration, embedding
        )
        num_samples = math.floor(window.duration * embedding.sample_rate)
        speech = masks @ _samples_per_frame(num_frames, num_samples)
        pairs = np.argwhere(speech >= embedding.min_num_samples)
        embeddings = np.full((num_chunks, local_speakers, embedding.dimension), np.nan, np.float32)
        return masks, speech, pairs, embeddings

    def get_embeddings(self, file, binary_segmentations, exclude_overlap=False, hook=None):
        with self._embedding_stage_precision():
            return self._exact_embeddings(file, binary_segmentations, exclude_overlap, hook)

    def _exact_embeddings(self, file, binary_segmentations, exclude_overlap, hook):
        window = binary_segmentations.sliding_window
        masks, speech, pairs, embeddings = self._pairs_to_embed(
            binary_segmentations, exclude_overlap
        )
        # Each pair embedded as in its stock batch (`exact_embeddings`): its frames
        # counted from stock's width, and padded to it or past ECAPA's reach.
        # (num_pairs,) each
        speech_samples = speech[pairs[:, 0], pairs[:, 1]].astype(np.int64)
        stock_width = exact_embeddings.stock_widths(speech, self.stock_batch_size)[
            pairs[:, 0], pairs[:, 1]
        ].astype(np.int64)
        on_gpu = self._embedding.device.type == "cuda"
        # Widest first: each batch then fits in GPU memory that the one before freed.
        # (Narrowest first, every batch needed a larger block than any the allocator
        # had cached, and its cache grew to 123 GB on 1 h of audio: H200, 2026-11-25.)
        # (indices into pairs, width) of each batch
        batches = exact_embeddings.plan_batches(
            speech_samples,
            stock_width,
            self.embedding_batch_size,
            exact_embeddings.reach_samples(self._embedding.classifier_),
            GPU_WIDTH_QUANTUM_SAMPLES if on_gpu else 1,
            self.mixed_width_batches
            and exact_embeddings.mixes_widths(self._embedding.classifier_, self._ecapa_forward()),
        )
        if hook is not None:
            hook("embeddings", None, total=len(batches), completed=0)
        if not batches:
            return embeddings
        # Every pair's mask in batch order on the model's device once (on a GPU the audio
        # too: `_window_cutter`), so that a batch's inputs are slices there (stock
        # pyannote crops and copies pair by pair, batch by batch).
        order = np.concatenate([batch for batch, _ in batches])
        chunks, speakers = pairs[order, 0], pairs[order, 1]
        device = self._embedding.classifier_.device
        cut = self._window_cutter(file, window, chunks, device)
        pair_masks = torch.from_numpy(masks[chunks, speakers]).to(device)
        speech_samples, stock_width = (
            torch.from_numpy(values[order]) for values in (speech_samples, stock_width)
        )

        completed = 0

        def fetch(batch: np.ndarray, result: torch.Tensor) -> None:
            nonlocal completed
            embeddings[pairs[batch, 0], pairs[batch, 1]] = result.float().cpu().numpy()
            completed += 1
            if hook is not None:
                hook("embeddings", None, total=len(batches), completed=completed)

        # A GPU runs up to IN_FLIGHT_BATCHES ahead of the results fetched, so that
        # neither it nor the host waits for the other.
        in_flight: list[tuple[np.ndarray, torch.Tensor]] = []
        first = 0
        with self._host_memory(self._embedding.device):
            for batch, width in batches:
                these = slice(first, first + len(batch))
                first += len(batch)
                result = self._embed(
                    cut(these),
                    pair_masks[these],
                    speech_samples[these],
                    stock_width[these],
                    width,
                )
                in_flight.append((batch, result))
                if len(in_flight) > IN_FLIGHT_BATCHES:
                    fetch(*in_flight.pop(0))
            for batch, result in in_flight:
                fetch(batch, result)
        return embeddings


class SinglePassSpeakerDiarization(FastSpeakerDiarization):
    """The same pipeline with approximate embeddings from one pass of ECAPA's trunk
    over the audio instead of one run per (window, speaker) pair (opt-in; what
    differs is in `diarization.ecapa_single_pass`). Pairs with too little speech
    get NaN as in the exact stage; segmentation and clustering are unchanged."""

    def get_embeddings(self, file, binary_segmentations, exclude_overlap=False, hook=None):
        window = binary_segmentations.sliding_window
        masks, _, pairs, embeddings = self._pairs_to_embed(binary_segmentations, exclude_overlap)
        embedding = self._embedding
        num_samples = math.floor(window.duration * embedding.sample_rate)
        starts = np.round(
            (window.start + np.arange(len(masks)) * window.step) * embedding.sample_rate
        ).astype(np.int64)

        def progress(done: int, total: int) -> None:
            if hook is not None:
                hook("embeddings", None, total=total, completed=done)

        single_pass = SinglePassEcapa(
            embedding.classifier_,
            compute_type=autocast_type(self.precision, embedding.device),
            ecapa=self._ecapa_forward(),
        )
        with self._host_memory(embedding.device), self._embedding_stage_precision():
            embeddings[pairs[:, 0], pairs[:, 1]] = single_pass.embed_pairs(
                file["waveform"][0], starts, num_samples, masks, pairs, progress
            )
        return embeddings


def _release_gpu_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _embedding_masks(binarized, exclude_overlap, duration, embedding) -> np.ndarray:
    """Per (chunk, speaker) frame mask used for the embedding, as stock pyannote picks it:
    the speaker's non-overlapped frames when there are enough of them, else all its frames.
    """
    masks = np.nan_to_num(binarized, nan=0.0).astype(np.float32)
    # (num_chunks, num_frames, local_speakers)
    if exclude_overlap:
        num_frames = masks.shape[1]
        num_samples = duration * embedding.sample_rate
        min_num_frames = math.ceil(num_frames * embedding.min_num_samples / num_samples)
        clean = masks * (np.sum(masks, axis=2, keepdims=True) < 2)
        enough = np.sum(clean, axis=1, keepdims=True) > min_num_frames
        masks = np.where(enough, clean, masks)
    return np.ascontiguousarray(masks.transpose(0, 2, 1))


def _samples_per_frame(num_frames: int, num_samples: int) -> np.ndarray:
    """How many waveform samples each mask frame covers under the nearest-neighbour
    upsampling that pyannote's SpeechBrain wrapper applies to masks."""
    index = F.interpolate(
        torch.arange(num_frames, dtype=torch.float32)[None, None], size=num_samples, mode="nearest"
    )
    return np.bincount(index.long().flatten().numpy(), minlength=num_frames).astype(np.float32)
