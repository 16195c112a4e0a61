"""What the codec trainer learns from: synth songs or a corpus folder (the first seconds of each
song), plus the fixed reference signal, and random crops of them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from autosong.manifests.errors import AutoSongError
from autosong.model.audio import load_audio
from autosong.model.codec import reference_signal
from autosong.model.key_shift import moved_to_c
from autosong.model.lyrics import default_tokenizer
from autosong.model.song_key import key_signatures
from autosong.model.synth_music import GENRES, SAMPLE_RATE, make_lyrics, render_song
from autosong.pipeline.scan import find_audio
from autosong.train.codec.config import CodecTrainConfig



def corpus_audio(dataset: Path, songs: int, seconds: float, sample_rate: int, log=print) -> list[np.ndarray]:
    """The first `seconds` of up to `songs` songs of a corpus folder, in folder order."""
    folders = sorted(p for p in dataset.glob("song_*") if p.is_dir()) if dataset.is_dir() else []
    clips = []
    for folder in folders:
        if len(clips) >= songs:
            break
        audio = find_audio(folder)
        if audio is None:
            continue
        try:
            clips.append(load_audio(audio, sample_rate, max_seconds=seconds).wav)
        except (AutoSongError, OSError) as err:
            log(f"skipped {audio}: {err}")
    if not clips:
        raise AutoSongError(f"--data {dataset}: no decodable song_*/audio.* to learn from")
    return clips


def training_audio(cfg: CodecTrainConfig, sample_rate: int, log=print) -> list[np.ndarray]:
    """The fixed reference signal and the songs (mono, at the codec's rate): up to `songs` of
    the corpus `data` (the first `song_seconds` of each; an undecodable file is skipped with a
    line), or synth songs; under `key_normalise` each song moved to C the way the build moves it."""
    songs = corpus_audio(Path(cfg.data), cfg.songs, cfg.song_seconds, sample_rate, log) if cfg.data \
        else synth_audio(cfg, sample_rate)
    if cfg.key_normalise:
        songs = [moved_to_c(wav, sample_rate, key_signatures(wav, sample_rate))[0] for wav in songs]
    return [reference_signal(sr=sample_rate)] + songs


def synth_audio(cfg: CodecTrainConfig, sample_rate: int) -> list[np.ndarray]:
    """`cfg.songs` synth songs of `cfg.song_seconds`, the genres in turn, mono at `sample_rate`."""
    import soxr

    tok = default_tokenizer()
    names = sorted(GENRES)
    clips = []
    for i in range(cfg.songs):
        rng = np.random.default_rng([cfg.seed, 7, i])
        genre = names[i % len(names)]
        lyrics = make_lyrics(rng, cfg.song_seconds, genre, tok)
        stereo = render_song(lyrics, genre, cfg.song_seconds, rng, tok)
        clips.append(soxr.resample(stereo.mean(1), SAMPLE_RATE, sample_rate, quality="HQ").astype(np.float32))
    return clips


def random_crops(clips: list[np.ndarray], n: int, crop: int, rng: np.random.Generator) -> torch.Tensor:
    out = np.zeros((n, crop), dtype=np.float32)
    for i in range(n):
        clip = clips[int(rng.integers(len(clips)))]
        start = int(rng.integers(0, max(1, len(clip) - crop)))
        piece = clip[start : start + crop]
        out[i, : len(piece)] = piece * rng.uniform(0.5, 1.0)  # a little gain augmentation
    return torch.from_numpy(out)
