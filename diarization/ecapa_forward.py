"""SpeechBrain's ECAPA-TDNN forward pass, the same function computed with fewer
operations and only on the frames that reach the embedding.

SpeechBrain's `ECAPA_TDNN.forward` works on (batch, channels, frames) tensors: each
convolution first copies its input into a reflection-padded tensor (1x1 ones
included), the attention's first layer multiplies the utterance mean and standard
deviation repeated on every frame, and every layer runs on every frame of the
padded batch. Here, on (batch, frames, channels) tensors:

- every convolution is one matrix product (a k-wide convolution multiplies the k
  shifted copies of its reflection-padded input side by side), and 1x1 ones copy
  nothing;
- the attention's per-utterance part (mean, standard deviation) is multiplied once
  per utterance, not once per frame;
- after each stage the batch keeps only the frames that the frames pooled into an
  embedding still depend on: the longest row's pooled frames plus what the
  convolutions still to come reach (nothing after the last SE-Res2Net block: the
  aggregation, attention and pooling see only pooled frames). Frames are cut at a
  width that no later convolution reaches past, so no kept value changes;
- rows of different lengths share a batch: each row's convolutions may reflect at
  its own last frame (`frame_ends`) instead of the batch's, so a row computes what
  it computes alone in a batch of its own length.

Values are SpeechBrain's up to the order of floating-point sums (tests compare them
with the module on its own inputs). On 2 CPU cores, side by side with the module on
the same batches of five-second rows (scripts/ecapa_speed.py): 1.3x for batches of 4,
1.3-1.9x for 32; on an H200, strict fp32, 1.45x for 32 (docs/performance.md).

The model's input, SpeechBrain's filter-bank features, is `FbankFeatures`: the same
values without the copies to the device SpeechBrain makes on every call.
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

#: rows of a batch aggregated and pooled at a time on a CPU (on a GPU: the whole batch)
CPU_ROWS_PER_STEP = 1


def unsupported(model: torch.nn.Module) -> str | None:
    """Why `model` is not an ECAPA_TDNN this forward computes, or None if it is."""
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, SERes2NetBlock

    if not isinstance(model, ECAPA_TDNN):
        return f"{type(model).__name__} is not SpeechBrain's ECAPA_TDNN"
    if model.training:
        return "the model is in training mode"
    if not all(isinstance(block, SERes2NetBlock) for block in model.blocks[1:]):
        return "its blocks after the first are not all SE-Res2Net blocks"
    if any(block.shortcut is not None for block in model.blocks[1:]):
        return "an SE-Res2Net block changes the number of channels"
    if not model.asp.global_context:
        return "its attentive pooling has no global context"
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv1d) and (module.groups != 1 or module.stride[0] != 1):
            return f"convolution {name} is grouped or strided"
        if hasattr(module, "padding_mode") and hasattr(module, "conv"):
            kernel_size = module.conv.kernel_size[0]
            if kernel_size > 1 and (module.padding != "same" or module.padding_mode != "reflect"):
                return f"convolution {name} is not reflection-padded to the same length"
        if hasattr(module, "activation") and not isinstance(module.activation, torch.nn.ReLU):
            return f"{name} is not activated by ReLU"
    return None


class EcapaForward(torch.nn.Module):
    """`model`'s forward pass on (batch, frames, features) input and frame counts.

    Args:
        model: SpeechBrain's `ECAPA_TDNN` in eval mode, on the device it will run on;
            its weights are read (and batch norms folded in) here, once. Another
            model (see `unsupported`) runs its own forward, with a warning.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        #: why this forward pass falls back to the model's own, or None
        self.unsupported = unsupported(model)
        if self.unsupported is not None:
            logger.warning("ECAPA runs its own (slower) forward pass: %s", self.unsupported)
            return
        with torch.no_grad():
            self.first = _Tdnn(model.blocks[0])
            self.blocks = [_SERes2Net(block) for block in model.blocks[1:]]
            self.aggregation = _Tdnn(model.mfa)
            self.attention = _Tdnn(model.asp.tdnn)
            self.attention_out = _linear_weights(model.asp.conv.conv)
            self.eps = model.asp.eps
            scale, shift = _batch_norm_affine(model.asp_bn.norm)
            # the pooled statistics' batch norm folded into the last layer
            weight, bias = _linear_weights(model.fc.conv)
            self.last = (weight * scale, F.linear(shift, weight, bias))

    def forward(
        self,
        feats: torch.Tensor,
        frame_counts: torch.Tensor,
        frame_ends: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embeddings, as `model(feats, lengths)` with lengths that keep `frame_counts`.

        Args:
            feats: (batch, frames, features) normalised filter-bank features.
            frame_counts: (batch,) integers on the host: the first frames of each row
                that SpeechBrain's masks keep (in SE blocks and pooling).
            frame_ends: (batch,) integers on the host, at least the row's count: each
                row as the model computes it on its first `frame_ends` frames alone
                (its convolutions reflect there); None, or a value past the batch's
                frames: at the batch's end.

        Returns:
            (batch, embedding dimension) embeddings, in feats' type.
        """
        if self.unsupported is not None:
            if frame_ends is not None and bool((frame_ends < feats.shape[1]).any()):
                raise ValueError(f"rows cannot end before the batch's frames: {self.unsupported}")
            # SpeechBrain keeps the frames below its relative length times the frames
            lengths = (frame_counts.to(feats.device) - 0.5) / feats.shape[1]
            return self.model(feats, lengths)[:, 0]
        outputs = self._block_outputs(feats, frame_counts, frame_ends)
        # the aggregation and pooling a row at a time on a CPU, each row cut to its own
        # counted frames and its tensors kept in cache (32 x 5 s on 2 cores: 2.0-2.1 s,
        # 2.2-2.3 s for the whole batch at once); on a GPU the whole batch is one step
        step = len(frame_counts) if feats.device.type == "cuda" else CPU_ROWS_PER_STEP
        pooled = []
        for rows in (slice(i, i + step) for i in range(0, len(frame_counts), step)):
            longest = int(frame_counts[rows].max())
            # (rows, longest, channels of the aggregation)
            x = self.aggregation(torch.cat([out[rows, :longest] for out in outputs], dim=2))
            pooled.append(self.pool(x, self.frame_attention(x), frame_counts[rows]))
        return torch.cat(pooled)

    def frames(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The frame-level trunk with every frame counted (one pass over a chunk of
        audio; `ecapa_single_pass`): (batch, frames, channels) the aggregated frame
        features of (batch, frames, features) `feats`, and their `frame_attention`."""
        if self.unsupported is not None:
            raise ValueError(f"ECAPA's frames cannot be computed here: {self.unsupported}")
        every_frame = torch.full((len(feats),), feats.shape[1])
        x = self.aggregation(torch.cat(self._block_outputs(feats, every_frame, None), dim=2))
        return x, self.frame_attention(x)

    def _block_outputs(
        self, feats: torch.Tensor, frame_counts: torch.Tensor, frame_ends: torch.Tensor | None
    ) -> list:
        """Each SE-Res2Net block's output, (batch, frames, channels), cut after each
        stage to the frames that the first `frame_counts` (host integers) of each row
        still depend on: the longest row's plus what the convolutions to come reach;
        each row's convolutions reflected at its `frame_ends` where it ends sooner."""
        counts = host_to_device(frame_counts, feats.device)
        longest = int(frame_counts.max())
        reach = self.first.half_width + sum(block.reach for block in self.blocks)
        if frame_ends is not None:
            # a row's end changes its embedding only within the convolutions' reach of
            # its counted frames; past it, the batch's end does as well
            frame_ends = torch.where(frame_ends < frame_counts + reach, frame_ends, feats.shape[1])
        ends = _Ends(frame_ends, feats.device)
        feats = feats[:, : longest + reach]
        x = self.first(feats, self.first.taps(feats.shape[1], ends))
        reach -= self.first.half_width
        # (batch, frames) 1/count on each row's counted frames, once for every block
        weights = _frame_weights(counts, x.shape[1], x.dtype)
        outputs = []
        for block in self.blocks:
            x = block(x[:, : longest + reach], weights[:, : longest + reach], ends)
            reach -= block.reach
            outputs.append(x)
        return outputs

    def frame_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention's first layer on each frame's own features (its utterance
        part is added per row in the pooling): (batch, frames, attention channels)."""
        return F.linear(x, self.attention.weight[:, : x.shape[2]])

    def pool(
        self, x: torch.Tensor, frame_attention: torch.Tensor, frame_counts: torch.Tensor
    ) -> torch.Tensor:
        """Embeddings pooled from the first `frame_counts` (host integers) frames of each
        row of `frames`' outputs (batch, frames, ...), as `forward` pools its rows."""
        all_counted = bool((frame_counts == x.shape[1]).all())
        counts = host_to_device(frame_counts, x.device)
        return F.linear(
            self._attentive_statistics(x, frame_attention, counts, all_counted), *self.last
        )

    def _attentive_statistics(
        self,
        x: torch.Tensor,
        frame_attention: torch.Tensor,
        counts: torch.Tensor,
        all_counted: bool,
    ) -> torch.Tensor:
        """SpeechBrain's AttentiveStatisticsPooling with global context: (batch, 2 *
        channels) attention-weighted means and standard deviations over each row's
        counted frames (`all_counted`: every frame of every row). The statistics are
        summed in float32 whatever type the layers compute in."""
        num_frames, channels = x.shape[1:]
        with torch.autocast(x.device.type, enabled=False):
            x32 = x.float()
            weights = _frame_weights(counts, num_frames, torch.float32)
            mean = _weighted_sum(x32, weights)
            std = _weighted_sum((x32 - mean[:, None]).square_(), weights).clamp(self.eps).sqrt()
        # the attention's first layer on [frame, mean, std]: the utterance part once per row
        attention = self.attention
        weight = attention.weight
        context = F.linear(mean.to(x.dtype), weight[:, channels : 2 * channels]) + F.linear(
            std.to(x.dtype), weight[:, 2 * channels :], attention.bias
        )
        logits = attention.activate(frame_attention + context[:, None, :])
        logits = F.linear(logits.tanh_(), *self.attention_out)
        if not all_counted:
            counted = torch.arange(num_frames, device=x.device) < counts[:, None]
            logits = logits.masked_fill(~counted[:, :, None], float("-inf"))
        with torch.autocast(x.device.type, enabled=False):
            attention = logits.float().softmax(dim=1)
            mean = (attention * x32).sum(dim=1)
            variance = (x32 - mean[:, None]).square_().mul_(attention).sum(dim=1)
            return torch.cat([mean, variance.clamp(self.eps).sqrt()], dim=1).to(x.dtype)


class FbankFeatures:
    """SpeechBrain's `Fbank` (ECAPA's features), with what it rebuilds on every call
    built once on the device.

    SpeechBrain keeps its STFT window as a plain tensor (not a buffer), left on the
    host when the model moves, and its filter bank builds its matrix on the host on
    every call (from its fixed centre frequencies and bands) and copies it to the
    device. Each copy from ordinary host memory waits for the device to finish the
    work queued before it, so on a GPU every batch waited for the one before (the
    window's copy cost the H200 16 % of the exact stage's time, 2026-11-26). Here the
    window is moved and the matrix built once, by the filter bank's own method; the
    features are the same values. A filter bank that changes between calls (not
    frozen, or randomised in training) runs its own forward.

    Args:
        fbank: `classifier.mods.compute_features`, SpeechBrain's `Fbank`.
        device: where the classifier runs.
    """

    def __init__(self, fbank, device: torch.device):
        self.fbank = fbank
        stft, filters = fbank.compute_STFT, fbank.compute_fbanks
        if stft.window.device != device:
            stft.window = stft.window.to(device)
        self.matrix = None
        fixed = filters.freeze and not (filters.param_rand_factor != 0 and filters.training)
        if fixed and not (fbank.deltas or fbank.context):
            # Filterbank.forward's matrix, made as it makes it (on the host)
            frequencies = filters.all_freqs_mat.shape[1]
            centres = filters.f_central.repeat(frequencies, 1).transpose(0, 1)
            bands = filters.band.repeat(frequencies, 1).transpose(0, 1)
            self.matrix = filters._create_fbank_matrix(centres, bands).to(device)

    def __call__(self, signals: torch.Tensor) -> torch.Tensor:
        """(batch, frames, n_mels) features of (batch, samples) `signals`."""
        if self.matrix is None:
            return self.fbank(signals)
        return self._features(signals)

    # in float32 under a GPU's autocast too, as SpeechBrain's `Fbank.forward` (its
    # `fwd_default_precision` is this decorator): the power spectrum overflows float16
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def _features(self, signals: torch.Tensor) -> torch.Tensor:
        from speechbrain.processing.features import spectral_magnitude

        filters = self.fbank.compute_fbanks
        fbanks = torch.matmul(spectral_magnitude(self.fbank.compute_STFT(signals)), self.matrix)
        return filters._amplitude_to_DB(fbanks) if filters.log_mel else fbanks


class _Tdnn:
    """SpeechBrain's TDNNBlock: convolution, ReLU, batch norm (dropout is off in eval).

    The batch norm's scale s and shift t go into the convolution: for z = Wx + b,
    s * relu(z) + t is s*z + t clamped from below by t where s >= 0 and from above
    by t where s < 0, so the block is one matrix product and one clamp.
    """

    def __init__(self, block):
        conv = block.conv.conv
        self.kernel_size, self.dilation = conv.kernel_size[0], conv.dilation[0]
        self.half_width = (self.kernel_size - 1) // 2 * self.dilation
        weight, bias = _linear_weights(conv)
        scale, shift = _batch_norm_affine(block.norm.norm)
        self.weight = weight * scale[:, None]
        self.bias = shift if bias is None else bias * scale + shift
        unbounded = torch.full_like(shift, float("inf"))
        self.lower = torch.where(scale >= 0, shift, -unbounded)
        self.upper = torch.where(scale >= 0, unbounded, shift)

    def __call__(self, x: torch.Tensor, taps: torch.Tensor | None = None) -> torch.Tensor:
        """The block on x (batch, frames, channels); a k-wide convolution reads x at
        `taps` (`taps`), by default reflected at the batch's end."""
        return self.activate(F.linear(self.shifted(x, taps), self.weight, self.bias))

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        """ReLU and batch norm of the (scaled and shifted) convolution's output, in place."""
        return y.clamp_(self.lower.to(y.dtype), self.upper.to(y.dtype))

    def taps(self, num_frames: int, ends: _Ends) -> torch.Tensor | None:
        """Where this convolution reads an input of `num_frames` frames: (frames, k)
        reflected at the batch's end when every row lasts that long, else (batch,
        frames, k) each row reflected at its own end; None for a 1x1 convolution."""
        if self.kernel_size == 1:
            return None
        if ends.before(num_frames):
            return ends.reflected(num_frames, self.half_width, self.dilation)
        return _reflected_taps(num_frames, self.half_width, self.dilation, ends.device)

    def shifted(self, x: torch.Tensor, taps: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, frames, k * channels): the k inputs of this reflection-padded,
        same-length k-wide convolution at each frame of x (batch, frames, channels),
        read at `taps` (`taps`; by default reflected at the batch's end)."""
        if self.kernel_size == 1:
            return x
        if taps is None:
            taps = _reflected_taps(x.shape[1], self.half_width, self.dilation, x.device)
        if taps.dim() == 2:
            return x[:, taps].flatten(2)
        rows = torch.arange(len(x), device=x.device)[:, None, None]
        return x[rows, taps].flatten(2)


class _SERes2Net:
    """SpeechBrain's SERes2NetBlock (without a shortcut) on (batch, frames, channels)."""

    def __init__(self, block):
        self.tdnn1, self.tdnn2 = _Tdnn(block.tdnn1), _Tdnn(block.tdnn2)
        self.scale = block.res2net_block.scale
        self.res2net = [_Tdnn(sub) for sub in block.res2net_block.blocks]
        #: frames the chained convolutions reach past a frame
        self.reach = sum(sub.half_width for sub in self.res2net)
        se = block.se_block
        self.squeeze = _linear_weights(se.conv1.conv)
        self.excite = _linear_weights(se.conv2.conv)

    def __call__(
        self, x: torch.Tensor, frame_weights: torch.Tensor, ends: _Ends | None = None
    ) -> torch.Tensor:
        """The block on x (batch, frames, channels); its squeeze is the mean over each
        row's counted frames, `frame_weights` (batch, frames) (`_frame_weights`); its
        convolutions reflect each row at its `ends` (by default the batch's end)."""
        ends = _Ends(None, x.device) if ends is None else ends
        h = self.tdnn1(x)
        chunks = h.chunk(self.scale, dim=2)
        outputs = [chunks[0]]
        taps: dict = {}  # the sub-blocks' taps, built once per width and dilation
        for i, (sub, chunk) in enumerate(zip(self.res2net, chunks[1:], strict=True)):
            key = (sub.half_width, sub.dilation)
            if key not in taps:
                taps[key] = sub.taps(x.shape[1], ends)
            outputs.append(sub(chunk if i == 0 else chunk + outputs[-1], taps[key]))
        h = self.tdnn2(torch.cat(outputs, dim=2))
        # (batch, channels) the mean over each row's counted frames
        squeezed = _weighted_sum(h, frame_weights)
        excitation = torch.sigmoid(
            F.linear(F.linear(squeezed, *self.squeeze).relu_(), *self.excite)
        )
        return torch.addcmul(x, h, excitation[:, None, :])


class _Ends:
    """Each row's last frame for the reflection of its convolutions (`EcapaForward`'s
    `frame_ends`: host integers, or None for the batch's end), copied to the device
    only when a row ends before a convolution's input does."""

    def __init__(self, frame_ends: torch.Tensor | None, device: torch.device):
        self.frame_ends, self.device = frame_ends, device
        self._on_device: torch.Tensor | None = None

    def before(self, num_frames: int) -> bool:
        """Whether a row ends before `num_frames` frames (on the host: no wait)."""
        return self.frame_ends is not None and bool((self.frame_ends < num_frames).any())

    def reflected(self, num_frames: int, pad: int, dilation: int) -> torch.Tensor:
        """(batch, frames, k): where a `pad`-padded convolution reads each row of
        `num_frames` frames, reflected at the row's end e where it ends sooner: its
        first e frames as `_reflected_taps(e, ...)` reads them (what it reads past e
        reaches none of them)."""
        if int(self.frame_ends.min()) <= pad:
            raise ValueError(f"a row of {int(self.frame_ends.min())} frames cannot reflect {pad}")
        if self._on_device is None:
            self._on_device = host_to_device(self.frame_ends, self.device)
        ends = self._on_device.clamp(max=num_frames)[:, None, None]
        raw = _unreflected_taps(num_frames, pad, dilation, self.device).abs()
        reflected = torch.where(raw >= ends, 2 * (ends - 1) - raw, raw)
        # frames past a row's end read something inside the batch, never used
        return reflected.clamp_(0, num_frames - 1)


@functools.lru_cache(maxsize=512)
def _unreflected_taps(
    num_frames: int, pad: int, dilation: int, device: torch.device
) -> torch.Tensor:
    """(frames, k) the frame each tap of a `pad`-padded convolution reads, unreflected."""
    with torch.inference_mode(False):  # usable in and out of inference mode
        taps = torch.arange(-pad, pad + 1, dilation, device=device)
        return torch.arange(num_frames, device=device)[:, None] + taps


@functools.lru_cache(maxsize=512)
def _reflected_taps(num_frames: int, pad: int, dilation: int, device: torch.device) -> torch.Tensor:
    """(frames, k) the frame each tap of a reflection-padded convolution reads, reflected
    at both ends. Kept for each length and device (at most 512 x 20 kB): built anew, it
    was 7 of the 15 small operations of each convolution, each a kernel launch on a GPU."""
    if pad >= num_frames:
        raise ValueError(f"{num_frames} frames are too few to reflect {pad} of them")
    with torch.inference_mode(False):  # usable in and out of inference mode
        index = _unreflected_taps(num_frames, pad, dilation, device).abs()
        return torch.where(index >= num_frames, 2 * (num_frames - 1) - index, index)


def host_to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small host tensor copied to `device` without waiting for it: on a GPU through
    pinned memory (a copy from pageable memory may wait for the work queued before)."""
    if device.type == "cuda" and not tensor.is_pinned():
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def _linear_weights(conv: torch.nn.Conv1d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A convolution's weights as a matrix over its k shifted inputs side by side."""
    weight = conv.weight  # (out, in, k)
    if conv.kernel_size[0] == 1:
        return weight[:, :, 0], conv.bias
    return weight.permute(0, 2, 1).reshape(weight.shape[0], -1), conv.bias


def _batch_norm_affine(norm: torch.nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """An eval-mode batch norm as a scale and a shift per channel."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return scale, norm.bias - norm.running_mean * scale


def _frame_weights(counts: torch.Tensor, num_frames: int, dtype: torch.dtype) -> torch.Tensor:
    """(batch, num_frames) 1/count on each row's first `count` frames, 0 after."""
    mask = torch.arange(num_frames, device=counts.device) < counts[:, None]
    return mask.to(dtype) / counts[:, None].to(dtype)


def _weighted_sum(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(batch, channels) sum over frames of x (batch, frames, channels) times weights."""
    return torch.bmm(weights[:, None, :], x)[:, 0]
