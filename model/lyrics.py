"""Lyrics front-end: normalised lyrics + genre -> token ids over a fixed, versioned vocabulary.

Hanzi become toned pinyin syllables (pypinyin TONE3, neutral tone 5, ü written v), Latin script
becomes lower-case graphemes, anything else falls back to its UTF-8 bytes. Line breaks and
structure tags ([verse], [chorus] ...) are tokens of their own, and a genre token leads. The
vocabulary is the file `lyrics_vocab_v1.txt` beside this module: ids never move between builds.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

from autosong.manifests.errors import AutoSongError
from autosong.model.text_encoding import DecodedText, decode_text

VOCAB_VERSION = "lyrics-v1"
VOCAB_FILE = Path(__file__).with_name("lyrics_vocab_v1.txt")
MAX_GENRES = 256
UNKNOWN_GENRE = "unknown"

PAD, UNK, EOS, NEWLINE, SPACE = "<pad>", "<unk>", "<eos>", "<nl>", "<sp>"
OTHER_TAG = "<tag:other>"
# An instrumental track's lyrics: the section tag alone, no line of words. A corpus marks its
# instrumental tracks so (lyrics.txt), and `autosong edit --instrumental` asks a model for it.
INSTRUMENTAL_LYRICS = "[instrumental]\n"

# CJK and full-width punctuation -> the ASCII graphemes the vocabulary has.
_PUNCT = str.maketrans({
    "，": ",", "。": ".", "！": "!", "？": "?", "、": ",", "：": ":", "；": ";", "“": '"', "”": '"',
    "‘": "'", "’": "'", "（": "(", "）": ")", "《": '"', "》": '"', "「": '"', "」": '"', "—": "-",
    "–": "-", "…": "...", "～": "-", "·": " ", "\u3000": " ", "\t": " ",
})
_TAG_LINE = re.compile(r"^\[([^\]]{1,40})\]\s*")
_TAGS = re.compile(r"\[[^\]]*\]")  # a structure tag anywhere: not a word
_WORD = re.compile(r"\w+")
_SPACES = re.compile(r" {2,}")


def is_hanzi(ch: str) -> bool:
    cp = ord(ch)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF
            or 0x20000 <= cp <= 0x2EBEF)


def normalize_lyrics(text: str) -> str:
    """NFC, unified line breaks, ASCII punctuation, single spaces, no trailing blanks, at most
    one empty line in a row (a section break)."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.lstrip("\ufeff").translate(_PUNCT)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def without_tags(text: str) -> str:
    """The text with its structure tags ([verse], [chorus] ...) blanked out."""
    return _TAGS.sub(" ", text)


def lyric_words(text: str) -> list[str]:
    """The words of lyrics (runs of letters or digits; a run of hanzi is one), lower case, tags
    left out: what lyrics.txt and lyrics.lrc must agree on, and what their lines are matched by."""
    return [w.lower() for w in _WORD.findall(without_tags(text))]


def normalize_genre(raw: str | None) -> str:
    """'Hip-Hop, Rap ' -> 'hip-hop': the first non-empty line, first of a list, lower case, any
    run of whitespace as one space; '' -> unknown."""
    if not raw:
        return UNKNOWN_GENRE
    lines = [line for line in unicodedata.normalize("NFC", raw).splitlines() if line.strip()]
    first = re.split(r"[,;/|]", lines[0] if lines else "")[0]
    name = re.sub(r"\s+", " ", first).strip().lower()
    return name or UNKNOWN_GENRE


def read_lyrics_file(path) -> DecodedText:
    """The one lyrics reader (build and generate): the text, its encoding, and whether that
    encoding was a weak guess, by model/text_encoding.py's rule (UTF-8, then Western European
    cp1252, then a detector limited to the encodings corpora hold)."""
    decoded = decode_text(open(path, "rb").read())
    if decoded is None:
        raise AutoSongError(f"{path} is not text in any encoding we can detect; save it as UTF-8")
    return decoded


def weak_encoding_warning(path, decoded: DecodedText) -> str:
    return (f"{path}: read as {decoded.encoding}, a weak guess (little or noisy evidence); "
            f"if the lyrics look wrong, save the file as UTF-8")


class LyricsTokenizer:
    """Text -> ids and back. `encode(lyrics, genre_slot)` starts with `<genre:slot>`."""

    def __init__(self, vocab_file: Path = VOCAB_FILE):
        raw = vocab_file.read_bytes()
        self.tokens: list[str] = raw.decode("utf-8").rstrip("\n").split("\n")
        self.ids: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        self.version = VOCAB_VERSION
        self.sha256 = hashlib.sha256(raw).hexdigest()
        self.unk_id = self.ids[UNK]
        self.newline_id, self.space_id = self.ids[NEWLINE], self.ids[SPACE]
        self._genre0 = self.ids["<genre:0>"]

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def genre_id(self, slot: int) -> int:
        if not 0 <= slot < MAX_GENRES:
            raise ValueError(f"genre slot {slot} outside [0, {MAX_GENRES})")
        return self._genre0 + slot

    def _tag_id(self, label: str) -> int:
        words = re.sub(r"[^a-z\- ]", " ", label.lower()).split()
        key = "-".join(words)
        for candidate in (key, words[0] if words else ""):
            if f"[{candidate}]" in self.ids:
                return self.ids[f"[{candidate}]"]
        return self.ids[OTHER_TAG]

    def _text_ids(self, text: str, out: list[int]) -> None:
        from pypinyin import Style, lazy_pinyin

        i = 0
        while i < len(text):
            ch = text[i]
            if is_hanzi(ch):
                j = i
                while j < len(text) and is_hanzi(text[j]):
                    j += 1
                # A whole run at once, so pypinyin's phrase table resolves polyphones.
                for syl in lazy_pinyin(text[i:j], style=Style.TONE3, neutral_tone_with_five=True):
                    out.append(self.ids.get(syl, self.unk_id))
                i = j
                continue
            if ch == " ":
                if out and out[-1] != self.space_id:
                    out.append(self.space_id)
            else:
                low = ch.lower()
                if low in self.ids and len(low) == 1:
                    out.append(self.ids[low])
                else:
                    out.extend(self.ids[f"<0x{b:02X}>"] for b in low.encode("utf-8"))
            i += 1

    def encode(self, lyrics: str, genre_slot: int = 0) -> list[int]:
        ids = [self.genre_id(genre_slot)]
        for n, line in enumerate(normalize_lyrics(lyrics).split("\n")):
            if n:
                ids.append(self.newline_id)
            m = _TAG_LINE.match(line)
            if m:
                ids.append(self._tag_id(m.group(1)))
                line = line[m.end():]
            self._text_ids(line, ids)
        return ids

    def word_slots(self, lyrics: str) -> list[int]:
        """Where each of lyric_words(lyrics) starts in encode(lyrics)'s ids: the memory slot of its
        first id. The tokenizer reads a line left to right, so the ids of a line's text before a
        word are the ids of that prefix."""
        slots, base = [], 1  # after the genre token
        for n, line in enumerate(normalize_lyrics(lyrics).split("\n")):
            base += 1 if n else 0  # the line break
            m = _TAG_LINE.match(line)
            if m:
                base, line = base + 1, line[m.end():]
            masked = _TAGS.sub(lambda t: " " * len(t.group()), line)  # same offsets, tags not words
            for word in _WORD.finditer(masked):
                prefix: list[int] = []
                self._text_ids(line[: word.start()], prefix)
                slots.append(base + len(prefix))
            rest: list[int] = []
            self._text_ids(line, rest)
            base += len(rest)
        return slots

    def decode(self, ids, genre_names: list[str] | None = None) -> str:
        """Readable text: pinyin syllables separated by spaces, bytes re-assembled as UTF-8."""
        parts: list[str] = []
        pending = bytearray()
        prev = "start"  # kind of the last emitted piece: start | syllable | word | other

        for i in ids:
            tok = self.tokens[int(i)]
            if tok.startswith("<0x"):
                pending.append(int(tok[3:5], 16))
                continue
            if pending:
                parts.append(pending.decode("utf-8", errors="replace"))
                pending.clear()
                prev = "word"
            if tok in (PAD, EOS):
                continue
            if tok.startswith("<genre:"):
                slot = int(tok[7:-1])
                name = genre_names[slot] if genre_names and slot < len(genre_names) else str(slot)
                parts.append(f"<genre:{name}>\n")
                kind = "other"
            elif tok in (NEWLINE, SPACE):
                parts.append("\n" if tok == NEWLINE else " ")
                kind = "other"
            elif tok[-1].isdigit() and len(tok) > 1:  # a toned pinyin syllable
                parts.append((" " if prev in ("syllable", "word") else "") + tok)
                kind = "syllable"
            else:
                kind = "word" if tok.isalnum() else "other"
                parts.append((" " if prev == "syllable" and kind == "word" else "") + tok)
            prev = kind
        if pending:
            parts.append(pending.decode("utf-8", errors="replace"))
        return "".join(parts)


# How much singing time each kind of lyric id stands for, in syllables: the alignment prior's
# lyric coordinate when model.align_units is "syllables". A toned pinyin syllable is one sung
# syllable, a Latin letter a third of one (English runs ~3 letters per syllable), a line break
# a breath; tags, spaces, punctuation and the genre token take no time.
SUNG_UNITS = {"syllable": 1.0, "letter": 1 / 3, "newline": 1.0, "tag": 0.0, "silent": 0.0}


def id_kind(tok: str) -> str:
    """What a vocabulary token is sung as: a syllable, a letter (of a spelled word, or a byte of
    one in another script), a newline (a breath), a section tag ([verse]: not sung), or silent
    (spaces, punctuation, specials)."""
    if tok == NEWLINE:
        return "newline"
    if tok.startswith("[") and tok.endswith("]"):
        return "tag"
    if tok.startswith(("<", "[")) or not tok:
        return "letter" if tok.startswith("<0x") and int(tok[3:5], 16) >= 0x80 else "silent"  # non-ASCII bytes
    if tok[-1].isdigit() and len(tok) > 1:
        return "syllable"
    return "letter" if len(tok) == 1 and tok.isalnum() else "silent"


def sung_units(tokenizer: LyricsTokenizer, tag: float = 0.0) -> list[float]:
    """Syllables of singing per vocabulary id (SUNG_UNITS by the id's kind); a section tag counts
    `tag` (model.tag_units: the intro or break before its lines), else nothing."""
    units = {**SUNG_UNITS, "tag": tag}
    return [units[id_kind(tok)] for tok in tokenizer.tokens]


@lru_cache(maxsize=1)
def default_tokenizer() -> LyricsTokenizer:
    return LyricsTokenizer()
