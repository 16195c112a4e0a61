"""The build's scan on a corpus of N songs: audio hashed serially (no cache, one thread), by the
thread pool (no cache), and again with OUT's stat cache (an unchanged rebuild: no audio read).

Each song is a real WAV of `--seconds` (distinct bytes per song) with lyrics and a genre; the
page cache is warm for every variant, so the figures are the hashing and bookkeeping cost, not
the disk's.
Usage: python bench/scan.py [--songs 2000 --seconds 10]
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_corpus(root: Path, songs: int, seconds: float) -> int:
    import soundfile as sf

    rng = np.random.default_rng(0)
    base = (0.1 * rng.standard_normal(int(seconds * 24000))).astype(np.float32)
    total = 0
    for i in range(songs):
        folder = root / f"song_{i:06d}"
        folder.mkdir(parents=True)
        wav = base.copy()
        wav[:16] = rng.standard_normal(16) * 0.1  # distinct bytes per song
        sf.write(folder / "audio.wav", wav, 24000, subtype="PCM_16")
        (folder / "lyrics.txt").write_text(f"[verse]\nsong {i} la la la\n")
        (folder / "genre.txt").write_text("pop")
        total += (folder / "audio.wav").stat().st_size
    return total


def main() -> None:
    from autosong.pipeline.scan import StatCache, scan_corpus

    p = argparse.ArgumentParser()
    p.add_argument("--songs", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_scan_"))
    try:
        audio_bytes = make_corpus(tmp / "dataset", args.songs, args.seconds)
        scan_corpus(tmp / "dataset", StatCache(), workers=1)  # warm the page cache
        rows, previous = {}, StatCache()
        for name, workers, warm in (("serial, no cache", 1, False), ("thread pool, no cache", None, False),
                                    ("thread pool, stat cache", None, True)):
            cache = StatCache(list(previous.rows.values())) if warm else StatCache()
            t0 = time.perf_counter()
            songs, _ = scan_corpus(tmp / "dataset", cache, workers=workers)
            rows[name] = {"seconds": round(time.perf_counter() - t0, 3), "audio_files_hashed": cache.hashed,
                          "songs": len(songs)}
            previous = cache
        print(json.dumps({"songs": args.songs, "audio_mb": round(audio_bytes / 1e6, 1), "scan": rows}, indent=2))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
