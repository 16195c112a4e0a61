"""`autosong pipeline ...` (= `python -m autosong.pipeline ...`): build, verify, inspect, encode-latents, synth."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autosong.command_line import HelpFormatter, real, run_cli, whole
from autosong.manifests.errors import AutoSongError
from autosong.pipeline.build import BuildConfig, build
from autosong.pipeline.latents import encode_latents
from autosong.pipeline.summary import summary
from autosong.pipeline.synth import synth_corpus
from autosong.pipeline.verify import verify


def _synth(args) -> int:
    if args.longest is not None and args.longest < args.seconds:
        raise AutoSongError(f"--longest {args.longest:g} s is shorter than --seconds {args.seconds:g} s")
    folders = synth_corpus(args.dir, songs=args.songs, seconds=args.seconds, seed=args.seed, breaks=args.breaks,
                           instrumental=args.instrumental, longest=args.longest)
    length = f"{args.seconds:g}-{args.longest:g}" if args.longest else f"{args.seconds:g}"
    print(f"wrote {len(folders)} songs of {length} s{' with instrumental breaks' if args.breaks else ''} to {args.dir}")
    return 0


def _build(args) -> int:
    cfg = BuildConfig(dataset=args.dataset, out=args.out, codec=args.codec, text=args.text,
                      max_seconds=args.max_seconds, shard_samples=args.shard_samples, workers=args.workers,
                      ray_address=args.ray_address, val_fraction=args.val_fraction,
                      max_song_seconds=args.max_song_seconds, max_text_len=args.max_text_len, rehash=args.rehash,
                      gpus_per_worker=args.gpus_per_worker, songs_per_batch=args.songs_per_batch,
                      genres_from=args.genres, key_normalise=args.key_normalise)
    result = build(cfg)
    c = result.card.counts
    print(f"built {result.built} songs, kept {result.kept}, rejected {result.rejected} "
          f"({result.new_rejects} new); {c['songs']} songs ({c['train']} train, {c['val']} val), "
          f"{result.card.hours:.3f} h in {c['shards']} shards -> {args.out}")
    if result.built:
        print(result.code_usage.line().replace("songs)", "songs encoded now)"))
        if result.code_usage.warning():
            print(result.code_usage.warning(), file=sys.stderr)
    if result.rejected:
        print(f"rejects: see `autosong pipeline inspect {args.out}` or {Path(args.out) / 'manifests/rejects.parquet'}")
    return 0


def _verify(args) -> int:
    checked, problems = verify(args.out)
    for problem in problems:
        print(f"BAD {problem}")
    print(f"verified {checked} samples: {'OK' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


def _inspect(args) -> int:
    print(summary(args.out))
    return 0


def _encode_latents(args) -> int:
    target = encode_latents(args.out, args.ae, args.name, args.shard_samples)
    print(f"wrote latent dataset {target} (train stage 2 with: autosong train --stage latent --data {target} ...)")
    return 0


def _add_build(sub) -> None:
    """`pipeline build` and its options."""
    b = sub.add_parser("build", formatter_class=HelpFormatter, help="corpus (DATASET/song_*) -> OUT/shards + OUT/manifests, on Ray")
    b.add_argument("dataset")
    b.add_argument("--out", required=True)
    b.add_argument("--codec", default="facebook/encodec_24khz",
                   help="hub id (needs the network), a local directory (a save_pretrained copy, or `autosong codec "
                        "train --data SONGS --out DIR`: the offline path for real music), 'tiny' (shipped, trained "
                        "on synth songs only: the toy corpus) or 'test' (random weights: tests only, no music)")
    b.add_argument("--text", default="pinyin", help="pinyin | bert:SRC (a directory, or bert:minilm)")
    b.add_argument("--max-seconds", type=real(0, above=True), default=None, help="keep at most this much of each song")
    b.add_argument("--max-song-seconds", type=real(0, above=True), default=1200.0,
                   help="reject longer songs (default 20 min; --max-seconds crops instead)")
    b.add_argument("--max-text-len", type=whole(2), default=4096,
                   help="reject lyrics longer than this many ids (default: what the presets' models read)")
    b.add_argument("--key-normalise", action="store_true",
                   help="move every song to C major / A minor before encoding (its key is heard in the audio), "
                        "so a model learns one key's notes; generate moves its songs back to the key asked for")
    b.add_argument("--rehash", action="store_true",
                   help="hash every audio file again (default: unchanged size and mtime reuse OUT's stat cache)")
    b.add_argument("--shard-samples", type=whole(1), default=64, help="songs per shard")
    b.add_argument("--gpus-per-worker", type=real(0, 1), default=0.0,
                   help="encode on GPUs: each actor takes this share of one (e.g. 1, or 0.25 for four per GPU)")
    b.add_argument("--songs-per-batch", type=whole(0), default=0,
                   help="songs per encoder call, their equal windows batched per forward (default: 8 with "
                        "--gpus-per-worker, else 1: exact codes whatever the batch; more may flip near-tie codes)")
    b.add_argument("--workers", type=whole(0), default=0, help="encoder actors (default: one per CPU)")
    b.add_argument("--ray-address", default=None, help="'auto' or ray://HOST:PORT; default: a local Ray")
    b.add_argument("--genres", default=None, help="keep the genre slots recorded by this dataset.json, run or "
                   "export (after losing dataset.json, so a trained run's genres keep their slots)")
    b.add_argument("--val-fraction", type=real(0, 1), default=0.1, help="share of songs in val (by key hash)")
    b.set_defaults(func=_build)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autosong pipeline", description=__doc__, formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    _add_build(sub)

    v = sub.add_parser("verify", formatter_class=HelpFormatter, help="check every shard and sample against the manifests")
    v.add_argument("out")
    v.set_defaults(func=_verify)

    i = sub.add_parser("inspect", formatter_class=HelpFormatter, help="summary table of a built dataset")
    i.add_argument("out")
    i.set_defaults(func=_inspect)

    e = sub.add_parser("encode-latents", formatter_class=HelpFormatter, help="add an autoencoder's latent codes of every song as a dataset")
    e.add_argument("out", help="OUT of `pipeline build`")
    e.add_argument("--ae", required=True, help="a gumbel_ae or vqvae run (RUN or RUN/export)")
    e.add_argument("--name", default=None, help="OUT/latents/NAME (default: the run's folder name)")
    e.add_argument("--shard-samples", type=whole(1), default=64)
    e.set_defaults(func=_encode_latents)

    s = sub.add_parser("synth", formatter_class=HelpFormatter, help="write a toy corpus whose audio follows its lyrics and genre")
    s.add_argument("dir")
    s.add_argument("--songs", type=whole(1), default=8)
    s.add_argument("--seconds", type=real(0, above=True), default=10.0)
    s.add_argument("--seed", type=whole(0), default=0)
    s.add_argument("--longest", type=real(0, above=True), default=None,
                   help="songs of several lengths: each at least a length drawn from [--seconds, --longest]")
    s.add_argument("--breaks", action="store_true",
                   help="open sections with instrumental breaks of random length, so only lyrics.lrc times the lines")
    s.add_argument("--instrumental", type=real(0, 1), default=0.0,
                   help="share of songs that are the backing alone, their lyrics.txt '[instrumental]'")
    s.set_defaults(func=_synth)
    return p


def main(argv: list[str] | None = None) -> int:
    def run(argv):
        args = parser().parse_args(argv)
        return args.func(args)

    return run_cli(run, argv)
