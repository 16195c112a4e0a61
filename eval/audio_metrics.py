"""How close is reconstructed audio to the original: log-mel distance, and whether each sung
note of a synth song comes back at its pitch (f0 within a semitone).

The pitch of a note is the MIDI pitch (quarter-semitone grid) whose harmonics (1/k weighted)
carry the most spectral energy in the middle of the note, searched over the melody's range so
the bass below it does not win. On the original synth audio this estimator is right for
essentially every note; `bench/codec.py` reports that ceiling beside each codec's figure.
"""
from __future__ import annotations

import numpy as np
from autosong.model.audio_features import mel_filterbank
from autosong.model.pitch import LEAD_RANGE, harmonic_salience


def log_mel(wav: np.ndarray, sr: int, n_fft: int = 1024, n_mels: int = 64) -> np.ndarray:
    """log(mel power + 1e-5) [frames, n_mels]."""
    hop = n_fft // 4
    if len(wav) < n_fft:
        wav = np.pad(wav, (0, n_fft - len(wav)))
    frames = np.lib.stride_tricks.sliding_window_view(wav, n_fft)[::hop]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1))
    return np.log(mag @ mel_filterbank(n_fft, n_mels, sr).numpy().T + 1e-5)


def mel_distance(reference: np.ndarray, other: np.ndarray, sr: int) -> float:
    """Mean |log-mel difference| (nats) over the common length; 0 = identical spectra."""
    n = min(len(reference), len(other))
    return float(np.abs(log_mel(reference[:n], sr) - log_mel(other[:n], sr)).mean())


def estimate_pitch(segment: np.ndarray, sr: int, lo: float = LEAD_RANGE[0], hi: float = LEAD_RANGE[1],
                   harmonics: int = 5) -> float:
    """MIDI pitch (float) with the largest harmonic sum in [lo, hi]."""
    n_fft = 1 << int(np.ceil(np.log2(max(len(segment), 4096))))
    spec = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), n_fft))
    candidates, salience = harmonic_salience(spec, sr, n_fft, lo, hi, harmonics)
    return float(candidates[int(np.argmax(salience))])


def note_pitch_accuracy(wav: np.ndarray, sr: int, notes: list[tuple[float, float, int]],
                        min_seconds: float = 0.12) -> tuple[float, int]:
    """Share of notes (start s, length s, MIDI) whose estimated pitch is within one semitone,
    over the notes at least `min_seconds` long that lie inside the audio. Returns (share, notes)."""
    hits = total = 0
    for start, length, pitch in notes:
        if length < min_seconds or (start + length) * sr > len(wav):
            continue
        a, b = int((start + 0.25 * length) * sr), int((start + 0.75 * length) * sr)
        total += 1
        hits += abs(estimate_pitch(wav[a:b], sr) - pitch) <= 1.0
    return (hits / total if total else float("nan")), total
