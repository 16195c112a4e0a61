"""`autosong demo`: the main job on an embedded default, offline, on a laptop CPU.

synth corpus -> `pipeline build` (Ray) -> train the tiny model (DeepSpeed) -> eval (CE table,
conditioning gain, and the note error rate of songs generated from held-out lyrics against a
lyrics-swapped control) -> two songs to listen to -> report.html. The codec is `tiny`, the trained
offline codec shipped in the package; `--codec facebook/encodec_24khz` uses the real one where the
hub is reachable.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from autosong.command_line import HelpFormatter, add_device_arguments, real, run_cli, whole
from autosong.eval.evaluate import evaluate, format_interval, format_table
from autosong.eval.line_alignment import format_line_alignment
from autosong.eval.listening import write_outputs
from autosong.eval.singing import format_notes
from autosong.eval_cli import add_line_alignment, add_note_errors
from autosong.manifests.dataset import Dataset
from autosong.model.api import AutoSong
from autosong.model.sampling import SamplingConfig
from autosong.model.threads import use_threads
from autosong.pipeline.build import BuildConfig, build
from autosong.pipeline.summary import summary
from autosong.pipeline.synth import synth_corpus
from autosong.train.config import load_config
from autosong.train.trainer import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Measured on the demo's corpus (bench/RESULTS.md): the delay pattern takes half the time per step
# of the flattened one and gives a steady lyric gain on every seed (no sudden transition); twice
# the preset's peak learning rate lifts it past +0.05 in the same 800 steps. With the prior
# counting sung syllables (the presets' align_units) 700 steps clear it, within 10 minutes. The
# benches that compare designs start from this recipe (bench/sing.py, bench/lyrics.py).
DEMO_RECIPE = ["--model.pattern", "delay", "--train.lr_max", "0.006", "--train.lr_min", "0.0006"]
# bench/sing.py's winner (bench/RESULTS.md, "Singing"): an auxiliary loss that predicts the first
# codebook 8, 16 and 32 frames ahead, so the states must carry the notes to come, which only the
# lyrics tell; and the alignment prior's lyric coordinate learned (each id's sung length starts
# from the syllable count). On the same wall-clock budget its songs sing their own notes best.
# Those lengths learn 10 times faster than the other weights (model.unit_rate): at the plain rate they
# hardly leave the syllable count in 420 steps, or in 5,000, and once they do the prior follows the sung
# words and the songs recall more of their notes (bench/RESULTS.md, "Singing, ninth round").
# Each lyric slot also reads its neighbours, three either side (model.lyric_context): a letter knows its
# word. The songs sing as well and follow their own lyrics a little more, and `align` times unseen 10 s
# songs better on every seed (bench/RESULTS.md, "Singing, tenth round").
# And the song's key (model.song_key): the build hears it in each song, every memory slot carries it, and
# a small head learns it from the lyrics and genre for generation. Every seed sings with precision 0.5 or
# more and recall 0.51-0.54 (bench/RESULTS.md, "Singing, eleventh round").
SINGING_DESIGN = ["--model.future_frames", "[8,16,32]", "--model.align_units", "learned", "--model.unit_rate", "10",
                  "--model.lyric_context", "3", "--model.song_key", "true"]
DEMO_TRAINING = [*DEMO_RECIPE, *SINGING_DESIGN]
# Songs of several lengths, not 3-6 s alone: a model that has heard third lines and second sections
# sings and times unseen 10 s songs better (bench/RESULTS.md "Singing on songs of several lengths").
DEMO_LONGEST = 10.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autosong demo", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--out", default="demo_out", help="working directory (default: demo_out)")
    p.add_argument("--codec", default="tiny", help="tiny (trained, offline; the default), test (random weights, "
                   "a hum), a local directory, or a hub id")
    # Many short songs rather than few long ones: with 120 songs the tiny model memorises them
    # (train CE 2.8 against 5.2 held out) instead of learning how lyrics become melody.
    p.add_argument("--songs", type=whole(1), default=640)
    p.add_argument("--seconds", type=real(1), default=3.0, help="shortest synth song (each holds its complete lyrics)")
    p.add_argument("--longest", type=real(1), default=None,
                   help="each song lasts at least a length drawn from [--seconds, --longest] (default: 10 s, or "
                        "--seconds when that is longer)")
    # Instrumental tracks teach `autosong edit --instrumental` the backing alone (0.05 did, bench/RESULTS.md
    # "Editing, second round"); off by default: on seed 1 they cost the demo its lyric-following (+0.06 [-0.16, +0.23]).
    p.add_argument("--instrumental", type=real(0, 1), default=0.0,
                   help="share of songs that are the backing alone (lyrics '[instrumental]'), e.g. 0.05")
    # 520 steps: with the song's key, 100 more than the singing benchmark's 5-minute budget recall 0.56 / 0.60 /
    # 0.64 of the notes on seeds 0-2 (0.54 / 0.51 / 0.52 at 420) with precision 0.52-0.57, about a minute more
    # (bench/RESULTS.md "Singing, twelfth round"); before the key, 700 sang more notes than asked (1.55 per note).
    p.add_argument("--steps", type=whole(1), default=520, help="training steps of the tiny model")
    p.add_argument("--micro-batch", type=whole(1), default=8, help="songs per training step")
    # Every song moved to C before it is encoded: the model learns one key's notes, and its songs are moved
    # back to their keys (bench/RESULTS.md, "Singing, fourteenth round").
    p.add_argument("--key-normalise", action=argparse.BooleanOptionalAction, default=True,
                   help="build with every song moved to C (pipeline build --key-normalise); --no-key-normalise: "
                        "songs encoded in their own keys")
    p.add_argument("--val-fraction", type=real(0.01, 0.5), default=0.1, help="songs held out for the eval")
    p.add_argument("--generate-seconds", type=real(0.5), default=6.0)
    p.add_argument("--notes", type=whole(0), default=32, help="held-out songs generated for the note error rate")
    p.add_argument("--seed", type=whole(0), default=0)
    add_device_arguments(p)
    p.add_argument("override", nargs="*", help="config overrides, e.g. --model.dropout 0.1 (after --)")
    return p


def run(argv) -> int:
    import shutil

    import torch.distributed as dist

    args = parser().parse_args(argv)
    if args.longest is None:
        args.longest = max(DEMO_LONGEST, args.seconds)
    elif args.longest < args.seconds:
        parser().error(f"--longest {args.longest:g} is shorter than --seconds {args.seconds:g}")
    if args.threads:  # else torch's every core, whatever the load: the demo's figures repeat bit for bit
        use_threads(args.threads)
    out = Path(args.out)
    t0 = time.time()
    corpus = out / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    synth_corpus(corpus, songs=args.songs, seconds=args.seconds, seed=args.seed, instrumental=args.instrumental,
                 longest=args.longest)
    lengths = f"{args.seconds:g}-{args.longest:g}" if args.longest > args.seconds else f"{args.seconds:g}"
    print(f"[1/5] synth corpus: {args.songs} songs of at least {lengths} s -> {corpus}  ({time.time() - t0:.0f} s)")

    data = out / "data"
    result = build(BuildConfig(str(corpus), str(data), codec=args.codec, shard_samples=16,
                               val_fraction=args.val_fraction, key_normalise=args.key_normalise))
    print(f"[2/5] pipeline build: {result.built} encoded, {result.kept} kept, {result.rejected} rejected  ({time.time() - t0:.0f} s)\n")
    print(summary(data), "\n")
    data = Dataset.open(data)  # read once: training, the eval and the songs all take it

    run_dir = out / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cfg = load_config(CONFIGS / "model/tiny.yaml", ["--train.steps", str(args.steps), "--train.seed", str(args.seed),
                                                   "--train.log_every", "25",
                                                   "--train.micro_batch", str(args.micro_batch), *DEMO_TRAINING,
                                                   *args.override])
    trained = train(data, cfg, run_dir, str(CONFIGS / "deepspeed/zero1.json"))
    if dist.is_initialized():
        dist.destroy_process_group()
    print(f"[3/5] trained the tiny model through DeepSpeed: {trained.steps} steps, last loss {trained.last_loss:.3f}  ({time.time() - t0:.0f} s)")

    song = AutoSong.load(run_dir, args.device, args.dtype)  # the eval and the songs run where --device says
    bundle = song.bundle
    report_dir = out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    metrics = evaluate(bundle, data, "val", seed=args.seed)
    print("[4/5] eval on held-out songs:\n")
    print(format_table(metrics), "\n")

    add_line_alignment(song, metrics, data, "val", None)
    settings = SamplingConfig(seed=args.seed)  # the defaults generate and the studio use
    add_note_errors(song, metrics, data, "val", args.notes, args.generate_seconds, settings)
    if "line_alignment" in metrics:
        print(format_line_alignment(metrics["line_alignment"]), "\n")
    report = write_outputs(song, metrics, data, "val", report_dir, 2, args.generate_seconds, settings)
    print(f"[5/5] generated {len(metrics['generated'])} songs from held-out lyrics: {report_dir}/generated_*.wav  ({time.time() - t0:.0f} s)")
    print(headline(metrics))
    print(f"report: {report.resolve()}   ({time.time() - t0:.0f} s in all)")
    return 0


def headline(metrics: dict) -> str:
    """The demo's answer: the lyric gain and, on synth data, the note error rates, with intervals."""
    gain = metrics["conditioning_gain"]["shuffled_lyrics"]
    lines = [f"\nconditioning gain, true vs shuffled lyrics, nats/token, 95% CI over held-out songs: "
             f"{format_interval(gain['mean'], gain['ci95'], gain['songs'])}"]
    if "note_errors" in metrics:
        ner = metrics["note_errors"]
        d = ner["difference"]
        lines.append(f"note error rate, another song's lyrics - own lyrics, 95% CI: "
                     f"{format_interval(d['mean'], d['ci95'], ner['songs'])} (own {ner['ner_true']:.3f}, control "
                     f"{ner['ner_control']:.3f}, true audio through the codec {ner['ner_codec']:.3f})")
        lines.append(format_notes(ner["own"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)
