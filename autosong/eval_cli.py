"""`autosong eval`: per-codebook CE table, conditioning gain, eval.json and report.html."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from autosong.command_line import (HelpFormatter, add_device_arguments, add_sampling_arguments, real, run_cli,
                                   sampling_from_args, whole)
from autosong.eval.evaluate import load_split
from autosong.eval.line_alignment import format_line_alignment, generated_line_errors, line_alignment
from autosong.eval.listening import write_outputs
from autosong.eval.singing import format_note_errors, note_error_rates
from autosong.eval.stages import evaluate_stage, format_stage
from autosong.manifests.dataset import Dataset
from autosong.manifests.errors import AutoSongError
from autosong.model.api import AutoSong
from autosong.model.bundle import load_bundle
from autosong.model.devices import resolve_device, resolve_dtype
from autosong.model.stages import stage_named
from autosong.model.threads import use_threads


GENERATE_SECONDS = 30.0  # eval's generated songs, at most


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autosong eval", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a run directory (RUN/export) or an export directory")
    p.add_argument("--data", required=True, help="OUT of `autosong pipeline build` (same codec as the model)")
    p.add_argument("--split", default="val", choices=("val", "train"))
    p.add_argument("--out", default=None, help="report directory (default: RUN/eval)")
    p.add_argument("--max-songs", type=whole(1), default=None, help="score at most this many songs (default: all)")
    p.add_argument("--generate", type=whole(0), default=2, help="songs to generate from held-out lyrics for the report")
    p.add_argument("--seconds", type=real(0, above=True), default=GENERATE_SECONDS,
                   help="length of each generated song, at most (a held-out song's own length when shorter; "
                        "real songs of 3 minutes would take many minutes each on a CPU)")
    p.add_argument("--notes", type=whole(0), default=16, help="held-out songs generated for the note error rate "
                   "(synth data only; 0 = skip)")
    add_sampling_arguments(p)
    add_device_arguments(p)
    return p


def run(argv) -> int:
    args = parser().parse_args(argv)
    use_threads(args.threads)
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise AutoSongError(f"--out {args.out} is a file; eval writes a folder (eval.json, report.html, WAVs): "
                            f"name a folder, e.g. --out {Path(args.out).with_suffix('')}_eval")
    device = resolve_device(args.device)
    bundle = load_bundle(args.checkpoint, device=device, dtype=resolve_dtype(args.dtype, device))
    out = Path(args.out) if args.out else (Path(args.checkpoint) / "eval")
    out.mkdir(parents=True, exist_ok=True)
    stage = stage_named(bundle.stage)
    data = Dataset.open(args.data)  # read once; every part of the eval takes it
    result = evaluate_stage(bundle, data, args.split, args.max_songs, args.seed)
    print(format_stage(bundle.stage, result))
    if stage.is_autoencoder:  # no songs of its own to generate
        (out / "eval.json").write_text(json.dumps(result, indent=2))
        print(f"\nwrote {out / 'eval.json'}")
        return 0
    song = AutoSong.from_bundle(bundle)  # codec (and a latent model's autoencoder), loaded once
    add_line_alignment(song, result, data, args.split, args.max_songs)
    settings = sampling_from_args(args)
    add_note_errors(song, result, data, args.split, args.notes, args.seconds, settings)
    if "line_alignment" in result:
        print("\n" + format_line_alignment(result["line_alignment"]))
    report = write_outputs(song, result, data, args.split, out, args.generate, args.seconds, settings)
    print(f"\nwrote {out / 'eval.json'} and {report}")
    return 0


def add_line_alignment(song, result: dict, data: Dataset, split: str, max_songs: int | None) -> None:
    """Where the model says held-out songs with lyrics.lrc sing each line, against the truth
    (eval/line_alignment.py; chooses the bundle's alignment heads if it has none)."""
    found = line_alignment(song, load_split(data, split, max_songs, song.bundle)[1], data, split)
    if found is not None:
        result["line_alignment"] = found


def add_note_errors(song, result: dict, data: Dataset, split: str, count: int, seconds: float | None, settings) -> None:
    """On a synth corpus, generate `count` held-out songs and their controls, and add the note
    error rate to `result` (and print it); with alignment heads, the generated songs' line-time
    errors and skipped or repeated lines go into result["line_alignment"]["generated"]."""
    if count <= 0 or data.card.synth is None or song.bundle.parent:
        return
    result["note_errors"] = note_error_rates(song, data, split, count, seconds, settings)
    print("\n" + format_note_errors(result["note_errors"]))
    timed = [r for r in result["note_errors"]["per_song"] if "line_starts" in r]
    if timed and "line_alignment" in result:
        result["line_alignment"]["generated"] = generated_line_errors(timed)


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)
