"""What `autosong align` gives on songs unlike the model's own: the alignment heads are chosen as
`autosong eval` chooses them, on the model's own held-out songs (eval's choice_songs: the longest), then
the line starts of another corpus's held-out songs (their lines with words, model/line_times.true_line_starts) are
read with them, teacher-forced over the songs' codes, as `align` reads a recording. Printed: the
median and 90th percentile error, with and without the heads' offsets, and the error by where in
the song a line starts (signed: > 0 found late).

Usage: python bench/line_times_transfer.py RUN OWN_DATA OTHER_DATA
       e.g. python bench/line_times_transfer.py demo_out/run demo_out/data out/d10/data
"""
import sys

import numpy as np
import torch

from autosong.eval.evaluate import load_split
from autosong.eval.line_alignment import choice_songs
from autosong.model.bundle import load_bundle
from autosong.model.line_times import (attention_map, choose_heads, line_times, onset_error_summary,
                                       teacher_forced_errors, true_line_starts)

RATE = 75.0
BANDS = ((0, 3), (3, 6), (6, 9), (9, 60))  # seconds into the song


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    run, own, other = sys.argv[1:]
    torch.set_num_threads(2)
    bundle = load_bundle(run)
    model = bundle.model
    chosen_on = choice_songs([s for s in load_split(own, "val", model=bundle)[1] if len(s.line_timing()[1])])
    heads = choose_heads(model, chosen_on, RATE)
    print(f"heads chosen on {own} ({len(chosen_on)} songs): {heads.heads}, offsets {heads.offsets} s, "
          f"there {heads.chosen_on['median_s']:.3f} s over {heads.chosen_on['lines']} lines")
    # by genre name, as `align --genre` reads it: two builds may number the genres apart
    songs = [s for s in load_split(other, "val", model=bundle)[1] if len(s.line_timing()[1])]
    print(f"on {other} ({len(songs)} songs):", onset_error_summary(teacher_forced_errors(model, songs, heads.heads,
                                                                                           RATE, heads.offsets)))
    print("  without the offsets:", onset_error_summary(teacher_forced_errors(model, songs, heads.heads, RATE)))
    rows = []
    for s in songs:
        frames, slots = true_line_starts(model, s)
        amap = attention_map(model, s.codes, s.text, heads.heads, heard=s.key_signatures)
        found = line_times(amap, slots, RATE, offsets=heads.offsets)
        rows += [(t, f - t) for f, t in zip(found.starts, frames / RATE)]
    rows = np.array(rows)
    for lo, hi in BANDS:
        band = rows[(rows[:, 0] >= lo) & (rows[:, 0] < hi), 1]
        if len(band):
            print(f"  lines starting {lo}-{hi} s: {len(band)}, median error {np.median(np.abs(band)):.3f} s, "
                  f"signed {np.median(band):+.3f} s")


if __name__ == "__main__":
    main()
