"""`autosong`: one console script, one subcommand per stage; each stage is also `python -m PKG`."""
from __future__ import annotations

import importlib
import sys

# subcommand -> (module with `main(argv)`, what it does)
STAGES = {
    "pipeline": ("autosong.pipeline_cli", "corpus -> shards + manifests: build | verify | inspect | synth"),
    "train": ("autosong.train_cli", "shards -> a trained SoundTransformer, through DeepSpeed (ZeRO 1/2/3)"),
    "eval": ("autosong.eval_cli", "per-codebook CE, conditioning gain, report.html"),
    "generate": ("autosong.generate_cli", "lyrics + genre -> song.wav (and song.lrc), sampled with a KV cache"),
    "edit": ("autosong.edit_cli", "keep part of a song and regenerate the rest: --from-line N | --extend S | --instrumental"),
    "align": ("autosong.align_cli", "a recording + its lyrics -> song.lrc: where it sings each line"),
    "studio": ("autosong.studio_cli", "a local web app: generate, listen, compare runs"),
    "codec": ("autosong.codec_cli", "codec check DIR: how a codec renders your music; codec train --out DIR"),
    "demo": ("autosong.demo", "the main job on an embedded default, offline, on a laptop CPU"),
}


def usage() -> str:
    width = max(map(len, STAGES))
    rows = "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in STAGES.items())
    return f"usage: autosong STAGE [ARGS...]\n\nstages:\n{rows}\n\n`autosong STAGE --help` for a stage's options."


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] not in STAGES:
        print(f"autosong: unknown stage {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(STAGES[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
