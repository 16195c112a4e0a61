"""EnCodec's encoder run time-major, as matrix products: the function transformers' `EncodecEncoder`
computes, for the causal, weight-normed encoders without residual blocks that `tiny` and
`autosong codec train` make, in about half the time on a CPU.

Channels-first, most of an encode goes to the first layers at the audio rate: the 64-channel
feature map is padded by a copy, and a strided convolution reads it far below oneDNN's
matrix-product speed. Time-major, a convolution whose kernel is twice its stride is two matrix
products over blocks of `stride` frames (each block and the one after it), a stride-1 one is one
product over its unfolded windows, the causal reflect padding is a few mirrored rows, and each
product is written straight into the next layer's padded buffer. The float sums are ordered
differently, so an embedding differs in its last bits and a code at a near tie can change, as with
batched encodes (tests/model/test_time_major_encoder.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Conv:
    """One EncodecConv1d as products: taps [kernel / stride, stride x Cin, Cout] (stride 1: [1, Cin x kernel, Cout])."""
    taps: torch.Tensor
    bias: torch.Tensor
    kernel: int
    stride: int

    @classmethod
    def of(cls, conv: torch.nn.Conv1d) -> Conv | None:
        weight = conv.weight.detach()  # weight norm applied
        c_out, c_in, k = weight.shape
        s = conv.stride[0]
        if conv.dilation[0] != 1 or not (s == 1 or k == 2 * s):
            return None
        taps = weight.reshape(1, c_out, c_in * k).transpose(1, 2) if s == 1 \
            else weight.permute(2, 1, 0).reshape(2, s * c_in, c_out)  # tap j: kernel frames [j s, j s + s)
        return cls(taps.contiguous(), conv.bias.detach().clone(), k, s)

    @property
    def pad(self) -> int:
        """The rows of causal padding EncodecConv1d gives its input: kernel - stride, mirrored."""
        return self.kernel - self.stride

    def frames(self, rows: int) -> int:
        return (rows - self.kernel) // self.stride + 1

    def to(self, device) -> Conv:
        return Conv(self.taps.to(device), self.bias.to(device), self.kernel, self.stride)

    def __call__(self, h: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Padded h [T, Cin] -> [frames, Cout], into `out` when given."""
        if self.stride == 1:
            windows = h.unfold(0, self.kernel, 1)  # [T - k + 1, Cin, k]
            return torch.addmm(self.bias, windows.reshape(len(windows), -1), self.taps[0], out=out)
        blocks = h[: len(h) // self.stride * self.stride].reshape(-1, self.taps.shape[1])  # row t: frames [t s, t s + s)
        out = torch.addmm(self.bias, blocks[:-1], self.taps[0], out=out)
        return out.addmm_(blocks[1:], self.taps[1])


class TimeMajorEncoder:
    """The encoder of an EncodecModel whose layers are conv(k, stride 1), then per ratio [ELU,
    conv(2 x ratio, stride ratio)], then LSTM, ELU, conv(k, stride 1); `of` gives None for others."""

    def __init__(self, convs: list[Conv], lstm: torch.nn.LSTM):
        self.convs, self.lstm = convs, lstm

    @classmethod
    def of(cls, model) -> TimeMajorEncoder | None:
        cfg, layers = model.config, list(model.encoder.layers)
        if not (cfg.use_causal_conv and cfg.pad_mode == "reflect" and cfg.norm_type == "weight_norm"):
            return None
        shape = ["EncodecConv1d", *["ELU", "EncodecConv1d"] * len(cfg.upsampling_ratios), "EncodecLSTM", "ELU",
                 "EncodecConv1d"]
        if [type(layer).__name__ for layer in layers] != shape:
            return None
        convs = [Conv.of(layer.conv) for layer in layers if type(layer).__name__ == "EncodecConv1d"]
        return None if None in convs else cls(convs, layers[-3].lstm)

    def to(self, device) -> TimeMajorEncoder:
        return TimeMajorEncoder([conv.to(device) for conv in self.convs], self.lstm.to(device))

    def fits(self, samples: int) -> bool:
        """Whether every layer's input is longer than its padding, which the mirrored rows need
        (EncodecConv1d pads a shorter one with zeros first): from 7 frames on for a last kernel of 7."""
        rows = samples
        for conv in self.convs:
            if rows <= conv.pad:
                return False
            rows = conv.frames(rows + conv.pad)
        return True

    @torch.inference_mode()
    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, 1, N], N a multiple of the hop and `fits` -> embeddings [B, D, N / hop], as the encoder's forward."""
        return torch.stack([self._one(x[0]) for x in wav])

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        first, *strided, last = self.convs
        h = _padded(x[:, None], first)  # [N + pad, 1]: time-major from here on
        for conv, after in zip([first, *strided], strided):  # each product lands in the next one's padding
            out = torch.empty(conv.frames(len(h)) + after.pad, conv.taps.shape[2], dtype=h.dtype, device=h.device)
            conv(h, out=out[after.pad:])
            F.elu(out[after.pad:], inplace=True)
            h = _mirror(out, after.pad)
        h = strided[-1](h)
        h = self.lstm(h[:, None])[0][:, 0] + h  # EncodecLSTM: a residual LSTM over time
        return last(_padded(F.elu(h), last)).T


def _mirror(out: torch.Tensor, pad: int) -> torch.Tensor:
    """out [pad + T, C] with its first `pad` rows written as the reflection of the rows after them (T > pad)."""
    if len(out) <= 2 * pad:
        raise ValueError(f"{len(out) - pad} rows cannot mirror {pad}: call the encoder where it fits()")
    out[:pad] = out[pad + 1 : 2 * pad + 1].flip(0)
    return out


def _padded(h: torch.Tensor, conv: Conv) -> torch.Tensor:
    """h [T, C] with `conv`'s causal reflect padding, as a copy (for the encoder's small ends)."""
    out = torch.empty(len(h) + conv.pad, h.shape[1], dtype=h.dtype, device=h.device)
    out[conv.pad:] = h
    return _mirror(out, conv.pad)
