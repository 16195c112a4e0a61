import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def small_data(tmp_path_factory, ray_local):
    """8 synth songs of 4 s in 8 shards (so two ranks get disjoint shards), built by the pipeline."""
    from pipeline.build import BuildConfig, build
    from pipeline.synth import synth_corpus

    root = tmp_path_factory.mktemp("train_data")
    synth_corpus(root / "corpus", songs=8, seconds=4, seed=5)
    build(BuildConfig(str(root / "corpus"), str(root / "out"), codec="test", shard_samples=1, val_fraction=0.25))
    return root / "out"


def train_cli(*args, launcher=None, timeout=600):
    """`autosong train ...` in a fresh process, as a user runs it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1" if launcher else os.environ.get("OMP_NUM_THREADS", "2")}
    cmd = (launcher or [sys.executable, "-m", "train"]) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def read_metrics(run):
    import json

    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines() if line]
