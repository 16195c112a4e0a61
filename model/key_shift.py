"""Moving a song between its own key and the one key a key-normalised dataset holds.

`pipeline build --key-normalise` moves every song to C major / A minor before it is encoded, so a
model learns one key's notes instead of twelve; `generate` moves what it sings back to the key
asked for (model.api.AutoSong). The shift is the one that keeps songs low: down by up to 8
semitones, up by at most 3, since a song moved far up leaves the range a small codec renders well.

`pitch_shift` keeps the length: a phase vocoder stretches the audio in time by the pitch ratio, and
resampling by that ratio brings it back to its length at the new pitch, so the lyrics' timing
(lyrics.lrc) holds in the moved song.
"""
from __future__ import annotations

import numpy as np

SHIFT_RANGE = (-8, 3)  # semitones: the shifts key normalisation chooses from, one per key signature
_N_FFT, _HOP = 2048, 512
_BLOCK = 1024          # output frames per block: a long song is moved in bounded memory


def normalising_shift(signature: int) -> int:
    """The semitones (SHIFT_RANGE) that move a song in key signature `signature` (model/song_key.py;
    0 = C major / A minor) to signature 0."""
    up = -signature % 12
    return up - 12 if up > SHIFT_RANGE[1] else up


def shift_to_c(heard) -> int:
    """normalising_shift of the best of the signatures `heard` in a song (best first), 0 when none was heard."""
    return normalising_shift(heard[0]) if len(heard) else 0


def moved_to_c(wav: np.ndarray, sample_rate: int, heard) -> tuple[np.ndarray, int]:
    """`wav` moved to C by shift_to_c(heard) (the signatures heard in it, best first), and that shift:
    what a key-normalised build encodes, and what a codec for such builds learns from."""
    shift = shift_to_c(heard)
    return (pitch_shift(wav, sample_rate, shift) if shift else wav), shift


def pitch_shift(wav: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
    """Mono float32 `wav` moved by `semitones` (negative: down), as long as it was."""
    wav = np.asarray(wav, dtype=np.float32)
    if semitones == 0 or len(wav) == 0:
        return wav.copy()
    import soxr  # the build's resampler; loaded where audio is moved

    ratio = 2.0 ** (semitones / 12)
    stretched = _stretch(wav.astype(np.float64), ratio)  # ratio times as long, at the same pitch
    moved = soxr.resample(stretched, sample_rate * ratio, sample_rate)  # back to its length, pitch times ratio
    out = np.zeros(len(wav), dtype=np.float32)
    out[: min(len(wav), len(moved))] = moved[: len(wav)]
    return out


def _stretch(x: np.ndarray, ratio: float) -> np.ndarray:
    """`x` made `ratio` times as long at the same pitch: a phase vocoder whose output frame j reads
    the spectrum at input frame j / ratio (magnitudes interpolated), with identity phase locking:
    each spectral peak's phase advances by the frequency measured between the two input frames
    around it, and the bins about a peak keep the phase offsets they had from it, so a partial
    spread over several bins stays one partial (without it, a tone loses a fifth of its level)."""
    padded = np.concatenate([np.zeros(_N_FFT), x, np.zeros(_N_FFT)])
    frames_in = 1 + (len(padded) - _N_FFT) // _HOP
    positions = np.arange(0, frames_in - 1, 1 / ratio)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)  # periodic Hann: sums to 1.5 at N/4 hops
    expected = 2 * np.pi * _HOP * np.arange(_N_FFT // 2 + 1) / _N_FFT  # each bin's phase advance per hop
    out = np.zeros(len(positions) * _HOP + _N_FFT)
    phase = None  # the output phase of every bin in the frame before
    for start in range(0, len(positions), _BLOCK):
        pos = positions[start : start + _BLOCK]
        first, whole = int(pos[0]), pos.astype(int)
        last = min(int(pos[-1]) + 2, frames_in)
        segment = padded[first * _HOP : (last - 1) * _HOP + _N_FFT]
        spec = np.fft.rfft(np.lib.stride_tricks.sliding_window_view(segment, _N_FFT)[::_HOP] * window, axis=1)
        here, after = spec[whole - first], spec[np.minimum(whole + 1 - first, len(spec) - 1)]
        frac = (pos - whole)[:, None]
        magnitude = (1 - frac) * np.abs(here) + frac * np.abs(after)
        deviation = np.angle(after) - np.angle(here) - expected
        advance = expected + deviation - 2 * np.pi * np.round(deviation / (2 * np.pi))
        heard = np.angle(here)
        phases = np.empty_like(heard)
        for j in range(len(pos)):
            peak = _nearest_peak(magnitude[j])
            if phase is None:
                phase = heard[j]
            locked = phase[peak] + advance[j, peak]  # each bin's peak, moved on by the peak's frequency
            phase = phases[j] = locked + heard[j] - heard[j, peak]
        frames = np.fft.irfft(magnitude * np.exp(1j * phases), _N_FFT, axis=1) * window / 1.5
        for i, frame in enumerate(frames, start):
            out[i * _HOP : i * _HOP + _N_FFT] += frame
    lead = int(round(_N_FFT * ratio))
    return out[lead : lead + int(round(len(x) * ratio))]


def _nearest_peak(magnitude: np.ndarray) -> np.ndarray:
    """For every bin, the bin of the spectral peak (a local maximum) nearest it."""
    inner = magnitude[1:-1]
    peaks = np.flatnonzero((inner > magnitude[:-2]) & (inner >= magnitude[2:])) + 1
    if len(peaks) == 0:
        return np.arange(len(magnitude))
    bounds = (peaks[1:] + peaks[:-1]) / 2  # a bin belongs to the peak on its side of the midpoint
    return peaks[np.searchsorted(bounds, np.arange(len(magnitude)))]
