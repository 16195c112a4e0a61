"""EnCodec encode throughput and peak memory on a 4-minute signal: one pass versus windows.

Each configuration runs in a fresh child process so its peak RSS is its own. Figures:
audio seconds per wall second (and per core), peak RSS, and windowed/whole ratios.
`full` is the encodec_24khz architecture with random (seeded) weights: the same compute as
the real model, which cannot be downloaded here. Usage: python bench/codec.py [--seconds 240]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_codec(size: str, window_seconds: float):
    import torch

    from model.codec import Codec, CodecConfig, seed_codebooks

    if size == "test":
        return Codec.load("test", window_seconds=window_seconds)
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    model = EncodecModel(EncodecConfig())
    seed_codebooks(model, 2)
    return Codec(model, CodecConfig(source="bench:encodec_24khz-architecture", window_seconds=window_seconds))


def child(size: str, mode: str, seconds: float) -> dict:
    import torch

    from tests.conftest import music_signal

    wav = music_signal(seconds, seed=0)
    codec = make_codec(size, window_seconds=1e9 if mode == "whole" else 10.0)
    codec.encode(wav[: 24_000], 24_000)  # warm-up
    t0 = time.perf_counter()
    codes = codec.encode(wav, 24_000)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    threads = torch.get_num_threads()
    return {"size": size, "mode": mode, "audio_s": seconds, "wall_s": wall, "threads": threads,
            "audio_s_per_s": seconds / wall, "audio_s_per_s_per_core": seconds / wall / threads,
            "peak_rss_mb": peak / 1024,
            "frames": int(codes.shape[1])}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=240.0)
    p.add_argument("--sizes", default="test,full")
    p.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"))
    p.add_argument("--out", default=str(ROOT / "bench/results/codec.json"))
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.seconds)))
        return
    rows = []
    for size in args.sizes.split(","):
        for mode in ("whole", "windowed"):
            out = subprocess.run([sys.executable, __file__, "--child", size, mode, "--seconds", str(args.seconds)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'codec':6} {'mode':9} {'audio s/s':>10} {'per core':>9} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['size']:6} {r['mode']:9} {r['audio_s_per_s']:10.1f} {r['audio_s_per_s_per_core']:9.1f} "
              f"{r['peak_rss_mb']:12.0f}")
    ratios = {}
    for size in args.sizes.split(","):
        whole, win = (next(r for r in rows if r["size"] == size and r["mode"] == m) for m in ("whole", "windowed"))
        ratios[size] = {"throughput_windowed_over_whole": win["audio_s_per_s"] / whole["audio_s_per_s"],
                        "peak_rss_windowed_over_whole": win["peak_rss_mb"] / whole["peak_rss_mb"]}
        print(f"{size}: windowed/whole throughput {ratios[size]['throughput_windowed_over_whole']:.2f}, "
              f"peak memory {ratios[size]['peak_rss_windowed_over_whole']:.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
