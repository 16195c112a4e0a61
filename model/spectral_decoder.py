"""A codec decoder that predicts STFT magnitudes, one frame per code frame, and gets the phase
by reconstruction (model/phase.py), so a held note keeps its pitch at any frequency.

EnCodec's own decoder is time-invariant but for its LSTM: a run of identical codes decodes to a
waveform that repeats every hop, whose spectrum holds only multiples of 75 Hz (bench/RESULTS.md,
"why a trained tiny codec still hums"). Magnitudes do not depend on phase, so this decoder only
has to get them right; the phase of each partial then advances with its frequency.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autosong.model.phase import griffin_lim, stft, vocoder_phase

MAGNITUDE_FLOOR = 1e-2  # of an unnormalised STFT whose loud partials reach ~100: -80 dB


@dataclass
class SpectralDecoderConfig:
    latent_dim: int = 32      # the codec's latent width (EnCodec's hidden_size)
    channels: int = 256
    blocks: int = 6           # ConvNeXt blocks over frames
    kernel: int = 7           # frames each block's depthwise convolution sees
    n_fft: int = 1280         # 4 frames: 18.75 Hz bins, 75 % overlap
    hop: int = 320            # one STFT frame per code frame
    phase_init: str = "vocoder"  # vocoder | zeros
    griffin_lim_iterations: int = 16

    def to_dict(self) -> dict:
        return asdict(self)


class ConvNeXtBlock(nn.Module):
    """Depthwise convolution over frames, then a per-frame MLP, added back (Liu et al. 2022)."""

    def __init__(self, channels: int, kernel: int, expansion: int = 3):
        super().__init__()
        self.depthwise = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels,
                                   padding_mode="replicate")
        self.norm = nn.LayerNorm(channels)
        self.up = nn.Linear(channels, expansion * channels)
        self.down = nn.Linear(expansion * channels, channels)
        self.scale = nn.Parameter(torch.full((channels,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T]
        y = self.depthwise(x).transpose(1, 2)  # [B, T, C]
        y = self.down(F.gelu(self.up(self.norm(y))))
        return x + (self.scale * y).transpose(1, 2)


class SpectralDecoder(nn.Module):
    """Latents [B, D, T] -> log STFT magnitudes [B, n_fft // 2 + 1, T] -> waveform [B, 1, T * hop]."""

    def __init__(self, cfg: SpectralDecoderConfig):
        super().__init__()
        self.cfg = cfg
        # replicate padding: a constant shift of the latents passes through exactly (center_latents)
        self.input = nn.Conv1d(cfg.latent_dim, cfg.channels, cfg.kernel, padding=cfg.kernel // 2,
                               padding_mode="replicate")
        self.blocks = nn.ModuleList(ConvNeXtBlock(cfg.channels, cfg.kernel) for _ in range(cfg.blocks))
        self.norm = nn.LayerNorm(cfg.channels)
        self.output = nn.Linear(cfg.channels, cfg.n_fft // 2 + 1)

    def log_magnitudes(self, latents: torch.Tensor) -> torch.Tensor:
        """latents [B, D, T] -> log(|STFT| + floor) [B, F, T], frame t centred at sample t * hop."""
        x = self.input(latents)
        for block in self.blocks:
            x = block(x)
        return self.output(self.norm(x.transpose(1, 2))).transpose(1, 2)

    def magnitudes(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, D, T] -> |STFT| [B, F, T + 1]: the last frame (centred on the end) repeats the one before."""
        mag = (self.log_magnitudes(latents).exp() - MAGNITUDE_FLOOR).clamp_min(0)
        return torch.cat([mag, mag[..., -1:]], dim=-1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """latents [B, D, T] -> waveform [B, 1, T * hop]."""
        cfg = self.cfg
        mag = self.magnitudes(latents).float()
        phase = vocoder_phase(mag, cfg.n_fft, cfg.hop) if cfg.phase_init == "vocoder" else None
        wav = griffin_lim(mag, cfg.n_fft, cfg.hop, latents.shape[-1] * cfg.hop, cfg.griffin_lim_iterations, phase=phase)
        return wav[:, None]


def magnitude_loss(log_pred: torch.Tensor, wav: torch.Tensor, cfg: SpectralDecoderConfig) -> torch.Tensor:
    """L1 between log magnitudes, each bin weighted by how far it stands above the quietest of its
    song (so the few loud partials that carry pitch outweigh the many bins at the floor), plus
    the spectral convergence of the magnitudes themselves. log_pred [B, F, T] from
    `log_magnitudes`; wav [B, T * hop]. Weighting took an oracle decoder from 65-70 % to 89 % of
    notes within a semitone at equal steps (bench/RESULTS.md)."""
    target = stft(wav, cfg.n_fft, cfg.hop).abs()[..., : log_pred.shape[-1]]  # [B, F, T]
    log_target = torch.log(target + MAGNITUDE_FLOOR)
    weight = 1 + log_target - log_target.amin(dim=(1, 2), keepdim=True)
    log_l1 = ((log_pred - log_target).abs() * weight).sum() / weight.sum()
    pred = (log_pred.exp() - MAGNITUDE_FLOOR).clamp_min(0)
    convergence = torch.linalg.norm(pred - target) / torch.linalg.norm(target).clamp_min(1e-6)
    return log_l1 + convergence


def has_spectral_decoder(model) -> bool:
    """Whether an EncodecModel's decoder is a SpectralDecoder (magnitudes, phase reconstructed)."""
    return isinstance(model.decoder, SpectralDecoder)
