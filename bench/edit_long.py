"""The cost of an edit on a real-length song: a fresh song of `--seconds` (3 minutes by default,
generated in windows past the model's training length) against an edit of it from its middle line
with new lines after it. Reported: seconds of work per second for the fresh song (sampling, the
codec's decoding and its song.lrc, as `autosong generate` makes them) and per regenerated second for
the edit (as `autosong edit` makes it from that song.lrc) and for `generate` of the regenerated part
alone (its lines, as long), and whether the kept codes are the source's bit for bit. The lyrics
are the held-out songs' lyrics one after another.

Usage: python bench/edit_long.py RUN DATA [--seconds 180] [--threads 2] [--repeats 2] [--out bench/results/edit_long.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from autosong.eval.evaluate import load_split
from autosong.model.api import AutoSong
from autosong.model.edit import Edit, SourceSong
from autosong.model.lyrics import lyric_words
from autosong.model.sampling import SamplingConfig
from autosong.model.threads import use_threads

ROOT = Path(__file__).resolve().parents[1]


def fastest(repeats: int, work):
    """(the fastest of `repeats` timings of work(), what it returned)"""
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        made = work()
        times.append(time.perf_counter() - t0)
    return min(times), made


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("data")
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=2, help="the edit and the part alone are timed this many times; "
                   "the fastest counts (one timing moves by 10-30 %% beside other work)")
    p.add_argument("--out", default=str(ROOT / "bench/results/edit_long.json"))
    args = p.parse_args()
    use_threads(args.threads)
    song = AutoSong.load(args.run, "cpu", "fp32")
    _, songs = load_split(args.data, "val", model=song.bundle)
    genre = songs[0].genre
    same = [s for s in songs if s.genre == genre]
    per_song = np.mean([s.codes.shape[1] for s in same]) / song.codec.frame_rate
    take = max(2, int(np.ceil(args.seconds / per_song)))
    lines = [line for s in (same * take)[:take] for line in s.lyrics.split("\n") if lyric_words(line)]
    lyrics = "\n".join(lines) + "\n"
    middle = len(lines) // 2 + 1
    new = "\n".join(lines[: middle - 1] + lines[middle - 1:][::-1]) + "\n"  # the second half's lines reversed
    cfg = SamplingConfig(seed=args.seed)

    t0 = time.perf_counter()
    made = song.generate(lyrics, genre, args.seconds, cfg)
    _, times = song.line_times(made.codes[0], lyrics, genre)
    fresh_s = time.perf_counter() - t0
    source = SourceSong(made.codes[0], lyrics, genre, times.starts, "long", made.audio[0])
    edit_s, edited = fastest(args.repeats, lambda: song.edit(source, Edit(from_line=middle), new, cfg))
    rate = song.codec.frame_rate
    cut = edited.cut_frame
    regenerated = (edited.codes.shape[1] - cut) / rate
    part = "\n".join(lines[middle - 1:][::-1]) + "\n"
    # what the edit regenerates, generated on its own: its lines, as long
    part_s, _ = fastest(args.repeats, lambda: song.generate(part, genre, regenerated, cfg))
    result = {
        "seconds": args.seconds, "lines": len(lines), "from_line": middle, "cut_s": cut / rate,
        "kept_identical": bool(np.array_equal(edited.codes[:, :cut], np.asarray(made.codes[0])[:, :cut])),
        "fresh_s": fresh_s, "edit_s": edit_s, "fresh_s_per_s": fresh_s / args.seconds,
        "edit_s_per_regenerated_s": edit_s / regenerated, "part_s_per_s": part_s / regenerated,
        "threads": args.threads}
    result["ratio"] = result["edit_s_per_regenerated_s"] / result["fresh_s_per_s"]
    result["ratio_to_part"] = result["edit_s_per_regenerated_s"] / result["part_s_per_s"]
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps({"args": vars(args), "result": result}, indent=2))


if __name__ == "__main__":
    main()
