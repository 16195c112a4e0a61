"""Does `generate` keep its share of a busy CPU? A song generated alone, then beside a running
training, with the threads each command chooses by itself (model/threads.py: --threads, else
OMP_NUM_THREADS, else the cores the load average leaves free) and, as the old behaviour, with
both forced onto every core.

Each row times `autosong generate` (one song of `--seconds`, seed 0) in a process of its own, as a
user runs it; "beside" rows start the training first and wait until it is stepping and the
1-minute load average has risen past `--load`. The fair share of the CPU is cores / (jobs): a
generation beside one training should take at most about (1 + its share of the cores it loses)
times its time alone.

Usage: python bench/threads.py RUN DATA [--seconds 8] [--out bench/results/threads.json]
       (RUN: a trained model to generate with; DATA: a built dataset to train on beside it)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LYRICS = "[verse]\nni hao wo men yi qi chang\nyue liang zai tian shang\n[chorus]\nla la la wo ai ni\n"


def _env() -> dict:
    """The environment without OMP_NUM_THREADS, so each command chooses its threads itself."""
    return {**{k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}, "DS_ACCELERATOR": "cpu"}


def generate(run: str, seconds: float, out: Path, threads: int | None) -> float:
    """Wall seconds of one `autosong generate` process (start-up included)."""
    cmd = [sys.executable, "-m", "autosong_cli", "generate", "--checkpoint", run, "--lyrics", str(out / "l.txt"),
           "--seconds", str(seconds), "--seed", "0", "--out", str(out / "song.wav"), "--device", "cpu"]
    if threads:
        cmd += ["--threads", str(threads)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return time.perf_counter() - t0


def start_training(data: str, out: Path, threads: int | None, load: float) -> subprocess.Popen:
    """A tiny training that outlasts the rows, once it steps and the load average shows it."""
    cmd = [sys.executable, "-m", "autosong_cli", "train", "--data", data, "--config", "configs/model/tiny.yaml",
           "--run", str(out / "run"), "--steps", "100000", "--train.log_every", "10", "--train.micro_batch", "8"]
    if threads:
        cmd += ["--threads", str(threads)]
    log = open(out / "train.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(5)
        stepping = "step 10/" in (out / "train.log").read_text()
        if stepping and os.getloadavg()[0] >= load:
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"the training stopped: {(out / 'train.log').read_text()[-2000:]}")
    return proc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("data")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--load", type=float, default=1.0, help="wait for this 1-minute load average before a row")
    p.add_argument("--out", default=str(ROOT / "bench/results/threads.json"))
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "l.txt").write_text(LYRICS)
        generate(args.run, args.seconds, work, None)  # warm the file cache
        alone = generate(args.run, args.seconds, work, None)
        rows.append({"row": "alone, threads chosen (every core)", "generate_s": alone})
        for name, train_threads, gen_threads in (
                ("beside a training, threads chosen by each", None, None),
                ("beside a training, both on every core (the old default)", cores, cores),
                ("beside a training, one core each", 1, 1)):
            run_dir = work / "train"
            run_dir.mkdir(exist_ok=True)
            trainer = start_training(args.data, run_dir, train_threads, args.load)
            try:
                load = os.getloadavg()[0]
                took = generate(args.run, args.seconds, work, gen_threads)
            finally:
                trainer.terminate()
                trainer.wait()
                shutil.rmtree(run_dir)
            rows.append({"row": name, "generate_s": took, "load_before": load})
            time.sleep(30)  # let the load average fall back a little between rows
    print(f"{cores} cores; one {args.seconds:g} s song (a process each, start-up included):\n")
    print("| generate | seconds | x alone |\n|---|---:|---:|")
    for r in rows:
        print(f"| {r['row']} | {r['generate_s']:.1f} | {r['generate_s'] / alone:.2f} |")
    Path(args.out).write_text(json.dumps({"args": vars(args), "cores": cores, "rows": rows}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
