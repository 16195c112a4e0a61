"""An analytic start for EnCodec's encoder: short-time Fourier analysis in its strided
convolutions, magnitudes from its ELUs, and a PCA of those magnitudes in its last convolution.

From random weights, EnCodec's encoder takes far longer than a CPU hour to resolve pitch to a
semitone (bench/RESULTS.md). The same layers can start as a spectrum analyser instead, and
training then refines them end to end:
- the first convolution passes the signal through (scaled down, where the ELU is nearly linear);
- the first strided convolution (stride r1) low-passes and decimates it;
- the second (stride r2, window 2 * r2 at the decimated rate) takes the Fourier transform at
  F frequencies, in four phases each: +cos, -cos, +sin, -sin;
- the LSTM starts near zero (it is residual), so the ELU after it rectifies the four phases,
  whose sum is |Re| + |Im| - 2 for loud partials: a magnitude at every frequency;
- the last convolution projects those magnitudes on their principal components (over the
  training audio), the latents the quantizer and the decoder see.
Every other weight starts small and random, so it can grow into use.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from autosong.train.codec.data import random_crops  # the trainer's crop sampler

INPUT_SCALE = 0.05  # signals this small pass an ELU almost unchanged (x < 0: e^x - 1 ~ x)
LOWEST_HZ = 150.0   # the first analysis frequency; the rest follow at the decimated window's bin spacing


def analysis_frequencies(model) -> np.ndarray:
    """The F frequencies (Hz) the second strided convolution analyses."""
    cfg = model.config
    r1, r2 = _strides(cfg)
    spacing = cfg.sampling_rate / r1 / (2 * r2)  # one bin of the 2 * r2 window at the decimated rate
    return LOWEST_HZ + spacing * np.arange(cfg.num_filters)


def _strides(cfg) -> tuple[int, int]:
    ratios = list(reversed(cfg.upsampling_ratios))  # the encoder's order
    if len(ratios) != 2:
        raise ValueError(f"the Fourier start needs two encoder strides (decimation, analysis), got {ratios}: "
                         f"use --upsampling-ratios 80,4 or --encoder-init random")
    return ratios[0], ratios[1]


def _set(conv, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
    """Assign a weight through transformers' weight norm (its parametrization inverts it)."""
    conv.conv.weight = weight.to(conv.conv.weight.dtype)
    if bias is not None:
        conv.conv.bias.copy_(bias)


def _small(conv, scale: float = 0.02) -> torch.Tensor:
    return conv.conv.weight.detach().clone() * scale


def _identity_resblocks(blocks) -> None:
    """EnCodec's residual blocks as the identity: shortcut = I, residual branch ~ 0."""
    for block in blocks:
        shortcut = block.shortcut
        if not isinstance(shortcut, nn.Identity):
            dim = shortcut.conv.weight.shape[0]
            _set(shortcut, torch.eye(dim)[:, :, None], torch.zeros(dim))
        last = block.block[-1]
        _set(last, _small(last, 1e-3), torch.zeros(last.conv.bias.shape))


@torch.no_grad()
def fourier_init(model, clips: list[np.ndarray], crop: int, rng: np.random.Generator, batches: int = 8) -> None:
    """Set `model.encoder` (transformers' EncodecEncoder, two strides) to the analyser above,
    with its last convolution fitted to `clips` (PCA)."""
    cfg = model.config
    r1, r2 = _strides(cfg)
    F = cfg.num_filters
    layers = list(model.encoder.layers)
    convs = [m for m in layers if type(m).__name__ == "EncodecConv1d"]
    first, decimate, analyse, last = convs[0], convs[1], convs[2], convs[-1]
    lstm = next(m for m in layers if type(m).__name__ == "EncodecLSTM").lstm
    _identity_resblocks([m for m in layers if type(m).__name__ == "EncodecResnetBlock"])

    # the signal, scaled down, on channel 0 (causal: the last tap is the present sample)
    w = _small(first)
    w[0] = 0
    w[0, 0, -1] = INPUT_SCALE
    _set(first, w, torch.zeros(F))

    # low-pass (a Hann-windowed sinc at the decimated Nyquist) and decimate by r1, still scaled down
    taps = 2 * r1
    n = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    lowpass = torch.sinc(n / r1) * torch.hann_window(taps, periodic=False, dtype=torch.float64)
    w = _small(decimate)
    w[0] = 0
    w[0, 0] = (lowpass / lowpass.sum()).float()
    _set(decimate, w, torch.zeros(2 * F))

    # Fourier analysis over 2 * r2 decimated samples, four phases per frequency, undoing the scale
    window = torch.hann_window(2 * r2, periodic=False, dtype=torch.float64)
    t = torch.arange(2 * r2, dtype=torch.float64) / (cfg.sampling_rate / r1)
    w = _small(analyse)
    for j, hz in enumerate(analysis_frequencies(model)):
        cos, sin = window * torch.cos(2 * math.pi * hz * t), window * torch.sin(2 * math.pi * hz * t)
        for phase, basis in enumerate((cos, -cos, sin, -sin)):
            w[4 * j + phase] = 0
            w[4 * j + phase, 0] = (basis / INPUT_SCALE).float()
    _set(analyse, w, torch.zeros(4 * F))

    for name, p in lstm.named_parameters():  # residual LSTM, near zero: the analyser passes through
        p.mul_(0.01) if name.startswith("weight") else p.zero_()
    _fit_last_conv(model, layers, last, clips, crop, rng, batches)


@torch.no_grad()
def _fit_last_conv(model, layers, last, clips, crop: int, rng, batches: int) -> None:
    """The last convolution: the magnitudes' principal components, on its present tap (causal)."""

    F = model.config.num_filters
    _set(last, torch.zeros_like(last.conv.weight), torch.zeros(last.conv.weight.shape[0]))
    device = next(model.parameters()).device
    feats = []
    for _ in range(batches):
        x = random_crops(clips, 16, crop, rng)[:, None].to(device)
        h = x
        for layer in layers[:-1]:
            h = layer(h)
        feats.append(h.permute(0, 2, 1).reshape(-1, h.shape[1]))  # [frames, 4F]
    phases = torch.cat(feats).view(-1, F, 4).sum(-1)  # [frames, F]: the magnitudes
    mean = phases.mean(0)
    _, _, v = torch.linalg.svd(phases - mean, full_matrices=False)
    hidden = last.conv.weight.shape[0]
    components = v[:hidden]  # [H, F]
    scale = 1.0 / (phases - mean).matmul(components.T).std(0).clamp_min(1e-6)  # unit-variance latents
    w = torch.zeros_like(last.conv.weight)  # [H, 4F, k]
    w[:, :, -1] = (components * scale[:, None]).repeat_interleave(4, dim=1)
    _set(last, w, -(components @ mean) * scale)


@torch.no_grad()
def keep_signal_channel(model) -> None:
    """After training: the Fourier analysis convolution keeps only its weights on the signal's
    channel. The rest (the small random start, grown a little) carry 2.5 % of its weight norm;
    dropping them kept the shipped codec's pitch accuracy and mel distance (98.3 -> 98.9 %,
    1.96 -> 2.00 on 12 unseen songs), and the zeros make the file compress to a third."""
    analyse = [m for m in model.encoder.layers if type(m).__name__ == "EncodecConv1d"][2]
    w = analyse.conv.weight.detach().clone()
    w[:, 1:] = 0
    _set(analyse, w)
