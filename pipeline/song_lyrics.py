"""A song's lyrics as the build reads them: lyrics.txt, lyrics.lrc (timed, model/lrc.py) or both.
The model's memory is the complete lyrics either way (lyrics.txt when there is one, else the
LRC's lines in singing order); an LRC adds when each line starts. Every problem is a ValueError
whose words become the song's reject row: an LRC's malformed line (by number), words that differ
between the two files, a line that starts after the audio ends."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from autosong.model.lrc import LrcError, parse_lrc
from autosong.model.lyrics import lyric_words, normalize_lyrics, read_lyrics_file


@dataclass
class SongLyrics:
    text: str                                   # normalised: what the tokenizer reads
    encoding: str                               # of the file the text came from
    weak: bool = False                          # a weak guess at that encoding
    line_starts: list[float] = field(default_factory=list)  # seconds, one per timed line ([] untimed)
    line_numbers: list[int] = field(default_factory=list)   # each timed line's line in lyrics.lrc
    line_words: list[int] = field(default_factory=list)     # each timed line's first word (of lyric_words;
                                                            # a line without words: the next word)

    def line_slots(self, tokenizer) -> list[int]:
        """The memory slot where each timed line starts: its first word's first id (a line without
        words: the next word's, or the last id after the last word). [] when untimed, or when the
        words of the text and of the LRC do not pair up (the song then trains with the untimed prior)."""
        words = tokenizer.word_slots(self.text)
        if not self.line_words or len(words) < max(self.line_words):
            return []
        end = len(tokenizer.encode(self.text)) - 1
        return [words[w] if w < len(words) else end for w in self.line_words]


def _read(path: str, max_bytes: int, limit_words: str):
    size = os.path.getsize(path)
    name = os.path.basename(path)
    if size > max_bytes:
        raise ValueError(f"{name} is {size / 1e6:.1f} MB, far more than a song's lyrics (limit {limit_words})")
    return read_lyrics_file(path)


def read_song_lyrics(txt: str | None, lrc: str | None, max_bytes: int, limit_words: str) -> SongLyrics:
    """The lyrics of a song folder from lyrics.txt and/or lyrics.lrc (paths, None where absent)."""
    plain = _read(txt, max_bytes, limit_words) if txt else None
    timed = None
    if lrc:
        decoded = _read(lrc, max_bytes, limit_words)
        try:
            timed = parse_lrc(decoded.text)
        except LrcError as err:
            raise ValueError(f"lyrics.lrc {err}") from None
        if not timed.lines:
            raise ValueError("lyrics.lrc has no timed line")
        if plain is None:
            plain = decoded
    text = normalize_lyrics(plain.text if txt else timed.text)
    if not text:
        raise ValueError(f"{'lyrics.txt' if txt else 'lyrics.lrc'} is empty")
    out = SongLyrics(text, plain.encoding, plain.weak)
    if timed is not None:
        if txt:
            _require_same_words(plain.text, timed.text)
        out.line_starts = [line.start for line in timed.lines]
        out.line_numbers = [line.number for line in timed.lines]
        before = 0
        for line in timed.lines:
            out.line_words.append(before)
            before += len(lyric_words(line.text))
    return out


def _require_same_words(plain: str, timed: str) -> None:
    a, b = lyric_words(plain), lyric_words(timed)
    if a == b:
        return
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    txt, lrc = (repr(words[i]) if i < len(words) else "the end" for words in (a, b))
    raise ValueError(f"lyrics.txt and lyrics.lrc disagree at word {i + 1}: {txt} in lyrics.txt, {lrc} in "
                     f"lyrics.lrc (sing the same words in both, or keep one file)")


def refuse_past_the_end(lyrics: SongLyrics, seconds: float) -> None:
    """A timed line that starts after the audio ends: the LRC belongs to another cut of the song."""
    for start, number in zip(lyrics.line_starts, lyrics.line_numbers):
        if start > seconds:
            raise ValueError(f"lyrics.lrc line {number} starts at {start:.2f} s, past the audio's end at "
                             f"{seconds:.2f} s")
