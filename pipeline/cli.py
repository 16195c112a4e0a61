"""`autosong pipeline ...` (= `python -m pipeline ...`): build, verify, inspect, synth."""
from __future__ import annotations

import argparse

from model.errors import run_cli


def _synth(args) -> int:
    from pipeline.synth import synth_corpus

    folders = synth_corpus(args.dir, songs=args.songs, seconds=args.seconds, seed=args.seed)
    print(f"wrote {len(folders)} songs of {args.seconds:g} s to {args.dir}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autosong pipeline", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a toy corpus whose audio follows its lyrics and genre")
    s.add_argument("dir")
    s.add_argument("--songs", type=int, default=8)
    s.add_argument("--seconds", type=float, default=10.0)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_synth)
    return p


def main(argv: list[str] | None = None) -> int:
    def run(argv):
        args = parser().parse_args(argv)
        return args.func(args)

    return run_cli(run, argv)
