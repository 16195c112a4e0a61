"""How well the model says where each lyric line is sung (model/line_times.py), on held-out songs
with true line times (lyrics.lrc): the median and 90th percentile of the absolute onset error,
teacher-forced over the true songs' codes (what `autosong align` does), and for generated songs
against the notes they really sing (synth data: the sung notes matched to the notes the lyrics
call for); and how many lines generated songs skip or sing again. A model without alignment heads
(or with heads chosen on the tag lines' stamps too, before true_line_starts) gets them chosen here,
on these songs, and recorded in its bundle."""
from __future__ import annotations

import numpy as np

from autosong.eval.notes import matched_notes
from autosong.model.line_times import (ALIGNMENT_FILE, choose_heads, choose_heads_untimed, onset_error_summary,
                                       teacher_forced_errors)
from autosong.model.lyrics import default_tokenizer, lyric_words
from autosong.model.synth_music import expected_notes, line_starts

CHOICE_SONGS = 32  # held-out songs the heads are chosen on, at most


def choice_songs(songs: list) -> list:
    """The held-out songs the alignment heads are chosen on: the CHOICE_SONGS longest, the most like the
    whole songs `align` reads, with the most lines to set the heads' offsets by (on unseen 10 s songs
    0.21 / 0.25 / 0.21 s on seeds 0-2, against 0.23 / 0.26 / 0.24 for the first 32: bench/RESULTS.md,
    "Line times, sixth round")."""
    return sorted(songs, key=lambda s: -s.codes.shape[1])[:CHOICE_SONGS]


def line_alignment(song, songs: list, data: str, split: str) -> dict | None:
    """Teacher-forced onset errors over `songs` (decoded held-out Samples) with the bundle's
    alignment heads, choosing and recording them first if it has none; None when no song is
    timed or the model is a latent one."""
    bundle = song.bundle
    if song.autoencoder is not None:
        return None
    timed = [s for s in songs if len(s.line_timing()[1])]
    frame_rate = song.codec.frame_rate
    chose = bundle.alignment is None
    described = {"data": str(data), "split": split}
    if chose and not timed:  # plain lyrics.txt: heads by their focus, unmeasured here
        bundle.alignment = choose_heads_untimed(bundle.model, choice_songs(songs), frame_rate, described)
        bundle.alignment.save(bundle.path)
        return {"heads": [list(h) for h in bundle.alignment.heads], "chosen_here": True, "songs": 0,
                "method": bundle.alignment.chosen_on["method"], "recorded_in": str(bundle.path / ALIGNMENT_FILE)}
    if not timed:
        return None
    chose = chose or bundle.alignment.scored_on_stamps  # chosen before the tags' own stamps were left out
    if chose:
        bundle.alignment = choose_heads(bundle.model, choice_songs(timed), frame_rate, described)
        bundle.alignment.save(bundle.path)
    errors = teacher_forced_errors(bundle.model, timed, bundle.alignment.heads, frame_rate, bundle.alignment.offsets)
    return {"heads": [list(h) for h in bundle.alignment.heads], "chosen_here": chose, "songs": len(timed),
            "recorded_in": str(bundle.path / ALIGNMENT_FILE), "teacher_forced": onset_error_summary(errors)}


def sung_line_starts(lyrics: str, genre: str, sung: list[tuple[float, float, float]]) -> list[float | None]:
    """Where a generated synth song really starts each line that holds words, from its sung notes
    (start, length, pitch): each line's first note that the edit-distance alignment pairs with a
    sung note, moved back by its place in the line; None for a line none of whose notes was sung."""
    tokenizer = default_tokenizer()
    expected = expected_notes(lyrics, genre)
    lines = [line for line in lyrics.split("\n") if line.strip()]
    starts = np.array([t for t, line in zip(line_starts(lyrics, genre, tokenizer), lines) if lyric_words(line)])
    line_of = np.searchsorted(starts, [n[0] for n in expected], side="right") - 1
    out: list[float | None] = [None] * len(starts)
    for k, j in matched_notes([n[2] for n in sung], [n[2] for n in expected]):
        i = line_of[k]
        if i >= 0 and out[i] is None:
            out[i] = sung[j][0] - (expected[k][0] - starts[i])
    return out


def generated_line_errors(rows: list[dict]) -> dict:
    """Over generated songs' rows (each with "line_starts" found and "line_truth" from the sung
    notes, "skipped" and "repeated" line lists): onset errors and the share of lines skipped or
    sung again."""
    errors = [abs(f - t) for r in rows for f, t in zip(r["line_starts"], r["line_truth"]) if t is not None]
    lines = sum(len(r["line_starts"]) for r in rows)
    return {**onset_error_summary(np.asarray(errors)), "songs": len(rows), "all_lines": lines,
            "skipped": sum(len(r["skipped"]) for r in rows) / max(1, lines),
            "repeated": sum(len(r["repeated"]) for r in rows) / max(1, lines)}


def format_line_alignment(result: dict) -> str:
    if "teacher_forced" not in result:  # no timed songs to measure on
        return (f"line times from alignment heads {result['heads']}, chosen by their {result['method']} (recorded "
                f"in {result['recorded_in']}); their accuracy is measured on songs with lyrics.lrc only")
    tf = result["teacher_forced"]
    text = (f"line times from alignment heads {result['heads']} ({result['songs']} held-out songs with lyrics.lrc):\n"
            f"  teacher-forced onset error: median {tf['median_s']:.3f} s, 90th percentile {tf['p90_s']:.3f} s "
            f"over {tf['lines']} lines")
    gen = result.get("generated")
    if gen:
        text += (f"\n  generated songs: median {gen['median_s']:.3f} s, 90th percentile {gen['p90_s']:.3f} s over "
                 f"{gen['lines']} lines whose notes were sung; {gen['skipped']:.1%} of lines skipped, "
                 f"{gen['repeated']:.1%} sung again")
    if result["chosen_here"]:
        text += f"\n  (heads chosen on these songs, recorded in {result['recorded_in']})"
    return text
