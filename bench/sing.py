"""Do generated songs sing their lyrics? Designs compared on one synth corpus and one wall-clock
budget, scored on songs generated from held-out lyrics.

Each design (a set of config overrides on the demo's recipe, or the seed's two-stage path) is
timed for a few steps, then trained for as many steps as the budget buys, on every seed. Then
each sampler row generates the first `--notes` held-out songs from their own lyrics and, as the
control, from another held-out song's lyrics (eval/singing.py), and the songs are transcribed and
scored against the notes their lyrics call for (eval/notes.py): the note error rate (NER) own and
control, their difference with a bootstrap 95 % interval over songs, recall and precision of the
notes a longest common subsequence pairs, sung / expected, and the substitutions, insertions and
deletions apart. NER alone rewards silence (a song that sings nothing scores 1.0), so read it with
recall and sung / expected.

A run whose result is in WORK is kept (delete result_DESIGN_SEED.json to train it again), and so
is a design's step time (WORK/steps.json): an interrupted benchmark resumes where it stopped.

Trainings run `--jobs` at a time, each on `--threads` threads (so two share a 2-core CPU), in
processes of their own; the budget is wall-clock seconds of training under those conditions.

Usage: python bench/sing.py                                # every design, 3 seeds, the demo's corpus
       python bench/sing.py --designs delay,future --seeds 0 --minutes 4
       python bench/sing.py --designs future --samplers all --seeds 0,1,2
       python bench/sing.py --designs future+learned --minutes 60 --seeds 0 --jobs 1 --threads 2   # the long run
       python bench/sing.py --key-normalise --work out/bench_sing_kn ...   # on the corpus moved to C

`--key-normalise` builds the corpus with every song moved to C (pipeline build --key-normalise), and
`--codec DIR` builds it through another codec (one trained on moved songs: `autosong codec train
--key-normalise`); a WORK holds one corpus, so give each a --work of its own.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from autosong.model.sampling import SamplingConfig  # noqa: E402  (no torch: the parent process stays light)

# Overrides on the demo's recipe (autosong/demo.py: the tiny preset, its learning rate, 8 songs a step).
DESIGNS: dict[str, list[str]] = {
    "flat": ["--model.pattern", "flatten"],
    "delay": ["--model.pattern", "delay"],
    "stack4": ["--model.pattern", "delay", "--model.frames_per_step", "4"],
    "future": ["--model.pattern", "delay", "--model.future_frames", "[8,16,32]"],
    "future+learned": ["--model.pattern", "delay", "--model.future_frames", "[8,16,32]", "--model.align_units", "learned"],
    "future+learned+dropout": ["--model.pattern", "delay", "--model.future_frames", "[8,16,32]", "--model.align_units",
                               "learned", "--model.dropout", "0.2"],  # against the count's drift with epochs
    "future+fast-lengths": ["--model.pattern", "delay", "--model.future_frames", "[8,16,32]", "--model.align_units",
                            "learned", "--model.unit_rate", "10"],  # the demo's design in the ninth round
    "future+fast-lengths+context": ["--model.pattern", "delay", "--model.future_frames", "[8,16,32]",
                                    "--model.align_units", "learned", "--model.unit_rate", "10",
                                    "--model.lyric_context", "3"],  # the demo's design in the tenth round
    "future+fast-lengths+context+key": ["--model.pattern", "delay", "--model.future_frames", "[8,16,32]",
                                        "--model.align_units", "learned", "--model.unit_rate", "10",
                                        "--model.lyric_context", "3", "--model.song_key", "true"],  # eleventh round
    "future+fast-lengths+dropout": ["--model.pattern", "delay", "--model.future_frames", "[8,16,32]",
                                    "--model.align_units", "learned", "--model.unit_rate", "10", "--model.dropout", "0.2"],
    "future+lyric-dropout": ["--model.pattern", "delay", "--model.future_frames", "[8,16,32]",
                             "--model.lyric_dropout", "0.2"],
    "two-stage": [],  # the seed's path: a Gumbel autoencoder (stride 4), then the delay model over its latents
}
# the demo's design with dropout, for budgets that pass over the corpus many times (60 minutes: 25 passes)
DESIGNS["future+fast-lengths+context+key+dropout"] = [*DESIGNS["future+fast-lengths+context+key"],
                                                     "--model.dropout", "0.2"]
TWO_STAGE_AE_SHARE = 0.25  # of the budget, for the autoencoder
# Sampler rows; "default" is SamplingConfig() itself, what generate, eval, the demo and the studio use.
SAMPLERS: dict[str, dict] = {
    "default": {},
    "T1 k250 cfg3": {"temperature": 1.0, "top_k": 250, "guidance": 3.0, "note_hold": 0.0},  # before this benchmark
    "code by code": {"note_hold": 0.0},  # the default before the note hold (fifth round)
    "hold 2, no fade": {"note_hold": 2.0, "note_fade": 100.0},
    "T0.7": {"temperature": 0.7},
    "T0.5": {"temperature": 0.5},
    "greedy": {"temperature": 0.0},
    "top-k 10": {"top_k": 10},
    "cfg 1": {"guidance": 1.0},
    "cfg 1.5": {"guidance": 1.5},
    "cfg 2": {"guidance": 2.0},
    "lyric cfg 3": {"guidance": 1.0, "lyric_guidance": 3.0},
}


def sampler(name: str, seed: int) -> SamplingConfig:
    return SamplingConfig(**{**asdict(SamplingConfig()), **SAMPLERS[name], "seed": seed})


def build_corpus(work: Path, songs: int, seconds: float, breaks: bool, key_normalise: bool = False,
                 codec: str = "tiny") -> Path:
    from autosong.pipeline.build import BuildConfig, build
    from autosong.pipeline.synth import synth_corpus

    data = work / "data"
    marker = work / "corpus.json"
    wanted = {"songs": songs, "seconds": seconds, "breaks": breaks, "key_normalise": key_normalise}
    wanted |= {"codec": codec} if codec != "tiny" else {}  # a WORK built with tiny before keeps its data
    if (data / "dataset.json").exists() and marker.exists() and json.loads(marker.read_text()) == wanted:
        return data
    for stale in [*work.glob("result_*.json"), work / "steps.json"]:  # measured on another corpus
        stale.unlink(missing_ok=True)
    synth_corpus(work / "corpus", songs=songs, seconds=seconds, seed=0, breaks=breaks)
    if data.exists():  # built otherwise: --key-normalise is fixed per --out
        shutil.rmtree(data)
    build(BuildConfig(str(work / "corpus"), str(data), codec=codec, shard_samples=16, val_fraction=0.1,
                      key_normalise=key_normalise))
    marker.write_text(json.dumps(wanted))
    return data


def run_config(design: str, seed: int, steps: int, extra: list[str], stage: str = "sound"):
    from autosong.demo import CONFIGS, DEMO_RECIPE
    from autosong.train.config import load_config

    common = ["--train.steps", str(steps), "--train.seed", str(seed), "--train.log_every", str(max(1, steps // 10)),
              "--train.ckpt_every", str(steps)]
    if stage == "gumbel_ae":
        return load_config(CONFIGS / "ae/gumbel_tiny.yaml", common)
    cfg = load_config(CONFIGS / "model/tiny.yaml", [*common, "--train.micro_batch", "8", *DEMO_RECIPE,
                                                    *DESIGNS[design], *extra])
    cfg.stage = stage  # sound, or latent: the same model over an autoencoder's codes
    cfg.__post_init__()
    return cfg


def train_run(data: Path, cfg, run: Path) -> float:
    """Train `cfg` on `data` into `run` (replaced); the wall seconds it took."""
    import shutil

    from autosong.demo import CONFIGS
    from autosong.train.trainer import train

    if run.exists():
        shutil.rmtree(run)
    t0 = time.perf_counter()
    train(str(data), cfg, run, str(CONFIGS / "deepspeed/zero1.json"))
    return time.perf_counter() - t0


def seconds_per_step(data: Path, work: Path, design: str, seed: int, extra: list[str], stage: str = "sound") -> float:
    """Wall seconds a training step of this design takes here: steps 10 to 40 of a short run, as the
    trainer's log times them (start-up and the first, slower steps left out)."""
    run = work / f"calibrate_{design}_{stage}_{seed}"
    cfg = run_config(design, seed, 40, extra, stage)
    cfg.train.log_every = 10
    train_run(data, cfg, run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    at = {r["step"]: r["elapsed_s"] for r in rows}
    return (at[40] - at[10]) / 30


def calibrate(args) -> None:
    """Seconds per step of each design (and a two-stage run's autoencoder), measured one at a time
    before any job runs, into WORK/steps.json: every seed of a design trains the same steps. A
    design timed by an earlier invocation keeps its time, so designs added later share the footing."""
    import torch

    torch.set_num_threads(args.threads)
    work, data = Path(args.work), Path(args.work) / "data"
    path = work / "steps.json"
    timed = json.loads(path.read_text()) if path.exists() else {}
    for design in args.designs.split(","):
        key = "two-stage:ae" if design == "two-stage" else design
        if key in timed:
            continue
        if design == "two-stage":
            timed[key] = seconds_per_step(data, work, "delay", 0, [], "gumbel_ae")
        else:
            timed[key] = seconds_per_step(data, work, design, 0, args.override)
        path.write_text(json.dumps(timed, indent=2))


def job(args) -> None:
    """One design and seed: train for the budget's steps, score its sampler rows, write JSON."""
    import torch

    torch.set_num_threads(args.threads)
    work, data = Path(args.work), Path(args.work) / "data"
    extra = args.override
    design, seed, budget = args.job[0], int(args.job[1]), args.minutes * 60
    timed = json.loads((work / "steps.json").read_text())
    run = work / f"run_{design}_{seed}"
    row = {"design": design, "seed": seed, "budget_s": budget, "threads": args.threads}
    if design == "two-stage":
        row.update(train_two_stage(data, work, seed, budget, extra, timed["two-stage:ae"]))
    else:
        steps = max(10, int(budget / timed[design]))
        row.update(steps=steps, seconds_per_step=timed[design],
                   train_s=train_run(data, run_config(design, seed, steps, extra), run))
    row["scores"] = score(run, data, samplers_for(design, args), seed, args.notes, args.cap_seconds)
    out = work / f"result_{design}_{seed}.json"
    out.write_text(json.dumps(row, indent=2))


def samplers_for(design: str, args) -> list[str]:
    """--samplers for every design; all of them for --sweep's; lyric-only guidance where trained."""
    names = list(SAMPLERS) if design in args.sweep.split(",") else args.samplers.split(",")
    if "lyric-dropout" in design and "lyric cfg 3" not in names:
        names.append("lyric cfg 3")
    return names


def train_two_stage(data: Path, work: Path, seed: int, budget: float, extra: list[str], ae_step: float) -> dict:
    """The seed's path on the same budget: the Gumbel autoencoder for a share of it, latents
    encoded, then the delay model over them for the rest (its step time measured once the
    latents exist)."""
    from autosong.pipeline.latents import encode_latents

    ae_budget = budget * TWO_STAGE_AE_SHARE
    ae_steps = max(10, int(ae_budget / ae_step))
    ae_run = work / f"ae_{seed}"
    ae_s = train_run(data, run_config("delay", seed, ae_steps, [], "gumbel_ae"), ae_run)
    t0 = time.perf_counter()
    latents = encode_latents(data, ae_run, name=f"ae_{seed}")
    encode_s = time.perf_counter() - t0
    lm_step = seconds_per_step(latents, work, "delay", seed, extra, "latent")
    lm_steps = max(10, int((budget - ae_s - encode_s) / lm_step))
    lm_s = train_run(latents, run_config("delay", seed, lm_steps, extra, "latent"), work / f"run_two-stage_{seed}")
    return {"steps": lm_steps, "ae_steps": ae_steps, "train_s": ae_s + encode_s + lm_s, "ae_s": ae_s,
            "encode_s": encode_s, "seconds_per_step": lm_step}


def score(run: Path, data: Path, samplers: list[str], seed: int, notes: int, cap_seconds: float) -> dict:
    from autosong.eval.singing import note_error_rates
    from autosong.model.api import AutoSong

    song = AutoSong.load(run, "cpu", "fp32")
    out = {}
    for name in samplers:
        t0 = time.perf_counter()
        result = note_error_rates(song, str(data), "val", notes, cap_seconds, sampler(name, seed))
        result.pop("per_song")
        out[name] = {**result, "score_s": time.perf_counter() - t0}
        print(f"  {run.name} {name}: NER own {result['ner_true']:.3f}, control {result['ner_control']:.3f}, "
              f"recall {result['own']['recall']:.2f}, precision {result['own']['precision']:.2f}, "
              f"sung/expected {result['own']['sung_ratio']:.2f}", flush=True)
    return out


def table(rows: list[dict]) -> str:
    """Mean over seeds per (design, sampler), and each seed's difference interval."""
    import numpy as np

    head = ("| design | sampler | steps | NER own | NER control | control - own (each seed, 95 % CI) | recall | "
            "precision | sung / expected | S / I / D |\n|---|---|---:|---:|---:|---|---:|---:|---:|---|")
    lines = [head]
    keys = sorted({(r["design"], s) for r in rows for s in r["scores"]}, key=lambda k: (list(DESIGNS).index(k[0]), k[1]))
    for design, name in keys:
        mine = [r for r in rows if r["design"] == design and name in r["scores"]]
        sc = [r["scores"][name] for r in mine]
        mean = lambda f: float(np.mean([f(s) for s in sc]))  # noqa: E731
        diffs = "; ".join(f"{s['difference']['mean']:+.2f} [{s['difference']['ci95'][0]:+.2f}, "
                          f"{s['difference']['ci95'][1]:+.2f}]" for s in sc)
        edits = "/".join(str(sum(s["own"][k] for s in sc)) for k in ("substitutions", "insertions", "deletions"))
        lines.append(f"| {design} | {name} | {int(np.mean([r['steps'] for r in mine]))} | "
                     f"{mean(lambda s: s['ner_true']):.3f} | {mean(lambda s: s['ner_control']):.3f} | {diffs} | "
                     f"{mean(lambda s: s['own']['recall']):.2f} | {mean(lambda s: s['own']['precision']):.2f} | "
                     f"{mean(lambda s: s['own']['sung_ratio']):.2f} | {edits} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--designs", default=",".join(DESIGNS), help=f"comma-separated, of {', '.join(DESIGNS)}")
    p.add_argument("--samplers", default="default,T1 k250 cfg3",
                   help=f"comma-separated, of {', '.join(SAMPLERS)}; or all")
    p.add_argument("--sweep", default="future", help="designs scored with every sampler row ('' for none)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--minutes", type=float, default=4.0, help="wall-clock training budget of each run")
    p.add_argument("--songs", type=int, default=640, help="synth corpus (the demo's: 640 songs of >= 3 s)")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--breaks", action="store_true", help="sections open with instrumental breaks")
    p.add_argument("--key-normalise", action="store_true",
                   help="build the corpus with every song moved to C (pipeline build --key-normalise)")
    p.add_argument("--codec", default="tiny", help="the codec the corpus is built with (tiny, or a directory: "
                   "autosong codec train --out DIR [--key-normalise])")
    p.add_argument("--notes", type=int, default=32, help="held-out songs generated per sampler row")
    p.add_argument("--cap-seconds", type=float, default=12.0, help="generate at most this much of each song")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default=str(ROOT / "out/bench_sing"))
    p.add_argument("--out", default=str(ROOT / "bench/results/sing.json"))
    p.add_argument("--job", nargs=2, metavar=("DESIGN", "SEED"), help=argparse.SUPPRESS)
    p.add_argument("override", nargs="*", help="extra config overrides for every run (after --)")
    args = p.parse_args()
    if args.samplers == "all":
        args.samplers = ",".join(SAMPLERS)
    for name, known in ((args.designs, DESIGNS), (args.samplers, SAMPLERS)):
        unknown = set(name.split(",")) - set(known)
        if unknown:
            p.error(f"unknown {', '.join(sorted(unknown))}: expected some of {', '.join(known)}")
    if args.job:
        return job(args)

    work = Path(args.work)
    t0 = time.time()
    build_corpus(work, args.songs, args.seconds, args.breaks, args.key_normalise, args.codec)
    print(f"corpus: {args.songs} songs of >= {args.seconds:g} s in {work / 'data'} ({time.time() - t0:.0f} s)", flush=True)
    t1 = time.time()
    calibrate(args)
    print(f"step times measured ({time.time() - t1:.0f} s): {(work / 'steps.json').read_text()}", flush=True)
    jobs = [(d, s) for d in args.designs.split(",") for s in args.seeds.split(",")]
    passed = ["--minutes", str(args.minutes), "--samplers", args.samplers, "--sweep", args.sweep,
              "--notes", str(args.notes), "--cap-seconds", str(args.cap_seconds), "--threads", str(args.threads),
              "--work", str(work)]
    running: list[subprocess.Popen] = []
    for design, seed in jobs:
        if (work / f"result_{design}_{seed}.json").exists():
            print(f"{design} seed {seed}: kept from an earlier invocation", flush=True)
            continue
        while len([r for r in running if r.poll() is None]) >= args.jobs:
            time.sleep(2)
        log = open(work / f"log_{design}_{seed}.txt", "w")
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        running.append(subprocess.Popen([sys.executable, __file__, "--job", design, seed, *passed, "--",
                                         *args.override], stdout=log, stderr=subprocess.STDOUT, env=env))
        print(f"started {design} seed {seed}", flush=True)
    for r in running:
        r.wait()
    rows = []
    for design, seed in jobs:
        path = work / f"result_{design}_{seed}.json"
        if not path.exists():
            print(f"{design} seed {seed} failed: see {work / f'log_{design}_{seed}.txt'}")
            continue
        rows.append(json.loads(path.read_text()))
    print(f"\n{args.minutes:g} min of training per run, {args.notes} held-out songs per row:\n")
    print(table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows, "wall_s": time.time() - t0}, indent=2))
    print(f"\nwrote {out} ({time.time() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
