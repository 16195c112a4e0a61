"""A song's key signature: which of the twelve diatonic scales its pitches fit, heard from its audio.

The build measures it on every song; a model.song_key model learns to predict it from the lyrics
and genre and sings in the key it is given (model/transformer.py's SongKey). The profile of a song
is, per pitch class, the harmonic salience (model/pitch.py) of the strongest pitch in each frame
plus that of the strongest pitch below the melody's range (the bass); its key signature is the
rotation of the major scale whose seven pitch classes hold the largest share of it, or the
signatures, when several fit as well (best first: the one whose tonics, its major's and its
relative minor's, hold more). A signature names a major key and its relative minor at once (C
major and A minor share one): the notes a song may sing depend on it, and telling the two apart
would take the tonic, which this does not guess.
"""
from __future__ import annotations

import re

import numpy as np

from autosong.model.pitch import harmonic_salience

KEY_SIGNATURES = 12
NO_KEY = -1  # a key not heard (too short, no pitch): the model reads its own "unknown" embedding
_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")  # as each key is written
_MINOR_NAMES = ("A", "Bb", "B", "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#")  # the relative minors
_FLATS = {"DB": "C#", "EB": "D#", "GB": "F#", "AB": "G#", "BB": "A#", "CB": "B", "FB": "E", "E#": "F", "B#": "C"}
_MAJOR_SCALE = np.zeros(KEY_SIGNATURES)
_MAJOR_SCALE[[0, 2, 4, 5, 7, 9, 11]] = 1.0
_RANGE = (28.0, 100.0)  # MIDI: from a bass's low E to the top of a melody
_BASS_BELOW = 52.0      # MIDI: the bass is the strongest pitch under this
_WINDOW, _HOP, _RATE = 4096, 2048, 16_000
_MIN_FRAMES = 8         # about a second: less says nothing about a key
_TIE = 0.01             # fits this close to the best (shares of the profile) fit as well
_TONIC_WEIGHT = 0.05    # orders those: the signature whose tonics the song dwells on first


def key_name(signature: int) -> str:
    """'E major / C# minor' for signature 4, 'Eb major / C minor' for 3; 'unknown' for NO_KEY."""
    if signature == NO_KEY:
        return "unknown"
    return f"{_MAJOR_NAMES[signature]} major / {_MINOR_NAMES[signature]} minor"


def parse_key(text: str) -> int:
    """'A minor', 'Am', 'F# major', 'Eb', 'unknown' -> a signature index (a minor key's is its
    relative major's). Raises ValueError naming what is accepted."""
    m = re.fullmatch(r"\s*([A-Ga-g])([#b♯♭]?)\s*(major|maj|minor|min|m)?\s*", text)
    if text.strip().lower() == "unknown":
        return NO_KEY
    if not m:
        raise ValueError(f"key {text!r}: give a tonic and a mode, as 'A minor', 'F# major' or 'Eb' (major)")
    name = m.group(1).upper() + m.group(2).replace("♯", "#").replace("♭", "b").upper()
    tonic = _PITCH_CLASSES.index(_FLATS.get(name, name))
    minor = (m.group(3) or "major").lower() in ("minor", "min", "m")
    return (tonic + 3) % 12 if minor else tonic


def pitch_class_profile(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """[12] salience summed per pitch class over the frames of mono `wav`: each frame's strongest
    pitch and its strongest bass pitch, each weighted by its salience."""
    import soxr  # the build's resampler, loaded only where a key is measured

    mono = np.asarray(wav, dtype=np.float64)
    if sample_rate != _RATE and len(mono):
        mono = soxr.resample(mono, sample_rate, _RATE)
    profile = np.zeros(KEY_SIGNATURES)
    if len(mono) < _WINDOW:
        return profile
    frames = np.lib.stride_tricks.sliding_window_view(mono, _WINDOW)[::_HOP]
    for start in range(0, len(frames), 256):  # a 4-minute song in a few blocks of bounded memory
        spec = np.abs(np.fft.rfft(frames[start : start + 256] * np.hanning(_WINDOW), 2 * _WINDOW, axis=1))
        candidates, salience = harmonic_salience(spec, _RATE, 2 * _WINDOW, *_RANGE, harmonics=4)
        bass = candidates < _BASS_BELOW
        for pick, chosen in ((np.ones_like(bass), candidates), (bass, candidates[bass])):
            part = salience[:, pick]
            pitch_class = np.round(chosen[part.argmax(1)]).astype(int) % 12
            profile += np.bincount(pitch_class, weights=part.max(1), minlength=KEY_SIGNATURES)
    return profile


def key_signatures(wav: np.ndarray, sample_rate: int) -> tuple[int, ...]:
    """The signatures (0-11, by major tonic: 0 = C major / A minor) whose scales hold the largest
    share of the song's pitch-class profile, all those within _TIE of the best, best first. A
    melody that never sings the one pitch class telling two signatures a fourth apart fits both,
    and the audio cannot say which it is in; a model learns the key from songs that can. Empty
    (unknown) when under a second of audio or no pitch at all."""
    if len(wav) < _MIN_FRAMES * _HOP * sample_rate / _RATE:
        return ()
    profile = pitch_class_profile(wav, sample_rate)
    if profile.sum() <= 0:
        return ()
    share = profile / profile.sum()
    fits = np.array([np.dot(np.roll(_MAJOR_SCALE, shift), share) for shift in range(KEY_SIGNATURES)])
    tonics = share + np.roll(share, -9)  # each signature's major tonic and its relative minor's
    order = np.argsort(-(fits + _TONIC_WEIGHT * tonics), kind="stable")
    return tuple(int(k) for k in order if fits[k] >= fits.max() - _TIE)
