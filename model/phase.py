"""Waveforms from STFT magnitudes: the phase a magnitude-predicting decoder does not predict.

A held note's phase must advance from frame to frame by itself (a decoder whose output depends
on its frame's code alone repeats every hop, and its notes snap to multiples of 75 Hz). Two
mechanisms, compared in bench/codec_phase.py:
- `vocoder_phase`: each spectral peak's frequency, read off the magnitudes by parabolic
  interpolation, advances the phase of the bins around it by hop * frequency (a phase vocoder
  with the phase locked to the peaks): no iterations, right for steady partials.
- `griffin_lim`: iterate towards a signal whose STFT has these magnitudes (Griffin and Lim 1984,
  with the momentum of Perraudin et al. 2013), from any starting phase.

The STFT is torch's, centred, with a periodic Hann window: frame t is centred at sample t * hop.
"""
from __future__ import annotations

import math

import torch


def stft(wav: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """wav [B, N] -> complex [B, n_fft // 2 + 1, N // hop + 1]."""
    window = torch.hann_window(n_fft, device=wav.device, dtype=wav.dtype)
    return torch.stft(wav, n_fft, hop, window=window, center=True, return_complex=True)


def istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    """complex [B, F, frames] -> wav [B, length] (least-squares overlap-add)."""
    window = torch.hann_window(n_fft, device=spec.device, dtype=spec.real.dtype)
    return torch.istft(spec, n_fft, hop, window=window, center=True, length=length)


def vocoder_phase(magnitude: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """magnitude [B, F, frames] -> phase [B, F, frames] in radians.

    Each bin takes the frequency of its nearest spectral peak (a local maximum, refined by a
    parabola through the log magnitudes of the peak and its neighbours) and advances by that
    frequency times the hop each frame. The `- pi * k` term is the phase a centred frame of a
    sinusoid has at bin k (the frame starts n_fft / 2 samples before its centre)."""
    B, F, T = magnitude.shape
    log_mag = torch.log(magnitude.double() + 1e-9)
    left = torch.nn.functional.pad(log_mag[:, :-1], (0, 0, 1, 0), value=-math.inf)
    right = torch.nn.functional.pad(log_mag[:, 1:], (0, 0, 0, 1), value=-math.inf)
    peak = (log_mag > left) & (log_mag >= right)  # [B, F, T]
    curvature = left - 2 * log_mag + right
    offset = torch.where(peak & torch.isfinite(curvature) & (curvature < 0),
                         0.5 * (left - right) / curvature, torch.zeros_like(log_mag)).clamp(-0.5, 0.5)
    bins = torch.arange(F, device=magnitude.device, dtype=torch.float64)[None, :, None].expand(B, F, T)
    # the nearest peak at or below each bin, and at or above it
    below = torch.where(peak, bins, torch.full_like(bins, -1e9)).cummax(dim=1).values
    above = torch.where(peak, bins, torch.full_like(bins, 1e9)).flip(1).cummin(dim=1).values.flip(1)
    nearest = torch.where((bins - below) <= (above - bins), below, above)
    nearest = torch.where(nearest.abs() < F, nearest, bins).long()  # a frame without peaks keeps bin centres
    turns = (nearest + offset.gather(1, nearest)).double() * hop / n_fft  # frequency x hop, in turns per frame
    phase_turns = torch.remainder(torch.cumsum(turns, dim=2), 1.0) - 0.5 * bins
    return (2 * math.pi * torch.remainder(phase_turns, 1.0)).to(magnitude.dtype)


def griffin_lim(magnitude: torch.Tensor, n_fft: int, hop: int, length: int, iterations: int = 32,
                momentum: float = 0.99, phase: torch.Tensor | None = None) -> torch.Tensor:
    """magnitude [B, F, frames] (frames = length // hop + 1) -> wav [B, length].

    Starts from `phase` (zeros when None) and projects `iterations` times between the signals
    with these magnitudes and the consistent spectrograms; momentum > 0 is the fast variant."""
    angles = torch.polar(torch.ones_like(magnitude), phase if phase is not None else torch.zeros_like(magnitude))
    previous = torch.zeros_like(angles)
    for _ in range(iterations):
        rebuilt = stft(istft(magnitude * angles, n_fft, hop, length), n_fft, hop)
        accelerated = rebuilt - (momentum / (1 + momentum)) * previous
        angles = accelerated / accelerated.abs().clamp_min(1e-12)
        previous = rebuilt
    return istft(magnitude * angles, n_fft, hop, length)
