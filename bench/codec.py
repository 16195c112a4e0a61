"""Codecs: reconstruction quality on synth songs, and encode throughput and memory.

1. Quality: unseen synth songs go through each codec and back; figures are the log-mel distance
   to the original and the share of sung notes whose pitch comes back within a semitone (the
   estimator's ceiling, on the originals, printed beside), for `test` (random weights) and, with
   `--trained DIR`, a codec from `autosong codec train`. A PNG of one round trip (original, then
   each codec's spectrogram, top to bottom) is written beside the JSON.
2. Throughput: a 4-minute signal, one pass versus windows, each configuration in a fresh child
   process so its peak RSS is its own: audio seconds per wall second (and per core), peak RSS.
   `full` is the encodec_24khz architecture with random (seeded) weights: the same compute as
   the real model, which cannot be downloaded here.
Usage: python bench/codec.py [--seconds 240] [--sizes test,full] [--songs 12] [--trained DIR]
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


def make_codec(size: str, window_seconds: float):
    import torch

    from autosong.model.codec import Codec, CodecConfig, seed_codebooks

    if size == "test":
        return Codec.load(size, window_seconds=window_seconds)
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


def unseen_songs(count: int, seconds: float = 8.0) -> list[tuple]:
    """Synth songs no codec training saw (seeds 4242, i): [(float32 wav at 24 kHz, note timeline)]."""
    import numpy as np
    import soxr

    from autosong.model.lyrics import default_tokenizer
    from autosong.model.synth_music import GENRES, SAMPLE_RATE, make_lyrics, note_timeline, render_song, song_seconds

    tok = default_tokenizer()
    songs = []
    for i in range(count):
        rng = np.random.default_rng([4242, i])
        genre = sorted(GENRES)[i % len(GENRES)]
        lyrics = make_lyrics(rng, seconds, genre, tok)
        wav = soxr.resample(render_song(lyrics, genre, song_seconds(lyrics, genre, tok), rng, tok).mean(1),
                            SAMPLE_RATE, 24_000, quality="HQ").astype(np.float32)
        songs.append((wav, note_timeline(lyrics, genre, tok)))
    return songs


def quality(songs: int, out_png: Path, trained: str | None) -> dict:
    import io

    import numpy as np
    from PIL import Image

    from autosong.eval.audio_metrics import mel_distance, note_pitch_accuracy
    from autosong.eval.report import png_bytes, spectrogram_png
    from autosong.model.codec import Codec

    codecs = {"test": Codec.load("test"), "tiny": Codec.load("tiny")}
    if trained:
        codecs["trained"] = Codec.load(trained)
    rows = {name: {"mel": [], "hits": 0.0, "notes": 0, "decode_s": 0.0, "audio_s": 0.0} for name in ("original", *codecs)}
    for i, (wav, notes) in enumerate(unseen_songs(songs)):
        outs = {"original": wav}
        for name, codec in codecs.items():
            codes = codec.encode(wav, 24_000)
            t0 = time.perf_counter()
            outs[name] = codec.decode(codes)[: len(wav)]
            rows[name]["decode_s"] += time.perf_counter() - t0
            rows[name]["audio_s"] += len(wav) / 24_000
        for name, audio in outs.items():
            acc, n = note_pitch_accuracy(audio, 24_000, notes)
            rows[name]["mel"].append(mel_distance(wav, audio, 24_000))
            rows[name]["hits"] += acc * n
            rows[name]["notes"] += n
        if i == 0:
            imgs = [np.asarray(Image.open(io.BytesIO(spectrogram_png(outs[k], 24_000))).convert("RGB")) for k in outs]
            sep = np.full((4, imgs[0].shape[1], 3), 255, np.uint8)
            out_png.parent.mkdir(parents=True, exist_ok=True)
            out_png.write_bytes(png_bytes(np.concatenate([x for img in imgs for x in (img, sep)][:-1])))
    result = {name: {"mel_distance": float(np.mean(r["mel"])), "pitch_accuracy": r["hits"] / max(1, r["notes"]),
                     "notes": r["notes"],
                     "decode_x_realtime": r["audio_s"] / r["decode_s"] if r["decode_s"] else None}
              for name, r in rows.items()}
    print(f"{songs} unseen synth songs, {result['original']['notes']} sung notes (through each codec's VQ)")
    print(f"{'audio':10}{'log-mel distance':>18}{'notes within a semitone':>26}{'decode x real time':>20}")
    for name, r in result.items():
        speed = f"{r['decode_x_realtime']:.0f}" if r["decode_x_realtime"] else "-"
        print(f"{name:10}{r['mel_distance']:18.3f}{r['pitch_accuracy']:26.1%}{speed:>20}")
    print(f"round trip spectrograms ({', '.join(outs)}, top to bottom): {out_png}")
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=240.0)
    p.add_argument("--sizes", default="test,full")
    p.add_argument("--trained", default=None, help="a codec directory from `autosong codec train`")
    p.add_argument("--songs", type=int, default=12, help="synth songs for the quality figures")
    p.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"))
    p.add_argument("--out", default=str(ROOT / "bench/results/codec.json"))
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.seconds)))
        return
    quality_result = quality(args.songs, Path(args.out).with_name("codec_roundtrip.png"), args.trained)
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
    Path(args.out).write_text(json.dumps({"quality": quality_result, "rows": rows, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
