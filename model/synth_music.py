"""Toy songs whose audio a model can learn from their lyrics and genre: the rule, and its renderer.

Every song's melody is a fixed function of its lyric tokens (each pinyin syllable or Latin word
-> one note: pitch from its letters, duration from its tone or length; a line break -> a rest;
[chorus] an octave up), and the genre fixes tempo, timbre, key and drum pattern. The language
of the lyrics also sets the key: mostly Chinese stays in the genre's key, mostly Latin script
moves melody and bass a fourth up, a content rule that holds for songs a model never saw (the
per-syllable table needs far more training to generalise). So lyrics and genre really shape
the audio, and conditioning gain on this corpus is a meaningful check.

A song holds its complete lyrics: lines are added until their melody covers the length asked
for, and the audio lasts exactly as long as that melody (plus a short tail), as a real song's
lyrics cover the whole song. So lyric position l of L falls near time t of T.

Optionally (`breaks`) a section may open with an instrumental break: bars where bass and drums
play and the lead rests, drawn at random per song and not from the lyrics. Then the lyrics no
longer say when a line is sung, only lyrics.lrc does, as in real songs with intros and solos.

`pipeline synth` writes a corpus of these songs (pipeline/synth.py); the codec trainer trains on
them and eval scores generated songs against the notes this rule gives their lyrics.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autosong.model.lyrics import LyricsTokenizer, default_tokenizer, normalize_lyrics

SAMPLE_RATE = 44_100  # written as real corpora are: 44.1 kHz stereo, so the build resamples
SYNTH_RULE = "autosong-synth-v1"  # names the lyrics -> notes rule below; bump it when the rule changes

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)


@dataclass(frozen=True)
class GenreStyle:
    bpm: float
    harmonics: tuple[float, ...]  # amplitude of partials 1, 2, 3 ... of the lead voice
    scale: tuple[int, ...]
    root: int  # MIDI note of the tonic
    decay: float  # per-second exponential decay of each note (plucked vs sustained)
    drums: str  # "four" (kick every beat) | "backbeat" (kick 1,3 snare 2,4) | "none"


GENRES: dict[str, GenreStyle] = {
    "pop": GenreStyle(112, (1.0, 0.5, 0.25, 0.12), _MAJOR, 64, 1.5, "backbeat"),
    "rock": GenreStyle(136, (1.0, 0.0, 0.45, 0.0, 0.3, 0.0, 0.2), _MINOR, 57, 0.5, "backbeat"),
    "folk": GenreStyle(88, (1.0, 0.7, 0.2), _MAJOR, 62, 4.0, "none"),
    "electronic": GenreStyle(126, (1.0, 0.5, 0.33, 0.25, 0.2, 0.16), _MINOR, 55, 0.2, "four"),
    "ballad": GenreStyle(70, (1.0, 0.15), _MINOR, 60, 1.0, "none"),
}

_ZH_WORDS = list("我你他爱心梦想天空月光星海风雨花春夏秋冬夜晚明天回家远方时间歌声自由快乐温柔眼泪微笑")
_EN_WORDS = ("love night dream fire heart sky rain light dance home baby forever tonight "
             "shine away ocean river golden summer midnight stars hold run free").split()
_SECTIONS = ("[verse]", "[chorus]", "[verse]", "[chorus]", "[bridge]", "[chorus]", "[outro]")
_TONE_BEATS = {"1": 1.0, "2": 0.5, "3": 1.0, "4": 0.5, "5": 0.25}


def _lyric_line(rng: np.random.Generator) -> str:
    kind = rng.choice(["zh", "en", "mix"], p=[0.4, 0.35, 0.25])
    zh = "".join(rng.choice(_ZH_WORDS, size=int(rng.integers(4, 8))))
    en = " ".join(rng.choice(_EN_WORDS, size=int(rng.integers(3, 6))))
    return {"zh": zh, "en": en.capitalize(), "mix": f"{zh[:4]} {en.split()[0]} {en.split()[-1]}"}[kind]


TAIL_SECONDS = 0.5  # the last note rings out after the lyrics end
BREAK_BEATS = (0, 0, 2, 4, 8)  # an instrumental break's length, drawn per section (0: none)


def draw_breaks(rng: np.random.Generator, lyrics: str) -> list[float]:
    """Beats of instrumental break before each section of `lyrics` (one per section tag)."""
    sections = sum(line.strip().startswith("[") for line in lyrics.split("\n"))
    return [float(b) for b in rng.choice(BREAK_BEATS, size=sections)]


def make_lyrics(rng: np.random.Generator, seconds: float, genre: str, tokenizer: LyricsTokenizer) -> str:
    """Sections of lines, a line at a time, until the melody they imply covers `seconds`."""
    lines: list[str] = []
    chorus = None
    for n in range(64):
        tag = _SECTIONS[n % len(_SECTIONS)]
        if tag == "[chorus]" and chorus is not None:
            body = chorus  # a chorus repeats, as in songs
        else:
            body = [_lyric_line(rng) for _ in range(2 if tag in ("[chorus]", "[outro]") else 3)]
            if tag == "[chorus]":
                chorus = body
        lines += ([""] if lines else []) + [tag]
        for line in body:
            lines.append(line)
            text = "\n".join(lines) + "\n"
            if melody_seconds(text, genre, tokenizer) >= seconds:
                return text
    return text


def melody_seconds(lyrics: str, genre: str, tokenizer: LyricsTokenizer, breaks: Sequence[float] = ()) -> float:
    return sum(b for _, b in melody_notes(lyrics, genre, tokenizer, breaks)) * 60.0 / GENRES[genre].bpm


def song_seconds(lyrics: str, genre: str, tokenizer: LyricsTokenizer, breaks: Sequence[float] = ()) -> float:
    """How long the rendered song of these lyrics lasts: their whole melody and a tail."""
    return melody_seconds(lyrics, genre, tokenizer, breaks) + TAIL_SECONDS


def _is_syllable(tok: str) -> bool:
    return tok[-1].isdigit() and len(tok) > 1 and not tok.startswith("<")


def key_offset(lyrics: str, tokenizer: LyricsTokenizer) -> int:
    """Semitones the song is transposed by: 0 for mostly-Chinese lyrics, 5 for mostly Latin."""
    tokens = [tokenizer.tokens[i] for i in tokenizer.encode(lyrics)[1:]]
    syllables = sum(map(_is_syllable, tokens))
    letters = sum(len(t) == 1 and t.isalpha() for t in tokens)
    return 0 if syllables * 3 >= letters else 5  # a syllable is ~3 letters of a Latin word


def melody_notes(lyrics: str, genre: str, tokenizer: LyricsTokenizer,
                 breaks: Sequence[float] = (), transpose: int = 0) -> list[tuple[int | None, float]]:
    """The fixed rule: lyric tokens -> (MIDI pitch or None for a rest, beats). `breaks`: beats of
    rest at each section tag, in order (draw_breaks). `transpose`: semitones past the key the
    lyrics set (0: the rule's own key)."""
    return [(pitch, beats) for pitch, beats, *_ in _melody(lyrics, genre, tokenizer, breaks, transpose)]


def _melody(lyrics: str, genre: str, tokenizer: LyricsTokenizer,
            breaks: Sequence[float], moved: int = 0) -> list[tuple[int | None, float, str, str]]:
    """melody_notes, each note with what sings it (a syllable or a word; a line break's rest, or
    a section's break) and the section it is in."""
    style = GENRES[genre]
    notes: list[tuple[int | None, float, str, str]] = []
    rests = iter(breaks)
    key = key_offset(lyrics, tokenizer) + moved
    transpose, word, section = key, "", "[verse]"  # semitones: the key, plus a section's shift

    def pitch_of(text: str, shift: int = 0) -> int:
        degree = (sum(map(ord, text)) + shift) % 14  # two octaves of the genre's scale
        return style.root + transpose + 12 * (degree // 7) + style.scale[degree % 7]

    def end_word():
        nonlocal word
        if word:
            notes.append((pitch_of(word), max(0.5, 0.25 * len(word)), "word", section))
            word = ""

    for tok in (tokenizer.tokens[i] for i in tokenizer.encode(lyrics)[1:]):
        if tok.startswith("["):
            end_word()
            section, transpose = tok, {"[chorus]": 12, "[bridge]": 5}.get(tok, 0) + key
            rest = next(rests, 0.0)
            if rest:
                notes.append((None, rest, "section break", section))
        elif _is_syllable(tok):  # pinyin syllable: its tone sets length and step
            end_word()
            notes.append((pitch_of(tok[:-1], int(tok[-1])), _TONE_BEATS[tok[-1]], "syllable", section))
        elif tok == "<nl>":
            end_word()
            notes.append((None, 1.0, "line break", section))
        elif len(tok) == 1 and tok.isalnum():
            word += tok
        else:
            end_word()
    end_word()
    return notes


def note_timeline(lyrics: str, genre: str, tokenizer: LyricsTokenizer,
                  breaks: Sequence[float] = (), transpose: int = 0) -> list[tuple[float, float, int]]:
    """The sung notes as (start seconds, length seconds, MIDI pitch); rests left out."""
    beat = 60.0 / GENRES[genre].bpm
    out, pos = [], 0.0
    for pitch, beats in melody_notes(lyrics, genre, tokenizer, breaks, transpose):
        if pitch is not None:
            out.append((pos, beats * beat, pitch))
        pos += beats * beat
    return out


def line_starts(lyrics: str, genre: str, tokenizer: LyricsTokenizer, breaks: Sequence[float] = ()) -> list[float]:
    """When each non-empty line of the lyrics starts, in seconds of the rendered song: the melody's
    time after the rest that the line break before it makes. A blank line (between sections) has
    its own break and rest, so the line after it starts a beat later. What the synth's lyrics.lrc says."""
    beat = 60.0 / GENRES[genre].bpm
    starts, pos = [0.0], 0.0
    for _, beats, source, _ in _melody(lyrics, genre, tokenizer, breaks):
        pos += beats * beat
        if source == "line break":  # its rest: the next line starts after it
            starts.append(pos)
    lines = normalize_lyrics(lyrics).split("\n")  # as the tokenizer reads them: one break before each
    if len(starts) != len(lines):
        raise ValueError(f"{len(lines)} lines but {len(starts) - 1} line breaks in the melody")
    return [start for start, line in zip(starts, lines) if line]


def render_song(lyrics: str, genre: str, seconds: float, rng: np.random.Generator,
                tokenizer: LyricsTokenizer | None = None, breaks: Sequence[float] = (),
                transpose: int = 0) -> np.ndarray:
    """Stereo float32 [N, 2] at SAMPLE_RATE, `seconds` long: lead melody + bass + drums; the lead
    rests through the `breaks` (beats at each section tag) while bass and drums play on. `transpose`:
    semitones past the lyrics' key, lead and bass alike (a song as if written in another key)."""
    style = GENRES[genre]
    tokenizer = tokenizer or default_tokenizer()
    sr, n = SAMPLE_RATE, int(seconds * SAMPLE_RATE)
    beat = 60.0 / style.bpm
    lead = np.zeros(n)
    for start_s, length_s, pitch in note_timeline(lyrics, genre, tokenizer, breaks, transpose):
        start, length = int(start_s * sr), int(length_s * sr)
        if start >= n:
            break
        t = np.arange(min(length, n - start)) / sr
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        # a 5.5 Hz vibrato of +-0.4 % in frequency: the phase integrates it (a frequency that
        # multiplied t instead would wander further the longer the note is held)
        cycles = f0 * (t + 0.004 / (2 * np.pi * 5.5) * (1 - np.cos(2 * np.pi * 5.5 * t)))
        tone = sum(a * np.sin(2 * np.pi * (k + 1) * cycles) for k, a in enumerate(style.harmonics))
        env = np.minimum(1, t * 80) * np.exp(-style.decay * t) * np.minimum(1, (t[-1] - t + 1e-3) * 60)
        lead[start : start + len(t)] += 0.35 * env * tone
    bass, drums = np.zeros(n), np.zeros(n)
    beat_len = int(beat * sr)
    key = key_offset(lyrics, tokenizer) + transpose
    for b, start in enumerate(range(0, n, beat_len)):
        t = np.arange(min(beat_len, n - start)) / sr
        degree = (0, 4, 5, 3)[(b // 4) % 4]  # I-V-vi-IV, a bar each
        f_bass = 440.0 * 2 ** ((style.root + key - 24 + style.scale[degree] - 69) / 12)
        bass[start : start + len(t)] += 0.25 * np.sin(2 * np.pi * f_bass * t) * np.exp(-2 * t)
        kick = style.drums == "four" or (style.drums == "backbeat" and b % 2 == 0)
        if kick:
            drums[start : start + len(t)] += 0.5 * np.sin(2 * np.pi * 55 * t * (1 + np.exp(-30 * t))) * np.exp(-12 * t)
        if style.drums == "backbeat" and b % 2 == 1:
            drums[start : start + len(t)] += 0.2 * rng.standard_normal(len(t)) * np.exp(-18 * t)
        if style.drums == "four":  # off-beat hi-hat
            h = start + beat_len // 2
            m = min(beat_len // 4, max(0, n - h))
            drums[h : h + m] += 0.06 * rng.standard_normal(m) * np.exp(-60 * np.arange(m) / sr)
    left = lead * 0.9 + bass + drums
    right = lead + bass * 0.9 + drums
    mix = np.stack([left, right], axis=1)
    return (mix / max(1.0, np.abs(mix).max() / 0.9)).astype(np.float32)


def expected_notes(lyrics: str, genre: str) -> list[tuple[float, float, int]]:
    """(start s, length s, MIDI) of the sung notes the rule gives these lyrics: the truth a
    generated song's transcribed notes are scored against (eval/notes.py)."""
    return note_timeline(lyrics, genre, default_tokenizer())


def expected_note_sources(lyrics: str, genre: str) -> list[tuple[str, str]]:
    """What sings each of expected_notes (a "syllable" or a "word") and its section tag, in order."""
    return [(source, section) for pitch, _, source, section in _melody(lyrics, genre, default_tokenizer(), ())
            if pitch is not None]


def lowest_lead_pitch(genre: str) -> int:
    """The lowest MIDI note the lead can sing in this genre (its tonic; a key or section shift only
    raises it). The bass plays below it (two octaves down, at most a major seventh up), so a pitch at
    or above it is the melody: what tells a song with a lead from its backing alone."""
    return GENRES[genre].root


def sings_synth_notes(card, genre: str) -> bool:
    """Whether the rule says which notes a song of this dataset (a DatasetCard) and genre should sing."""
    return card.synth is not None and genre in GENRES
