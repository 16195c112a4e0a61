"""Features of audio that several stages compute the same way: the mel filterbank that the codec
trainer's spectral loss and eval's log-mel distance share."""
from __future__ import annotations

import numpy as np
import torch


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, fmin: float = 30.0) -> torch.Tensor:
    """Triangular HTK-mel filters [n_mels, n_fft // 2 + 1]."""
    to_mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    to_hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = to_hz(np.linspace(to_mel(fmin), to_mel(sample_rate / 2), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    return torch.from_numpy(fb.astype(np.float32))
