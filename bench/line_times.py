"""How near the truth are the line times read from a trained model's cross-attention? On a built
synth corpus (whose lyrics.lrc hold the true line starts) and a trained run: the alignment heads
are chosen on the first half of the held-out songs, and the teacher-forced onset error (median,
90th percentile) is measured on the other half, for the chosen heads (with and without the offsets
chosen with them: how late they find first and later lines), for every head's mean, and
for no model at all (a line starts where the uniform prior's t/T meets its first word's lyric
progress). The issue's target: a median of at most 0.25 s on the demo's model. "untimed choice":
heads chosen by their focus alone (model/line_times.choose_heads_untimed), as for a corpus with no
lyrics.lrc, measured on the same timed songs.

Usage: python bench/line_times.py [--out JSON] RUN DATA [RUN DATA ...]   (default bench/results/line_times.json)
       e.g. after bench/lyrics.py --quick --codec tiny --align syllables,timed --seeds 0 --work out/bench_timed:
       python bench/line_times.py out/bench_timed/run_syllables_0 out/bench_timed/data \\
                                  out/bench_timed/run_timed_0 out/bench_timed/data
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from autosong.eval.evaluate import load_split  # noqa: E402
from autosong.model.bundle import load_bundle  # noqa: E402
from autosong.model.line_times import (choose_heads, choose_heads_untimed, onset_error_summary,  # noqa: E402
                                       teacher_forced_errors, true_line_starts)


def prior_only(model, songs, frame_rate: float) -> np.ndarray:
    errors = []
    for song in songs:
        frames, slots = true_line_starts(model, song)
        ids = torch.as_tensor(song.text.astype(np.int64))[None]
        progress = model.lyric_progress(ids, torch.ones_like(ids, dtype=torch.bool))
        progress = progress[0].detach().numpy() if progress is not None else np.linspace(0, 1, ids.shape[1])
        errors += list(np.abs(progress[slots] * song.codes.shape[1] - frames) / frame_rate)
    return np.array(errors)


def measure(run: str, data: str) -> dict:
    model = load_bundle(run).model
    songs = [s for s in load_split(data, "val")[1] if len(s.line_timing()[1])]
    rate = songs[0].codes.shape[1] / songs[0].meta["duration_s"]
    choose, test = songs[: len(songs) // 2], songs[len(songs) // 2 :]
    heads = choose_heads(model, choose, rate)
    untimed = choose_heads_untimed(model, choose, rate)  # as if the corpus had no lyrics.lrc
    return {"run": run, "songs_chosen_on": len(choose), "songs_measured": len(test), "heads": heads.heads,
            "offsets_s": heads.offsets,
            "chosen": onset_error_summary(teacher_forced_errors(model, test, heads.heads, rate, heads.offsets)),
            "chosen_no_offsets": onset_error_summary(teacher_forced_errors(model, test, heads.heads, rate)),
            "all_heads": onset_error_summary(teacher_forced_errors(model, test, None, rate)),
            "untimed_heads": untimed.heads,
            "untimed": onset_error_summary(teacher_forced_errors(model, test, untimed.heads, rate)),
            "prior_only": onset_error_summary(prior_only(model, test, rate))}


def main() -> None:
    pairs = sys.argv[1:]
    out = ROOT / "bench/results/line_times.json"
    if pairs[:1] == ["--out"] and len(pairs) > 1:
        out, pairs = Path(pairs[1]), pairs[2:]
    if not pairs or len(pairs) % 2:
        sys.exit(__doc__)
    rows = [measure(run, data) for run, data in zip(pairs[::2], pairs[1::2])]
    columns = ("chosen", "chosen_no_offsets", "untimed", "all_heads", "prior_only")
    print(f"{'run':40}{'chosen heads':>18}{'no offsets':>18}{'untimed choice':>18}{'all heads':>18}{'prior only':>18}"
          "   (median / p90 s)")
    for r in rows:
        cells = "".join(f"{r[k]['median_s']:.3f} / {r[k]['p90_s']:.3f}".rjust(18) for k in columns)
        print(f"{r['run']:40}{cells}   heads {r['heads']}, offsets {r['offsets_s']} s, {r['chosen']['lines']} lines")
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
