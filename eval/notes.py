"""Does a generated song sing its lyrics? Transcribe its sung notes and compare them with the
notes the synth corpus's rule gives those lyrics: the note error rate (NER), an offline analogue
of the phoneme error rate other song generators get from a hub ASR model.

Transcription: a pitch track (model/pitch.py: the harmonic-sum estimator, every 10 ms, voiced
where most of the melody band's energy lies on the harmonics of that pitch); a note starts
where the voiced pitch moves to another semitone and lasts while it stays there, and its pitch is
the median over its frames. The model chooses its own timing, so sequences of pitches are
compared, not times, and a pitch repeated in a row counts once on both sides: a repeated note and
a held one with a drum hit inside look alike to any onset detector.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autosong.model.pitch import pitch_track

PITCH_TOLERANCE = 0.5  # semitones: a sung pitch matches an expected one within this


@dataclass(frozen=True)
class Note:
    start: float   # seconds
    length: float  # seconds
    pitch: float   # MIDI


def transcribe(wav: np.ndarray, sr: int, hop: float = 0.01, min_seconds: float = 0.06) -> list[Note]:
    """The sung notes of `wav`: runs of voiced frames whose pitch stays on one semitone, at least
    `min_seconds` long (shorter runs are glides and attacks, and are dropped)."""
    track = pitch_track(wav, sr, hop)
    semitone = np.where(np.isnan(track), -1, np.round(track)).astype(int)
    notes, start = [], 0
    for i in range(1, len(semitone) + 1):
        if i == len(semitone) or semitone[i] != semitone[start]:
            if semitone[start] >= 0 and (i - start) * hop >= min_seconds:
                notes.append(Note(start * hop, (i - start) * hop, float(np.median(track[start:i]))))
            start = i
    return notes


def collapse(pitches: list[float]) -> list[float]:
    """A pitch repeated in a row (within the tolerance) counted once."""
    return [pitches[i] for i in kept_by_collapse(pitches)]


def kept_by_collapse(pitches: list[float]) -> list[int]:
    """The indices collapse keeps: the first of each run of one pitch."""
    kept: list[int] = []
    for i, p in enumerate(pitches):
        if not kept or abs(p - pitches[kept[-1]]) > PITCH_TOLERANCE:
            kept.append(i)
    return kept


def edit_distance(a: list[float], b: list[float]) -> int:
    """Levenshtein distance between pitch sequences, two pitches equal within the tolerance."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (abs(x - y) > PITCH_TOLERANCE))
    return row[-1]


def note_error_rate(sung: list[float], expected: list[float]) -> float:
    """Edit distance between the sung and expected pitch sequences (repeats collapsed), over the
    expected length: 0 when every note is sung, in order; about 1 for an unrelated melody."""
    sung, expected = collapse(sung), collapse(expected)
    return edit_distance(sung, expected) / max(1, len(expected))


@dataclass(frozen=True)
class SingingScore:
    """How one sung pitch sequence compares with the expected one (both with repeats collapsed):
    the edit distance's substitutions, insertions (sung, not asked for) and deletions (asked
    for, not sung), and the notes a longest common subsequence pairs."""

    expected: int
    sung: int
    matched: int
    substitutions: int
    insertions: int
    deletions: int

    @property
    def ner(self) -> float:
        """The note error rate: edits per expected note."""
        return (self.substitutions + self.insertions + self.deletions) / max(1, self.expected)

    @property
    def recall(self) -> float:
        """Share of the expected notes that were sung, in order."""
        return self.matched / max(1, self.expected)

    @property
    def precision(self) -> float:
        """Share of the sung notes that were asked for, in order (0 when nothing was sung)."""
        return self.matched / max(1, self.sung)

    @property
    def sung_ratio(self) -> float:
        """Sung notes per expected note: above 1 the song chatters, below 1 it holds or rests."""
        return self.sung / max(1, self.expected)


def singing_score(sung: list[float], expected: list[float]) -> SingingScore:
    """Score the sung pitches against the expected ones (repeats collapsed on both sides)."""
    sung, expected = collapse(sung), collapse(expected)
    s, i, d = edit_operations(sung, expected)
    return SingingScore(len(expected), len(sung), len(matched_notes(sung, expected)), s, i, d)


def edit_operations(a: list[float], b: list[float]) -> tuple[int, int, int]:
    """(substitutions, insertions, deletions) of a least-cost edit from `b` (expected) to `a`
    (sung): an insertion is an element of `a` with no partner in `b`, a deletion one of `b`."""
    ops = [op for op, _, _ in edit_path(a, b)]
    return ops.count("substituted"), ops.count("inserted"), ops.count("deleted")


def edit_path(a: list[float], b: list[float]) -> list[tuple[str, int | None, int | None]]:
    """One least-cost edit from `b` (expected) to `a` (sung), in order: (op, index in a, index in
    b), op "same" or "substituted" (both indices), "inserted" (a's only) or "deleted" (b's only)."""
    n, m = len(a), len(b)
    cost = np.zeros((n + 1, m + 1), dtype=np.int64)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1,
                             cost[i - 1, j - 1] + (abs(a[i - 1] - b[j - 1]) > PITCH_TOLERANCE))
    path, i, j = [], n, m
    while i or j:  # walk back one least-cost path
        differ = i and j and abs(a[i - 1] - b[j - 1]) > PITCH_TOLERANCE
        if i and j and cost[i, j] == cost[i - 1, j - 1] + differ:
            i, j = i - 1, j - 1
            path.append(("substituted" if differ else "same", i, j))
        elif i and cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
            path.append(("inserted", i, None))
        else:
            j -= 1
            path.append(("deleted", None, j))
    return path[::-1]


def matched_notes(sung: list[float], expected: list[float]) -> list[tuple[int, int]]:
    """(expected index, sung index) of the most pairs of equal pitches (within the tolerance)
    that keep both orders (a longest common subsequence): which sung note sang which expected one."""
    n, m = len(expected), len(sung)
    same = np.abs(np.subtract.outer(np.asarray(expected, float), np.asarray(sung, float))) <= PITCH_TOLERANCE
    pairs = np.zeros((n + 1, m + 1), dtype=np.int64)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            pairs[i, j] = max(pairs[i - 1, j], pairs[i, j - 1], pairs[i - 1, j - 1] + same[i - 1, j - 1])
    out, i, j = [], n, m
    while i and j:
        if same[i - 1, j - 1] and pairs[i, j] == pairs[i - 1, j - 1] + 1:
            out.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif pairs[i, j] == pairs[i - 1, j]:
            i -= 1
        else:
            j -= 1
    return out[::-1]
