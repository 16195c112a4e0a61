"""The build's bookkeeping per committed shard at 10k, 100k and 1M songs: synthetic manifest rows,
no audio. Times `DatasetIndex.add_shard` (what the build runs after every shard: one manifest part
per kind and dataset.json) and, for comparison, the whole-manifest rewrite that every shard used
to cost (`write_manifest`, which is now the compaction at a build's start and end).

Usage: python bench/bookkeeping.py [--sizes 10000 100000 1000000 --shards 5 --shard-samples 64]
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sample_row(i: int, shard: str) -> dict:
    return {"key": f"song_{i:08d}", "shard": shard, "source": f"song_{i:08d}/audio.mp3", "genre": "pop",
            "genre_source": "genre.txt", "duration_s": 180.0, "frames": 13500, "text_len": 900,
            "audio_sha256": f"{i:064x}", "lyrics_sha256": f"{i + 1:064x}", "codes_sha256": f"{i + 2:064x}",
            "lyrics_encoding": "utf-8", "source_rate": 44100, "channels": 2, "bad_packets": 0,
            "split": "val" if i % 10 == 0 else "train"}


def main() -> None:
    from autosong.manifests import DatasetCard, write_manifest
    from autosong.pipeline.index import DatasetIndex
    from autosong.pipeline.shards import ShardInfo

    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--shards", type=int, default=5, help="shards committed (timed) per size")
    p.add_argument("--shard-samples", type=int, default=64)
    args = p.parse_args()
    S = args.shard_samples
    results = []
    for n in args.sizes:
        tmp = Path(tempfile.mkdtemp(prefix="bench_books_"))
        try:
            samples = {}
            shards = {}
            for i in range(n):
                shard = f"shard-{i // S:06d}.tar"
                samples[f"song_{i:08d}"] = sample_row(i, shard)
            for j in range(-(-n // S)):
                shards[f"shard-{j:06d}.tar"] = {"path": f"shard-{j:06d}.tar", "samples": S, "bytes": 1, "sha256": "0" * 64}
            (tmp / "shards").mkdir()
            for name in shards:  # compact() deletes unreferenced shards: give it files to keep
                (tmp / "shards" / name).touch()
            card = DatasetCard(codec={"source": "bench", "config_sha256": "0" * 64, "weights_sha256": "0" * 64}, codec_frame_rate=75, num_codebooks=8, codebook_size=1024,
                               text={"frontend": "pinyin"}, genres=["unknown", "pop"], val_fraction=0.1)
            index = DatasetIndex(tmp, card, samples, {}, shards)
            t0 = time.perf_counter()
            index.compact()
            compact_s = time.perf_counter() - t0
            per_shard = []
            next_i = n
            for k in range(args.shards):
                name = f"shard-{len(shards):06d}.tar"
                rows = [sample_row(next_i + m, name) for m in range(S)]
                next_i += S
                t0 = time.perf_counter()
                index.add_shard(ShardInfo(name, S, 1, "0" * 64, [r["key"] for r in rows]), rows)
                per_shard.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            write_manifest(tmp, "samples", sorted(index.samples.values(), key=lambda r: r["key"]))
            rewrite_s = time.perf_counter() - t0
            results.append({"songs": n, "add_shard_ms": round(1000 * sorted(per_shard)[len(per_shard) // 2], 2),
                            "old_per_shard_rewrite_s": round(rewrite_s, 3), "compaction_s": round(compact_s, 3)})
        finally:
            shutil.rmtree(tmp)
    base = results[0]["add_shard_ms"]
    for r in results:
        r["add_shard_vs_smallest"] = round(r["add_shard_ms"] / base, 2)
    print(json.dumps({"shard_samples": S, "bookkeeping": results}, indent=2))


if __name__ == "__main__":
    main()
