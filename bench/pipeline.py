"""`pipeline build` throughput versus the bare codec, same audio, same run, same cores.

Baseline: W worker processes, one torch thread each (the actors' layout), encoding audio that
is already decoded to 24 kHz; model loading not timed. Pipeline: the whole `build()` (Ray start,
scan, hashing, decode, resample, encode, shards, manifests) with W actors. Goal: ratio >= 0.9.
Codec: the encodec_24khz architecture with seeded weights (the real model's compute).
Two ratios: the whole build (its fixed start, Ray and actors and codec loads, included) and its
steady state (the songs built after the first W, over the time from the W-th to the last, W the
workers: what a corpus of thousands of songs runs at), each against the same bare codec.
Usage: python bench/pipeline.py [--songs 24 --seconds 30]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def save_full_codec(directory: Path) -> None:
    import torch
    from transformers import EncodecConfig, EncodecModel

    from autosong.model.codec import seed_codebooks

    torch.manual_seed(0)
    model = EncodecModel(EncodecConfig())
    seed_codebooks(model, 2)
    model.save_pretrained(str(directory))


def _bare_worker(args) -> float:
    codec_dir, paths, barrier = args
    import torch

    from autosong.model.codec import Codec
    from autosong.model.audio import load_audio

    torch.set_num_threads(1)
    codec = Codec.load(codec_dir)
    wavs = [load_audio(p, 24_000).wav for p in paths]  # decoding is not part of the baseline
    codec.encode(wavs[0][: 12 * 24_000], 24_000)  # warm-up (one window with its context), as a long build's actors are
    barrier.wait()  # every process done loading: none is timed while another still decodes
    t0 = time.perf_counter()
    for wav in wavs:
        codec.encode(wav, 24_000)
    return time.perf_counter() - t0


def bare_codec(codec_dir: str, paths: list[str], workers: int) -> float:
    """Wall seconds for W processes to encode all songs (the slowest process decides)."""
    parts = [paths[i::workers] for i in range(workers)]
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(workers) as pool:
        barrier = manager.Barrier(workers)
        return max(pool.map(_bare_worker, [(codec_dir, p, barrier) for p in parts]))


def pipeline_build(corpus: Path, codec_dir: str, workers: int, tmp: Path) -> float:
    from autosong.pipeline.build import BuildConfig, build

    out = tmp / f"out_w{workers}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = build(BuildConfig(str(corpus), str(out), codec=codec_dir, workers=workers, shard_samples=8))
    wall = time.perf_counter() - t0
    assert result.built == sum(p.is_dir() for p in corpus.iterdir()), result
    return wall, result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--songs", type=int, default=24)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--out", default=str(ROOT / "bench/results/pipeline.json"))
    args = p.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from autosong.pipeline.synth import synth_corpus

    tmp = Path(tempfile.mkdtemp(prefix="autosong-bench-"))
    corpus = tmp / "corpus"
    folders = synth_corpus(corpus, songs=args.songs, seconds=args.seconds, seed=0)
    paths = [str(next(f.glob("audio.*"))) for f in folders]
    codec_dir = tmp / "encodec_24khz_architecture"
    save_full_codec(codec_dir)
    audio_s = args.songs * args.seconds
    rows = []
    for workers in (1, 2):
        bare = bare_codec(str(codec_dir), paths, workers)
        built, res = pipeline_build(corpus, str(codec_dir), workers, tmp)
        t_w = res.first_built[workers - 1][0]  # every actor has delivered a song
        steady = (res.audio_s - sum(a for _, a in res.first_built[:workers])) / (res.last_built_s - t_w)
        rows.append({"workers": workers, "audio_s": audio_s, "bare_wall_s": bare, "pipeline_wall_s": built,
                     "actor_decode_s": res.decode_s, "actor_encode_s": res.encode_s,
                     "actor_busy_fraction": (res.decode_s + res.encode_s) / (built * workers),
                     "bare_audio_s_per_s": audio_s / bare, "pipeline_audio_s_per_s": audio_s / built,
                     "pipeline_songs_per_s": args.songs / built, "ratio_pipeline_over_bare": bare / built,
                     "startup_s": res.first_built[0][0], "steady_audio_s_per_s": steady,
                     "ratio_steady_over_bare": steady / (audio_s / bare)})
    scaling = rows[1]["pipeline_audio_s_per_s"] / rows[0]["pipeline_audio_s_per_s"]
    print(f"{args.songs} songs x {args.seconds:g} s = {audio_s / 60:.0f} min of audio, {os.cpu_count()} CPUs")
    print(f"{'workers':>7} {'bare audio s/s':>15} {'build audio s/s':>16} {'songs/s':>8} {'build/bare':>11} "
          f"{'start s':>8} {'steady/bare':>12}")
    for r in rows:
        print(f"{r['workers']:>7} {r['bare_audio_s_per_s']:15.1f} {r['pipeline_audio_s_per_s']:16.1f} "
              f"{r['pipeline_songs_per_s']:8.2f} {r['ratio_pipeline_over_bare']:11.2f} {r['startup_s']:8.1f} "
              f"{r['ratio_steady_over_bare']:12.2f}")
    print(f"scaling 1 -> 2 workers: x{scaling:.2f}")
    for r in rows:
        print(f"workers {r['workers']}: actors spent {r['actor_decode_s']:.1f} s decoding, {r['actor_encode_s']:.1f} s "
              f"encoding; busy {r['actor_busy_fraction']:.0%} of the build's wall time")
    Path(args.out).write_text(json.dumps({"rows": rows, "scaling_1_to_2": scaling}, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
