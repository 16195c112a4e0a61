"""What generated songs sang in place of each kind of expected note: the note eval's songs (its
per-song expected and sung notes) split by what sings the note (a pinyin syllable or a Latin
word), the song's key (the synth's language rule: mostly Chinese lyrics stay in the genre's key,
mostly Latin ones move a fourth up) and the section. Per group: the share sung as asked, sung at
another pitch, or not sung (one least-cost edit, eval/notes.edit_path, repeats collapsed as the eval
collapses them), and the commonest intervals of the wrong pitches (sung - expected, semitones):
-5 on a syllable in a Latin-key song is that syllable sung in the Chinese key. First, over all
songs: whose note each wrong pitch is (a neighbour's, another of the song's, or none of them).

Usage: python bench/note_kinds.py DATA NOTES.json [NOTES.json ...]
  NOTES.json: bench/demo_screen.py's ner.json, or `autosong eval`'s eval.json (its note_errors)
  e.g. python bench/note_kinds.py out/mix10_s0/data out/scr10/cbw_0/ner.json
"""
import collections
import json
import sys

from autosong.eval.evaluate import load_split
from autosong.eval.notes import PITCH_TOLERANCE, collapse, edit_path, kept_by_collapse
from autosong.model.lyrics import default_tokenizer
from autosong.model.synth_music import expected_note_sources, key_offset


def groups_of(result: dict, songs: dict) -> dict:
    """{group: Counter of outcomes and intervals} over the eval's songs."""
    groups = collections.defaultdict(collections.Counter)
    for row in result["per_song"]:
        song = songs[row["key"]]
        key = "Latin" if key_offset(song.lyrics, default_tokenizer()) else "Chinese"
        sources = expected_note_sources(song.lyrics, song.genre)
        pitches = [p for *_, p in row["expected"]]
        kept = kept_by_collapse(pitches)  # as the eval scores them
        expected, labels = [pitches[k] for k in kept], [sources[k] for k in kept]
        sung = collapse([p for *_, p in row["sung"]])
        for op, i, j in edit_path(sung, expected):
            if j is None:
                continue
            source, section = labels[j]
            for group in (f"{source}s, {key}-key songs", f"{section}"):
                groups[group][op] += 1
                if op == "substituted":
                    groups[group][round(sung[i] - expected[j])] += 1
            if op == "substituted":
                groups["wrong pitches"][where_else(sung[i], expected, j)] += 1
    return groups


def where_else(pitch: float, expected: list[float], j: int) -> str:
    """Whose note a wrong pitch sung for expected[j] is: a neighbour's (1 or 2 notes away), another
    note's of the song, or none of the song's (a frame reading the wrong slot against not knowing the
    note a slot asks for)."""
    def found(indices):
        return any(0 <= k < len(expected) and abs(expected[k] - pitch) <= PITCH_TOLERANCE for k in indices)
    if found((j - 2, j - 1, j + 1, j + 2)):
        return "a neighbour's"
    return "another note's of the song" if found(range(len(expected))) else "no note of the song"


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    _, songs = load_split(sys.argv[1], "val")
    songs = {s.key: s for s in songs}
    for path in sys.argv[2:]:
        result = json.loads(open(path).read())
        result = result.get("note_errors", result)
        print(path)
        groups = groups_of(result, songs)
        wrong = groups.pop("wrong pitches")
        print("  wrong pitches: " + ", ".join(f"{k} {v / sum(wrong.values()):.2f}" for k, v in sorted(wrong.items())))
        for group, c in sorted(groups.items()):
            n = c["same"] + c["substituted"] + c["deleted"]
            intervals = sorted(((k, v) for k, v in c.items() if isinstance(k, int)), key=lambda kv: -kv[1])[:4]
            print(f"  {group:28s} {n:4d} notes: sung {c['same'] / n:.2f}, another pitch {c['substituted'] / n:.2f}, "
                  f"not sung {c['deleted'] / n:.2f}; wrong by " + ", ".join(f"{k:+d} ({v})" for k, v in intervals))


if __name__ == "__main__":
    main()
