"""`autosong codec check DIR --codec X` (how a codec renders your music: eval/codec_check.py) and
`autosong codec train --out DIR [options]` (one flag per CodecTrainConfig field: train/codec/)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from autosong.command_line import HelpFormatter, real, run_cli, whole
from autosong.eval import codec_check
from autosong.manifests.errors import AutoSongError
from autosong.model.codec import Codec
from autosong.model.threads import use_threads
from autosong.train.codec import trainer
from autosong.train.codec.config import CodecTrainConfig, encodec_config

USAGE = ("usage: autosong codec check AUDIO_DIR --codec X   (how a codec renders your music)\n"
         "       autosong codec train --out DIR [--data SONGS]   (train a codec: `autosong codec train --help`)")


def check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autosong codec check", description=codec_check.__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("audio", help="a folder of audio files or song folders (or one file)")
    p.add_argument("--codec", default="tiny", help="tiny, test, a local directory, or a hub id")
    p.add_argument("--seconds", type=real(0.5), default=20.0, help="excerpt of each file, from a third in")
    p.add_argument("--files", type=whole(1), default=10, help="at most this many files")
    p.add_argument("--json", default=None, help="also write the scores here")
    return p


def check(argv) -> int:
    args = check_parser().parse_args(argv)
    use_threads(None)
    files = codec_check.audio_files(Path(args.audio), args.files)
    codec, test_codec = Codec.load(args.codec), Codec.load("test")
    rng = np.random.default_rng(0)
    scores = [codec_check.score_file(f, codec, test_codec, args.seconds, rng) for f in files]
    print(codec_check.format_scores(args.codec, scores))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(s) for s in scores], indent=2))
    return 0


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autosong codec train", description=trainer.__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--out", required=True, help="directory to write the codec to (then --codec DIR)")
    for name, value in CodecTrainConfig().to_dict().items():
        if isinstance(value, bool):
            p.add_argument(f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=value)
        else:
            p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    return p


def train(argv) -> int:
    args = vars(train_parser().parse_args(argv))
    out = args.pop("out")
    cfg = CodecTrainConfig(**args)
    try:
        encodec_config(cfg)  # flags that do not fit together: one line, before any work
    except ValueError as err:
        raise AutoSongError(str(err)) from None
    trainer.train_codec(cfg, out)
    print(f"wrote the codec to {out}: use --codec {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`autosong codec check ...` | `autosong codec train ...` (also `python -m autosong.train.codec ...`)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv and argv[0] == "check":
        return run_cli(check, argv[1:])
    if argv and argv[0] == "train":
        return run_cli(train, argv[1:])
    print(USAGE, file=sys.stderr)
    return 2
