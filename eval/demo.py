"""`autosong demo`: the main job on an embedded default, offline, on a laptop CPU."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from model.errors import run_cli


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autosong demo", description=__doc__)
    p.add_argument("--out", default="demo_out", help="working directory (default: demo_out)")
    p.add_argument("--codec", default="test", help="codec source: test (offline), a directory, or a hub id")
    p.add_argument("--songs", type=int, default=4)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=0)
    return p


def run(argv) -> int:
    from model.codec import Codec
    from model.audio import load_audio, write_wav
    from pipeline.synth import synth_corpus

    args = parser().parse_args(argv)
    out = Path(args.out)
    folders = synth_corpus(out / "corpus", songs=args.songs, seconds=args.seconds, seed=args.seed)
    print(f"[1/3] synth corpus: {len(folders)} songs in {out / 'corpus'}")
    codec = Codec.load(args.codec)
    song = folders[0]
    audio = load_audio(next(song.glob("audio.*")), codec.sample_rate)
    codes = codec.encode(audio.wav, codec.sample_rate)
    distinct = [len(np.unique(row)) for row in codes]
    print(f"[2/3] encoded {song.name}: {audio.seconds:.1f} s -> codes {list(codes.shape)} "
          f"({codec.frame_rate} frames/s, distinct codes per codebook {distinct})")
    wav = codec.decode(codes)[: len(audio.wav)]
    write_wav(out / "roundtrip.wav", wav, codec.sample_rate)
    (out / "demo.json").write_text(json.dumps({"codec": codec.identity.to_dict(), "codes_shape": list(codes.shape),
                                               "distinct_codes": distinct}, indent=2))
    print(f"[3/3] decoded back to {out / 'roundtrip.wav'} ({len(wav) / codec.sample_rate:.1f} s, 24 kHz)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)
