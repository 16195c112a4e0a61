"""How well a codec renders *your* music, before you build a dataset with it (`autosong codec check
DIR --codec X`, autosong/codec_cli.py). Each audio file (or song folder's audio) gives an excerpt that goes through the
codec and back; against the original it is scored by log-mel distance (nats, 0 = the same
spectrum), loudness change (dB) and the energy kept in four bands (dB), beside two baselines
measured on the same excerpt: white noise of the same loudness, and the untrained `test` codec.
A codec no closer than noise renders nothing of the music: `tiny` was trained on synth songs only,
so real music usually needs a codec trained on it (`autosong codec train --data DIR`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autosong.eval.audio_metrics import mel_distance
from autosong.manifests.errors import AutoSongError
from autosong.model.audio import load_audio

AUDIO_SUFFIXES = (".flac", ".wav", ".mp3", ".ogg")
BANDS = ((0, 500), (500, 2000), (2000, 5000), (5000, 12000))  # Hz
BAND_NAMES = ("<0.5k", "0.5-2k", "2-5k", "5-12k")


@dataclass
class CodecScore:
    file: str
    seconds: float
    mel: float          # log-mel distance, codec against original
    noise_mel: float    # white noise of the original's loudness against it
    test_mel: float     # the untrained test codec against it
    loudness_db: float  # codec's RMS level minus the original's
    bands_db: list[float]  # energy kept per BANDS band, codec against original


def audio_files(folder: Path, limit: int) -> list[Path]:
    """Audio files under `folder` (song folders' audio.* included), sorted, at most `limit`."""
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise AutoSongError(f"{folder}: no such folder or file")
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not found:
        raise AutoSongError(f"{folder} holds no audio file ({', '.join(AUDIO_SUFFIXES)})")
    return found[:limit]


def band_energy(wav: np.ndarray, sr: int) -> np.ndarray:
    """Energy per BANDS band (linear), from a 2048-point spectrogram."""
    n_fft = 2048
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(wav, (0, n_fft)), n_fft)[::n_fft // 4]
    power = (np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2).sum(0)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    return np.array([power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in BANDS])


def score_file(path: Path, codec, test_codec, seconds: float, rng: np.random.Generator) -> CodecScore:
    sr = codec.sample_rate
    audio = load_audio(path, sr, max_seconds=seconds * 3)
    start = max(0, min(len(audio.wav) - int(seconds * sr), len(audio.wav) // 3))  # past an intro
    wav = audio.wav[start : start + int(seconds * sr)].astype(np.float32)
    if len(wav) < sr // 2:
        raise AutoSongError(f"{path}: shorter than half a second")
    rms = float(np.sqrt(np.mean(wav**2)) + 1e-9)
    back = codec.decode(codec.encode(wav, sr))[: len(wav)]
    noise = rng.standard_normal(len(wav)).astype(np.float32) * rms
    test = test_codec.decode(test_codec.encode(wav, sr))[: len(wav)]
    kept = 10 * np.log10((band_energy(back, sr) + 1e-9) / (band_energy(wav, sr) + 1e-9))
    return CodecScore(str(path), len(wav) / sr, mel_distance(wav, back, sr), mel_distance(wav, noise, sr),
                      mel_distance(wav, test, sr), float(20 * np.log10((np.sqrt(np.mean(back**2)) + 1e-9) / rms)),
                      [float(k) for k in kept])


def format_scores(codec_name: str, scores: list[CodecScore]) -> str:
    bands = " ".join(f"{name:>6}" for name in BAND_NAMES)
    lines = [f"codec {codec_name}: log-mel distance (nats, lower is better) against noise of the same loudness and "
             f"the untrained test codec; loudness and band energy kept (dB)",
             f"{'file':<32}{'codec':>7}{'noise':>7}{'test':>7}{'level':>7}   {bands}"]
    for s in scores:
        name = Path(s.file).name if Path(s.file).name not in ("audio.mp3", "audio.flac", "audio.wav", "audio.ogg") \
            else Path(s.file).parent.name
        lines.append(f"{name[:31]:<32}{s.mel:7.2f}{s.noise_mel:7.2f}{s.test_mel:7.2f}{s.loudness_db:+7.1f}   "
                     + " ".join(f"{b:+6.1f}" for b in s.bands_db))
    mel, noise = np.mean([s.mel for s in scores]), np.mean([s.noise_mel for s in scores])
    lines.append(f"{'mean':<32}{mel:7.2f}{noise:7.2f}{np.mean([s.test_mel for s in scores]):7.2f}"
                 f"{np.mean([s.loudness_db for s in scores]):+7.1f}")
    worse = sum(s.mel >= s.noise_mel for s in scores)
    if worse or mel > 0.8 * noise:
        lines.append(f"\n{codec_name} renders this music poorly ({worse} of {len(scores)} files no closer than noise; "
                     f"mean {mel:.2f} against noise {noise:.2f}). `tiny` knows only the synth songs it was trained on: "
                     f"train a codec on your music with `autosong codec train --data DIR --out codecs/mine`, or use "
                     f"a local copy of facebook/encodec_24khz")
    return "\n".join(lines)
