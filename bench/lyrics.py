"""Does the model use the *content* of the lyrics? An ablation over the alignment options.

One synth corpus, one `pipeline build`; then, for each alignment option (none: the design's plain
cross-attention; tokens: the prior counting lyric ids; syllables: the prior counting sung
syllables, the presets' default) and seed, the tiny model is trained through the project's
DeepSpeed trainer and evaluated on the held-out songs. The figure is the conditioning gain of the true lyrics over another song's lyrics (true
genre kept), in nats per token, with its bootstrap 95 % interval over songs: a baseline (the
option `none`) measured in the same run, on the same data, with the same seeds.

Usage: python bench/lyrics.py                  # the long run: ~31 min on 2 CPU cores
       python bench/lyrics.py --align none,tokens,syllables   # all three (half as long again)
       python bench/lyrics.py --quick          # the demo's own 700 steps, four trainings
       python bench/lyrics.py --quick --codec tiny --align syllables,timed --seeds 0
                                               # the prior with and without lyrics.lrc's line times
       python bench/lyrics.py --quick --codec tiny --align syllables,timed --seeds 0 --breaks
                                               # the same where instrumental breaks move the lines
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

ALIGN_OPTIONS = {
    "none": ["--model.cross_align", "none"],
    "tokens": ["--model.cross_align", "prior", "--model.align_units", "tokens"],
    "syllables": ["--model.cross_align", "prior", "--model.align_units", "syllables"],
    "prior": ["--model.cross_align", "prior"],  # whatever the preset counts (syllables)
    "timed": ["--model.cross_align", "prior", "--model.align_source", "timed"],  # the prior follows lyrics.lrc
}
# Both train the demo's recipe (autosong/demo.py: the delay pattern, its learning rate, 8 songs a
# step) on the demo's corpus; the long run trains twice as long as the demo.
QUICK = dict(songs=640, seconds=3.0, steps=700)
LONG = dict(songs=640, seconds=3.0, steps=1500)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"the demo's scale {QUICK}; default {LONG}")
    p.add_argument("--codec", default="test")
    p.add_argument("--align", default="none,syllables",
                   help="comma-separated: none (plain cross-attention), tokens (the prior counting ids), "
                        "syllables (the prior counting sung syllables, the presets' default)")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--songs", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--steps", type=int)
    p.add_argument("--work", default=str(ROOT / "out/bench_lyrics"))
    p.add_argument("--breaks", action="store_true", help="a corpus whose sections open with instrumental breaks")
    p.add_argument("--reuse-data", action="store_true", help="keep WORK/data if built (runs of other options)")
    p.add_argument("--out", default=None, help="JSON results (default bench/results/lyrics[_quick].json)")
    p.add_argument("override", nargs="*", help="extra config overrides for every run (after --)")
    args = p.parse_args()
    unknown = set(args.align.split(",")) - set(ALIGN_OPTIONS)
    if unknown:
        p.error(f"--align {','.join(sorted(unknown))}: expected some of {', '.join(ALIGN_OPTIONS)}")
    scale = dict(QUICK if args.quick else LONG)
    scale.update({k: getattr(args, k) for k in scale if getattr(args, k) is not None})
    out_json = Path(args.out or ROOT / f"bench/results/lyrics{'_quick' if args.quick else ''}.json")

    import shutil

    import torch.distributed as dist

    from autosong.demo import DEMO_RECIPE
    from autosong.eval.evaluate import evaluate
    from autosong.model.bundle import load_bundle
    from autosong.pipeline.build import BuildConfig, build
    from autosong.pipeline.synth import synth_corpus
    from autosong.train.config import load_config
    from autosong.train.trainer import train

    work = Path(args.work)
    corpus, data = work / "corpus", work / "data"
    t0 = time.time()
    if not (args.reuse_data and (data / "dataset.json").exists()):
        if work.exists():
            shutil.rmtree(work)
        synth_corpus(corpus, songs=scale["songs"], seconds=scale["seconds"], seed=0, breaks=args.breaks)
        build(BuildConfig(str(corpus), str(data), codec=args.codec, shard_samples=16, val_fraction=0.1))
        print(f"corpus {scale['songs']} songs x >= {scale['seconds']:g} s built in {time.time() - t0:.0f} s", flush=True)

    rows = []
    for align in args.align.split(","):
        for seed in map(int, args.seeds.split(",")):
            run = work / f"run_{align}_{seed}"
            if run.exists():
                shutil.rmtree(run)
            cfg = load_config(ROOT / "configs/model/tiny.yaml",
                              ["--train.steps", str(scale["steps"]), "--train.seed", str(seed),
                               "--train.log_every", "50", "--train.ckpt_every", str(scale["steps"]),
                               "--train.micro_batch", "8", *DEMO_RECIPE, *ALIGN_OPTIONS[align], *args.override])
            t1 = time.time()
            # one process group for every run: DeepSpeed keeps its groups across engines, and a
            # group destroyed between runs leaves it holding stale ones
            trained = train(str(data), cfg, run, str(ROOT / "configs/deepspeed/zero1.json"))
            train_s = time.time() - t1
            metrics = evaluate(load_bundle(run), str(data), "val", seed=seed)
            g = metrics["conditioning_gain"]
            row = {"align": align, "seed": seed, "steps": trained.steps, "train_s": train_s,
                   "val_ce": metrics["ce"]["mean"], "songs": metrics["songs"],
                   "gain_shuffled": g["shuffled_lyrics"]["mean"], "ci_shuffled": g["shuffled_lyrics"]["ci95"],
                   "gain_empty": g["empty_lyrics"]["mean"], "gain_genre": g["swapped_genre"]["mean"],
                   "ce_by_position": metrics["ce_by_position"]}
            if align == "timed":  # the same model with the uniform prior: what it does with no times given
                plain = evaluate(load_bundle(run), str(data), "val", seed=seed, times=False)
                row.update(val_ce_untimed=plain["ce"]["mean"], ce_by_position_untimed=plain["ce_by_position"],
                           gain_shuffled_untimed=plain["conditioning_gain"]["shuffled_lyrics"]["mean"])
            rows.append(row)
            print(f"{align:6} seed {seed}: val CE {row['val_ce']:.3f}  shuffled-lyrics gain {row['gain_shuffled']:+.4f} "
                  f"[{row['ci_shuffled'][0]:+.4f}, {row['ci_shuffled'][1]:+.4f}]  ({train_s:.0f} s training)", flush=True)

    print(f"\n{'align':7}{'seed':>5}{'val CE':>9}{'shuffled lyrics gain [95% CI]':>36}{'empty':>9}{'genre':>9}")
    for r in rows:
        ci = f"{r['gain_shuffled']:+.4f} [{r['ci_shuffled'][0]:+.4f}, {r['ci_shuffled'][1]:+.4f}]"
        print(f"{r['align']:7}{r['seed']:>5}{r['val_ce']:9.3f}{ci:>36}{r['gain_empty']:+9.3f}{r['gain_genre']:+9.3f}")
    print("\nCE by tenth of the song (nats/token):")
    for r in rows:
        for key, label in (("ce_by_position", r["align"]), ("ce_by_position_untimed", "  no times")):
            if key in r:
                print(f"  {label:10}" + " ".join(f"{v:5.2f}" for v in r[key]))
    base = [r["gain_shuffled"] for r in rows if r["align"] == "none"]
    summary = {}
    for align in args.align.split(","):
        mine = [r["gain_shuffled"] for r in rows if r["align"] == align]
        summary[align] = {"mean_gain": sum(mine) / len(mine)}
        if base and align != "none":
            summary[align]["over_none"] = summary[align]["mean_gain"] / max(sum(base) / len(base), 1e-9)
    if dist.is_initialized():
        dist.destroy_process_group()
    print("\nmean shuffled-lyrics gain per option: "
          + ", ".join(f"{a} {s['mean_gain']:+.4f}" for a, s in summary.items()))
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({"scale": scale, "codec": args.codec, "breaks": args.breaks, "rows": rows, "summary": summary,
                                    "wall_s": time.time() - t0}, indent=2))
    print(f"wrote {out_json} ({time.time() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
