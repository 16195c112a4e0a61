"""Timed lyrics in the LRC format: read a file into its lines' start times, and write one.

Read: `[mm:ss.xx] line` (also `[mm:ss]`, `[mm:ss.xxx]`, `[mm:ss:xx]`), several stamps on one line
(a chorus sung at each), `[offset:+/-ms]` (a positive offset shows the lyrics sooner: it is taken
off every stamp), metadata tags (`[ar:...]`, `[ti:...]`, `[length:...]` ...), blank lines, and
enhanced word stamps `<mm:ss.xx>` inside a line (their times are kept per word). Anything else
is an LrcError that names the line: a malformed stamp, a line of text without a stamp, or a line
whose stamp is earlier than the line before it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

STAMP = re.compile(r"\[(\d{1,3}):(\d{1,2})(?:[.:](\d{1,3}))?\]")
TAG = re.compile(r"\[([a-zA-Z#]+):(.*)\]\s*$")
WORD_STAMP = re.compile(r"<(\d{1,3}):(\d{1,2})(?:[.:](\d{1,3}))?>")
BRACKET = re.compile(r"^\s*[\[<]")


class LrcError(ValueError):
    """A malformed LRC file: the message starts with the line number."""


@dataclass
class LrcLine:
    start: float                  # seconds, the offset applied
    text: str                     # the line without its stamps
    words: list[tuple[float, str]] = field(default_factory=list)  # enhanced stamps: (start, word)
    number: int = 0               # the line of the file it came from (0: not read from a file)


@dataclass
class Lrc:
    lines: list[LrcLine]          # in singing order (a line with several stamps appears once per stamp)
    tags: dict[str, str]

    @property
    def text(self) -> str:
        """The lyrics as sung, one line per timed line: what the model reads."""
        return "\n".join(line.text for line in self.lines)


def _seconds(m: re.Match, where: str) -> float:
    minutes, seconds, fraction = m.group(1), m.group(2), m.group(3)
    if int(seconds) >= 60:
        raise LrcError(f"{where}: {m.group(0)} has {seconds} seconds (at most 59)")
    frac = int(fraction) / 10 ** len(fraction) if fraction else 0.0
    return int(minutes) * 60 + int(seconds) + frac


def parse_lrc(source: str) -> Lrc:
    """LRC text -> Lrc (lines sorted by start time); LrcError names the first bad line."""
    tags: dict[str, str] = {}
    stamped: list[tuple[float, int, str, list[tuple[float, str]]]] = []
    previous = None
    for number, raw in enumerate(source.splitlines(), start=1):
        where = f"line {number}"
        line = raw.strip().lstrip("\ufeff")
        if not line:
            continue
        starts, rest = [], line
        while (m := STAMP.match(rest)) is not None:
            starts.append(_seconds(m, where))
            rest = rest[m.end():].lstrip()
        if not starts:
            tag = TAG.match(line)
            if tag:
                tags[tag.group(1).lower()] = tag.group(2).strip()
                continue
            if BRACKET.match(line):
                raise LrcError(f"{where}: {line[:40]!r} is not a time stamp like [01:23.45]")
            raise LrcError(f"{where}: {line[:40]!r} has no time stamp")
        if previous is not None and len(starts) == 1 and starts[0] < previous:
            raise LrcError(f"{where}: [{_clock(starts[0])}] comes before the line above it ({_clock(previous)})")
        if len(starts) == 1:
            previous = starts[0]
        words, text = _word_stamps(rest, where)
        for start in starts:
            stamped.append((start, number, text, words))
    offset = _offset(tags)
    lines = [LrcLine(max(0.0, s - offset), text, [(max(0.0, w - offset), word) for w, word in words], number)
             for s, number, text, words in sorted(stamped, key=lambda x: (x[0], x[1]))]
    return Lrc(lines, tags)


def _word_stamps(rest: str, where: str) -> tuple[list[tuple[float, str]], str]:
    """Enhanced `<mm:ss.xx>word` stamps -> [(start, word)], and the line's plain text."""
    marks = list(WORD_STAMP.finditer(rest))
    words = []
    for i, m in enumerate(marks):
        word = rest[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(rest)].strip()
        if word:
            words.append((_seconds(m, where), word))
    return words, re.sub(r"\s+", " ", WORD_STAMP.sub(" ", rest)).strip()


def _offset(tags: dict[str, str]) -> float:
    raw = tags.get("offset", "0").strip() or "0"
    try:
        return int(raw) / 1000.0
    except ValueError:
        raise LrcError(f"[offset:{raw}] is not a whole number of milliseconds") from None


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:05.2f}"


def write_lrc(lines: list[LrcLine], tags: dict[str, str] | None = None) -> str:
    """Lrc lines -> LRC text, `[mm:ss.xx] text` per line (enhanced word stamps when a line has them)."""
    out = [f"[{k}:{v}]" for k, v in (tags or {}).items()]
    for line in lines:
        body = " ".join(f"<{_clock(t)}>{w}" for t, w in line.words) if line.words else line.text
        out.append(f"[{_clock(line.start)}]{body}")
    return "\n".join(out) + "\n"
