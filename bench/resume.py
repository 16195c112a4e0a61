"""What resuming a training run costs in data loading: the time to the first batch after N
consumed batches, for the seek (train/data.py: arithmetic over the manifest, at most one buffer
loaded) and for the replay it replaced (iterate and drop N batches). Tiny-preset windows.

Usage: python bench/resume.py [--songs 32 --seconds 4 --steps 20 2000]
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import logging
    import os

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from autosong.pipeline.build import BuildConfig, build
    from autosong.pipeline.synth import synth_corpus
    from autosong.train.data import ShardStream, StreamConfig

    p = argparse.ArgumentParser()
    p.add_argument("--songs", type=int, default=32)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--steps", type=int, nargs="+", default=[20, 2000])
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_resume_"))
    try:
        synth_corpus(tmp / "corpus", songs=args.songs, seconds=args.seconds, seed=0)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        build(BuildConfig(str(tmp / "corpus"), str(tmp / "out"), codec="test", shard_samples=4))
        ray.shutdown()
        cfg = StreamConfig(str(tmp / "out"), micro_batch=4, window_frames=750, max_frames=3000, bucket_songs=8)
        rows = []
        for steps in args.steps:
            t0 = time.perf_counter()
            stream = ShardStream(replace(cfg, skip_batches=steps))
            next(iter(stream))
            seek = time.perf_counter() - t0
            t0 = time.perf_counter()
            replay = iter(ShardStream(cfg))
            for _ in range(steps + 1):
                next(replay)
            rows.append({"consumed_batches": steps, "seek_s": round(seek, 4), "songs_loaded_by_seek": stream.decoded,
                         "replay_s": round(time.perf_counter() - t0, 3)})
        print(json.dumps({"songs": args.songs, "seconds": args.seconds, "micro_batch": 4, "resume": rows}, indent=2))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
