"""`autosong pipeline synth`: a corpus of toy songs (model/synth_music.py's rule) as a user's corpus
looks: song folders of lyrics.txt, genre.txt and mp3 or flac audio at 44.1 kHz stereo, plus a
synth.json at the root naming the rule, which the build records in dataset.json. With `breaks`,
sections open with instrumental breaks of random length, so only lyrics.lrc says when lines start.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from autosong.model.lrc import LrcLine, write_lrc
from autosong.model.lyrics import INSTRUMENTAL_LYRICS, default_tokenizer
from autosong.model.synth_music import (GENRES, SAMPLE_RATE, SYNTH_RULE, draw_breaks, line_starts, make_lyrics,
                                        render_song, song_seconds)

MARKER = "synth.json"  # at the corpus root: the build records the rule in dataset.json


def synth_corpus(out_dir: str | Path, songs: int = 8, seconds: float = 10.0, seed: int = 0,
                 workers: int | None = None, breaks: bool = False, instrumental: float = 0.0,
                 longest: float | None = None) -> list[Path]:
    """Write `out_dir/song_XXX/{lyrics.txt, lyrics.lrc, audio.mp3|audio.flac, genre.txt}`; returns the
    folders. lyrics.lrc holds the time each line starts to be sung.
    Each song lasts at least `seconds`: its complete lyrics' melody, so up to a line longer (and its breaks).
    Songs are independent (song i draws from its own seeded generator), so `workers` processes
    (default: the CPUs, up to 8) write the same corpus as one would. `breaks`: instrumental breaks
    before sections (model/synth_music.py), off by default. `instrumental`: the share of songs that
    are backing alone (bass and drums, no lead), whose lyrics are INSTRUMENTAL_LYRICS, as a real
    corpus tags its instrumental tracks; the other songs are the same whatever the share. `longest`:
    each song lasts at least a length drawn uniformly from [seconds, longest] by its own generator
    (songs of several lengths, so a model sees the later lines and sections of long songs too)."""
    import json
    import os

    if longest is not None and longest < seconds:
        raise ValueError(f"longest {longest:g} s is shorter than seconds {seconds:g} s")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = {"rule": SYNTH_RULE, "songs": songs, "seconds": seconds, "seed": seed} | ({"breaks": True} if breaks else {}) \
        | ({"instrumental": instrumental} if instrumental else {}) | ({"longest": longest} if longest else {})
    (out_dir / MARKER).write_text(json.dumps(marker) + "\n")
    jobs = [(out_dir, i, song_length(seconds, longest, seed, i), seed, breaks, instrumental) for i in range(songs)]
    workers = min(workers or min(8, os.cpu_count() or 1), songs)
    if workers <= 1:
        return [_write_song(*job) for job in jobs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:  # no fork of torch's threads
        return list(pool.map(_write_song, *zip(*jobs), chunksize=max(1, songs // (4 * workers))))


def song_length(seconds: float, longest: float | None, seed: int, i: int) -> float:
    """The least length of song i: `seconds`, or drawn from [seconds, longest] by its own generator."""
    if not longest or longest == seconds:
        return seconds
    return seconds + (longest - seconds) * float(np.random.default_rng([seed, i, 2]).random())


def _write_song(out_dir: Path, i: int, seconds: float, seed: int, breaks: bool, instrumental: float = 0.0) -> Path:
    tokenizer = default_tokenizer()
    names = sorted(GENRES)
    rng = np.random.default_rng([seed, i])
    genre = names[int(rng.integers(len(names)))]
    rests = []
    if np.random.default_rng([seed, i, 1]).random() < instrumental:  # its own draw: other songs stay as they were
        lyrics = INSTRUMENTAL_LYRICS
        audio = render_song(lyrics, genre, seconds * (1 + rng.random()), rng, tokenizer)  # no notes: the backing
    else:
        lyrics = make_lyrics(rng, seconds, genre, tokenizer)
        rests = draw_breaks(rng, lyrics) if breaks else []  # drawn only when asked: the default corpus stays as it was
        audio = render_song(lyrics, genre, song_seconds(lyrics, genre, tokenizer, rests), rng, tokenizer, rests)
    folder = out_dir / f"song_{i:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lyrics.txt").write_text(lyrics, encoding="utf-8")
    lines = [line for line in lyrics.split("\n") if line.strip()]
    timed = [LrcLine(start, line) for start, line in zip(line_starts(lyrics, genre, tokenizer, rests), lines)]
    (folder / "lyrics.lrc").write_text(write_lrc(timed), encoding="utf-8")
    (folder / "genre.txt").write_text(genre + "\n", encoding="utf-8")
    for stale in folder.glob("audio.*"):
        stale.unlink()
    if i % 2 == 0:
        sf.write(folder / "audio.mp3", audio, SAMPLE_RATE, format="MP3")
    else:
        sf.write(folder / "audio.flac", audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return folder


def corpus_rule(corpus: str | Path) -> str | None:
    """The synth rule a corpus was written with (its `synth.json`), or None for any other corpus."""
    import json

    try:
        rule = json.loads((Path(corpus) / MARKER).read_text()).get("rule")
    except (OSError, ValueError, AttributeError):
        return None
    return rule if isinstance(rule, str) else None
