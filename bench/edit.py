"""Editing a song (`autosong edit`, model/edit.py), measured on held-out synth songs with a trained
model, whose synth rule says which notes any lyrics should be sung to.

For each of `--songs` held-out songs: a source is generated from its lyrics at its own length.
Then it is edited from its second line with new lyrics: its first line kept, the rest another
held-out song's lines (the "new lines"). As the control, the same source is edited with a third
song's lines, and both edits are scored against the notes of the new lines that fit after the
cut (the control is made as long as the edit, so the two differ only in their words). Reported:
- kept-prefix identity: the edit's codes before the cut equal the source's, bit for bit;
- NER after the cut, own against control, the difference with a bootstrap 95 % interval;
- line starts: where the alignment heads put the edited song's lines after the cut, against
  where its sung notes say they start, beside the same figure for a fresh song of the same new
  lyrics at the edited length (the same lines, as far into as long a song: the like-for-like
  comparison), and for the fresh sources (shorter songs, their lines earlier);
- the cost: an edit's seconds per regenerated second against a fresh song's per second (its
  song.lrc included), and against `generate` of a song as long as the regenerated part;
- the edited song's length (fitted to the new lines unless --source-length) against the synth
  rule's length of the new lyrics;
- an instrumental of each source: the share of its length that holds a note in the lead's range
  (at or above the genre's lowest lead note; the bass plays below it), against the source's own.

Usage: python bench/edit.py RUN DATA [--songs 16] [--threads 2] [--out bench/results/edit.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402

from autosong.eval.evaluate import bootstrap_ci, load_split  # noqa: E402
from autosong.eval.line_alignment import sung_line_starts  # noqa: E402
from autosong.eval.notes import singing_score, transcribe  # noqa: E402
from autosong.model import api as api_module  # noqa: E402
from autosong.model import edit as edit_module  # noqa: E402
from autosong.model.edit import Edit, SourceSong  # noqa: E402
from autosong.model.lyrics import default_tokenizer, lyric_words  # noqa: E402
from autosong.model.sampling import SamplingConfig  # noqa: E402
from autosong.model.synth_music import (expected_notes, line_starts, lowest_lead_pitch, sings_synth_notes,  # noqa: E402
                                         song_seconds)

FROM_LINE = 2


def word_lines(lyrics: str) -> list[str]:
    return [line for line in lyrics.split("\n") if lyric_words(line)]


def new_lyrics(source: str, other: str) -> str:
    """The source's lyrics up to its second line that holds words, then `other`'s lines with words."""
    lines, kept, seen = source.split("\n"), [], 0
    for line in lines:
        if lyric_words(line):
            seen += 1
            if seen == FROM_LINE:
                break
        kept.append(line)
    return "\n".join(kept + word_lines(other)) + "\n"


def notes_after_cut(lyrics: str, genre: str, seconds: float) -> list[float]:
    """The pitches the rule gives the lines from FROM_LINE on, as many as `seconds` of them hold."""
    rule_starts = [t for t, line in zip(line_starts(lyrics, genre, default_tokenizer()),
                                        [x for x in lyrics.split("\n") if x.strip()]) if lyric_words(line)]
    at = rule_starts[FROM_LINE - 1]
    return [p for t, _, p in expected_notes(lyrics, genre) if at <= t < at + seconds]


def lead_share(notes, seconds: float, genre: str) -> float:
    """The share of the song's length covered by transcribed notes in the lead's range (the melody
    band: at or above the genre's lowest lead note, model/synth_music.lowest_lead_pitch)."""
    floor = lowest_lead_pitch(genre) - 0.5
    return sum(n.length for n in notes if n.pitch >= floor) / seconds


def line_errors(song, codes, lyrics: str, genre: str, notes, after_s: float = 0.0, known=None,
                keys=()) -> list[float]:
    """|found - sung| line starts (seconds) for the lines starting after `after_s` whose notes were
    sung; `known` and `keys`: an edit's known_starts and key, as its song.lrc takes them."""
    _, times = song.line_times(codes, lyrics, genre, known, keys=keys)
    truth = sung_line_starts(lyrics, genre, [[n.start, n.length, n.pitch] for n in notes])
    return [abs(f - t) for f, t in zip(times.starts, truth) if t is not None and t > after_s]


def median_gap(rows: list[dict], a: str, b: str, seed: int, resamples: int = 2000) -> dict:
    """The median of the rows' `a` line errors less the median of their `b` ones, with a 95 %
    interval from resampling songs (a song's lines go together)."""
    pick = lambda ids, key: np.concatenate([rows[i][key] for i in ids] or [[]])  # noqa: E731
    gap = lambda ids: float(np.median(pick(ids, a)) - np.median(pick(ids, b)))  # noqa: E731
    rng = np.random.default_rng(seed)
    draws = [gap(rng.integers(0, len(rows), len(rows))) for _ in range(resamples)]
    return {"median": gap(range(len(rows))),
            "ci95": [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]}


def leading(anchors, lead: float):
    """prior_anchors with the last anchor (the cut's line) `lead` seconds earlier, never before the
    kept line's anchor."""
    def moved(song, lyrics, starts):
        found = anchors(song, lyrics, starts)
        if found:
            floor = found[-2][0] + 0.05 if len(found) > 1 else 0.0
            found[-1] = (max(found[-1][0] - lead, floor), found[-1][1])
        return found

    return moved


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("data")
    p.add_argument("--songs", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "bench/results/edit.json"))
    p.add_argument("--source-length", action="store_true", help="ablation: the edited song as long as the source "
                   "(before --seconds was fitted to the new lines)")
    p.add_argument("--heads-only", action="store_true", help="ablation: the edited song's line starts all from "
                   "the alignment heads under the uniform prior (before song.lrc kept the known starts)")
    p.add_argument("--uniform-prior", action="store_true", help="ablation: the alignment prior's uniform t/T after "
                   "the cut, not passing through the kept lines' starts")
    p.add_argument("--prior-lead", type=float, default=0.0, metavar="S", help="ablation: the prior reaches line N's "
                   "first word S seconds before the cut (sampled and read so; song.lrc still says the cut)")
    args = p.parse_args()
    if args.uniform_prior:
        edit_module.prior_anchors = api_module.prior_anchors = lambda *a, **k: None  # sampled and read on t/T
    if args.prior_lead:
        edit_module.prior_anchors = api_module.prior_anchors = leading(edit_module.prior_anchors, args.prior_lead)

    import torch

    from autosong.model.api import AutoSong

    torch.set_num_threads(args.threads)
    song = AutoSong.load(args.run, "cpu", "fp32")
    card, songs = load_split(args.data, "val", model=song.bundle)
    songs = [s for s in songs if sings_synth_notes(card, s.genre) and len(word_lines(s.lyrics)) >= FROM_LINE]
    songs = songs[: args.songs]
    n, sr, rate = len(songs), song.codec.sample_rate, song.codec.frame_rate
    cfg = SamplingConfig(seed=args.seed)
    rows = []
    for i, s in enumerate(songs):
        other, third = songs[(i + 1) % n], songs[(i + 2) % n]
        seconds = s.codes.shape[1] / rate
        t0 = time.perf_counter()  # a fresh song as `generate` makes it: its audio and its song.lrc
        made = song.generate(s.lyrics, s.genre, seconds, cfg)
        _, times = song.line_times(made.codes[0], s.lyrics, s.genre)
        fresh_s = time.perf_counter() - t0
        source = SourceSong(made.codes[0], s.lyrics, s.genre, times.starts, s.key, made.audio[0])  # as edit reads it
        mine, theirs = new_lyrics(s.lyrics, other.lyrics), new_lyrics(s.lyrics, third.lyrics)
        try:
            t0 = time.perf_counter()
            edited = song.edit(source, Edit(from_line=FROM_LINE, seconds=seconds if args.source_length else None),
                               mine, cfg)
            edit_s = time.perf_counter() - t0
        except Exception as err:  # a weak alignment of the source: counted, not fatal
            rows.append({"key": s.key, "refused": str(err)})
            continue
        edited_s = edited.codes.shape[1] / rate
        t0 = time.perf_counter()  # what the edit regenerates, generated on its own: a song that long
        song.generate(mine, s.genre, edited_s - edited.cut_frame / rate, cfg)
        part_s = time.perf_counter() - t0
        control = song.edit(source, Edit(from_line=FROM_LINE, seconds=edited_s), theirs, cfg)  # the same length
        cut, cut_s = edited.cut_frame, edited.cut_frame / rate
        alike = song.generate(mine, s.genre, edited_s, cfg)  # the new lyrics sung fresh, as long as the edit
        expected = notes_after_cut(mine, s.genre, edited_s - cut_s)
        at = int(cut_s * sr)
        source_notes, edited_notes = transcribe(made.audio[0], sr), transcribe(edited.audio, sr)
        own = singing_score([x.pitch for x in transcribe(edited.audio[at:], sr)], expected)
        ctl = singing_score([x.pitch for x in transcribe(control.audio[at:], sr)], expected)
        backing = song.edit(source, Edit(instrumental=True), None, cfg)
        rows.append({
            "key": s.key, "seconds": seconds, "cut_s": cut_s, "edited_s": edited_s,
            "rule_s": song_seconds(mine, s.genre, default_tokenizer()),
            "kept_identical": bool(np.array_equal(edited.codes[:, :cut], np.asarray(made.codes[0])[:, :cut])),
            "ner_own": own.ner, "ner_control": ctl.ner, "expected": len(expected),
            "recall": own.recall, "precision": own.precision,
            "fresh_s_per_s": fresh_s / seconds, "edit_s_per_s": edit_s / max(edited_s - cut_s, 1 / rate),
            "part_s_per_s": part_s / max(edited_s - cut_s, 1 / rate),
            "edit_line_errors": line_errors(song, edited.codes, mine, s.genre, edited_notes, cut_s,
                                            None if args.heads_only else edited.known_starts, edited.keys),
            "fresh_line_errors": line_errors(song, made.codes[0], s.lyrics, s.genre, source_notes),
            "alike_line_errors": line_errors(song, alike.codes[0], mine, s.genre, transcribe(alike.audio[0], sr),
                                             cut_s),
            "lead_source": lead_share(source_notes, seconds, s.genre),
            "lead_instrumental": lead_share(transcribe(backing.audio, sr), len(backing.audio) / sr, s.genre)})
        print(f"{i + 1}/{n} {s.key}: cut {cut_s:.2f} s, kept identical {rows[-1]['kept_identical']}, "
              f"NER own {own.ner:.2f} control {ctl.ner:.2f}", flush=True)
    done = [r for r in rows if "refused" not in r]
    diff = np.array([r["ner_control"] - r["ner_own"] for r in done])
    errors = {kind: np.concatenate([r[f"{kind}_line_errors"] for r in done] or [[]])
              for kind in ("edit", "fresh", "alike")}
    line_error = lambda kind: {"median": float(np.median(errors[kind])) if len(errors[kind]) else None,  # noqa: E731
                               "lines": len(errors[kind])}
    mean = lambda key: float(np.mean([r[key] for r in done]))  # noqa: E731
    summary = {
        "songs": len(rows), "edited": len(done), "refused": [r for r in rows if "refused" in r],
        "kept_identical": sum(r["kept_identical"] for r in done),
        "ner_own": mean("ner_own"), "ner_control": mean("ner_control"),
        "difference": {"mean": float(diff.mean()), "ci95": bootstrap_ci(diff, args.seed)},
        "recall": mean("recall"), "precision": mean("precision"),
        "line_error_edit": line_error("edit"), "line_error_fresh": line_error("fresh"),
        "line_error_alike": line_error("alike"),
        "line_error_edit_less_alike": median_gap(done, "edit_line_errors", "alike_line_errors", args.seed)
        if len(errors["edit"]) and len(errors["alike"]) else None,
        "fresh_s_per_s": mean("fresh_s_per_s"), "edit_s_per_s": mean("edit_s_per_s"),
        "part_s_per_s": mean("part_s_per_s"),
        "length_error_s": {"median": float(np.median([abs(r["edited_s"] - r["rule_s"]) for r in done])),
                           "source_median": float(np.median([abs(r["seconds"] - r["rule_s"]) for r in done]))},
        "lead_source": mean("lead_source"), "lead_instrumental": mean("lead_instrumental")}
    print(json.dumps({k: v for k, v in summary.items() if k != "refused"}, indent=2))
    Path(args.out).write_text(json.dumps({"args": vars(args), "summary": summary, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
