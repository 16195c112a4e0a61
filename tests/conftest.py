import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("AUTOSONG_CACHE", str(Path(tempfile.gettempdir()) / "autosong-tests-cache"))  # not ~/.cache


@pytest.fixture(scope="session")
def ray_local():
    """The private local Ray a build starts (pipeline/encoder_pool.start_ray), for the session."""
    import ray

    from autosong.pipeline.encoder_pool import start_ray

    start_ray(None)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def codec():
    from autosong.model.codec import Codec

    return Codec.load("test")


@pytest.fixture(scope="session")
def tokenizer():
    from autosong.model.lyrics import default_tokenizer

    return default_tokenizer()


def music_signal(seconds: float, sr: int = 24_000, seed: int = 0) -> np.ndarray:
    """Notes with harmonics and a noisy percussion layer: not the codec's seeding signal."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    pitch = 220 * 2 ** (rng.integers(0, 12, size=int(seconds * 4) + 1) / 12)
    f = pitch[(t * 4).astype(int)]
    wav = 0.3 * np.sin(2 * np.pi * f * t) + 0.1 * np.sin(4 * np.pi * f * t)
    wav += 0.05 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0.9)
    return wav.astype(np.float32)



def build_small_data(root: Path) -> Path:
    """8 synth songs of 4 s in 8 shards (so two ranks get disjoint shards), built by the pipeline."""
    from autosong.pipeline.build import BuildConfig, build
    from autosong.pipeline.synth import synth_corpus

    synth_corpus(root / "corpus", songs=8, seconds=4, seed=5)
    build(BuildConfig(str(root / "corpus"), str(root / "out"), codec="test", shard_samples=1, val_fraction=0.25))
    return root / "out"


@pytest.fixture(scope="session")
def small_data(tmp_path_factory, request):
    """build_small_data's dataset. AUTOSONG_SMALL_DATA names one built before, on a machine without
    Ray (the lent GPU machines: bench/gpu_check.sh); the tests read a copy of it."""
    root = tmp_path_factory.mktemp("train_data")
    if os.environ.get("AUTOSONG_SMALL_DATA"):
        return Path(shutil.copytree(os.environ["AUTOSONG_SMALL_DATA"], root / "out"))
    request.getfixturevalue("ray_local")
    return build_small_data(root)


def train_cli(*args, launcher=None, timeout=600):
    """`autosong train ...` in a fresh process, as a user runs it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1" if launcher else os.environ.get("OMP_NUM_THREADS", "2")}
    cmd = (launcher or [sys.executable, "-m", "autosong.train"]) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def autosong_here(*args) -> subprocess.CompletedProcess:
    """`autosong ARGS` run in this process, its stdout and stderr captured: for the refusal tables,
    where a fresh interpreter per case costs seconds and checks nothing more (the exit code and the
    one line a user reads come from the same run_cli). What a command sets for the process (its
    torch threads) is put back. `autosong` in tests/eval/test_eval.py runs a fresh process."""
    import contextlib
    import io

    import torch

    from autosong_cli import main

    out, err, threads = io.StringIO(), io.StringIO(), torch.get_num_threads()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as stop:  # argparse refuses with exit 2
            code = stop.code if isinstance(stop.code, int) else 1
        finally:
            torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["autosong", *args], code, out.getvalue(), err.getvalue())


def read_metrics(run):
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines() if line]


TINY = ["--config", "configs/model/tiny.yaml", "--train.log_every", "1", "--train.micro_batch", "2",
        "--train.warmup_steps", "2"]


@pytest.fixture(scope="session")
def trained_run(small_data, tmp_path_factory):
    """A tiny model trained a few steps on small_data, exported."""
    run = tmp_path_factory.mktemp("trained") / "run"
    out = train_cli("--data", str(small_data), "--run", str(run), "--steps", "20", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def overfit_run(tmp_path_factory, ray_local):
    """The design's overfit test set-up: one 2 s song, a tiny model trained on it alone."""
    from autosong.pipeline.build import BuildConfig, build
    from autosong.pipeline.synth import synth_corpus

    root = tmp_path_factory.mktemp("overfit")
    synth_corpus(root / "c", songs=1, seconds=2, seed=1)
    build(BuildConfig(str(root / "c"), str(root / "out"), codec="test", val_fraction=0.0))
    run = root / "run"
    out = train_cli("--data", str(root / "out"), "--run", str(run), "--steps", "150",
                    "--config", "configs/model/tiny.yaml", "--model.cond_dropout", "0", "--train.micro_batch", "1",
                    "--train.lr_max", "0.003", "--train.lr_min", "0.0003", "--train.warmup_steps", "10",
                    "--train.log_every", "50")
    assert out.returncode == 0, out.stderr[-2000:]
    return root / "out", run
