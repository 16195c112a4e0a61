"""The pitch a sound sings: the harmonic sum of its spectrum, per candidate pitch, and a voiced
pitch track. Shared by the sampler (which codes of the codec's first codebook sound one note:
model/code_notes.py) and the evaluation (the notes a song sings: eval/notes.py).

A candidate pitch's salience is the sum of its first harmonics' magnitudes, 1/k weighted, over a
quarter-semitone grid searched in the melody's range, so the bass below it does not win. A frame
is voiced where most of the melody band's energy lies on the harmonics of its best pitch.
"""
from __future__ import annotations

import numpy as np

LEAD_RANGE = (54.0, 108.0)  # MIDI: where melodies are searched for (the synth's lie here, its bass below)
BAND = (180.0, 5000.0)  # Hz: the melody's harmonics; a bass and a kick lie below


def harmonic_salience(spec: np.ndarray, sr: int, n_fft: int, lo: float = LEAD_RANGE[0], hi: float = LEAD_RANGE[1],
                      harmonics: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude spectra [..., n_fft // 2 + 1] -> (MIDI candidates [P] on a quarter-semitone grid
    in [lo, hi), the sum of each candidate's first harmonics' magnitudes, 1/k weighted [..., P])."""
    candidates = np.arange(lo, hi, 0.25)
    f0 = 440.0 * 2 ** ((candidates - 69) / 12)
    salience = np.zeros(spec.shape[:-1] + (len(candidates),))
    for k in range(1, harmonics + 1):
        bins = np.round(f0 * k * n_fft / sr).astype(int)
        ok = bins < spec.shape[-1]
        salience[..., ok] += spec[..., bins[ok]] / k
    return candidates, salience


def pitch_track(wav: np.ndarray, sr: int, hop: float = 0.01, window: int = 2048,
                voiced_share: float = 0.5) -> np.ndarray:
    """MIDI pitch per `hop` seconds [frames] (frame i centred at i * hop), NaN where no pitched
    voice sounds (less than `voiced_share` of the band's energy on the pitch's harmonics)."""
    step = max(1, int(hop * sr))
    padded = np.pad(np.asarray(wav, dtype=np.float64), (window // 2, window // 2))
    if len(padded) < window:
        return np.full(0, np.nan)
    frames = np.lib.stride_tricks.sliding_window_view(padded, window)[::step]  # [T, window]
    n_fft = 2 * window
    spec = np.abs(np.fft.rfft(frames * np.hanning(window), n_fft, axis=1))  # [T, F]
    candidates, salience = harmonic_salience(spec, sr, n_fft, *LEAD_RANGE)  # [P], [T, P]
    best = salience.argmax(1)
    pitch = candidates[best]
    freqs = np.arange(spec.shape[1]) * sr / n_fft
    band = (freqs >= BAND[0]) & (freqs <= BAND[1])
    power = spec ** 2
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)  # [T]
    ratio = freqs[None, band] / f0[:, None]  # [T, F_band]: which harmonic each bin sits nearest
    harmonic = np.round(ratio)
    near = (harmonic >= 1) & (harmonic <= 5) & (np.abs(ratio - harmonic) <= harmonic * (2 ** (0.5 / 12) - 1))
    total = power[:, band].sum(1)
    share = np.where(total > 0, (power[:, band] * near).sum(1) / np.maximum(total, 1e-30), 0.0)
    return np.where(share >= voiced_share, pitch, np.nan)
