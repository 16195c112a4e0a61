import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from autosong.pipeline.build import BuildConfig, STOP_HOOK, build
from autosong.pipeline.verify import verify
from tests.pipeline.conftest import BAD, GOOD
from tests.pipeline.test_build import read_shards


def rows_without_shard(out, kind="samples"):
    rows = pq.read_table(out / f"manifests/{kind}.parquet").to_pylist()
    return sorted(({k: v for k, v in r.items() if k != "shard"} for r in rows), key=lambda r: r["key"])


def cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "autosong_cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def stopped(pid: int) -> bool:
    """Whether the process is stopped (SIGSTOP): the state letter in /proc/PID/stat."""
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "T"


def test_a_build_killed_mid_way_and_re_run_ends_identical(built, mixed_corpus, tmp_path, ray_local):
    out = tmp_path / "out"
    proc = cli("pipeline", "build", str(mixed_corpus), "--out", str(out), "--codec", "test",
               "--shard-samples", "1", "--workers", "1", start_new_session=True,
               env={**os.environ, STOP_HOOK: "2"})  # the build stops itself after its second shard
    deadline = time.time() + 240
    while time.time() < deadline and not stopped(proc.pid):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and every Ray process it started
    proc.wait()
    assert len(list((out / "shards").glob("shard-*.tar"))) == 2  # killed mid-build, where the test chose

    result = build(BuildConfig(str(mixed_corpus), str(out), codec="test", shard_samples=1))
    assert result.built + result.kept == len(GOOD)
    assert rows_without_shard(out) == rows_without_shard(built[0])
    assert rows_without_shard(out, "rejects") == rows_without_shard(built[0], "rejects")
    assert sorted(read_shards(out)) == sorted(GOOD)  # each song exactly once, no partial shard
    by_shard = sorted((r["shard"], r["key"]) for r in pq.read_table(out / "manifests/samples.parquet").to_pylist())
    assert [key for _, key in by_shard] == sorted(GOOD)  # the layout an uninterrupted build writes
    assert not list((out / "shards").glob(".shard-*"))
    assert verify(out)[1] == []


def test_cli_build_verify_inspect(built, tmp_path):
    out = built[0]
    done = cli("pipeline", "inspect", str(out))
    stdout, _ = done.communicate(timeout=120)
    assert done.returncode == 0
    assert f"songs       {len(GOOD)}" in stdout and f"rejects     {len(BAD)}" in stdout
    assert "truncated" in stdout and "reggaeton" in stdout
    assert "codes used  q0 " in stdout and f"(over {len(GOOD)} songs)" in stdout

    ok = cli("pipeline", "verify", str(out))
    stdout, _ = ok.communicate(timeout=120)
    assert ok.returncode == 0 and f"verified {len(GOOD)} samples: OK" in stdout

    missing = cli("pipeline", "verify", str(tmp_path / "nothing"))
    _, stderr = missing.communicate(timeout=120)
    assert missing.returncode == 2 and "autosong: error:" in stderr and "Traceback" not in stderr


def test_cli_build_prints_counts_and_exits_zero_with_rejects_on_a_private_ray(tmp_path):
    from tests.pipeline.conftest import make_mixed_corpus

    corpus = make_mixed_corpus(tmp_path / "dataset")
    # A dead cluster's address left for Ray to find: the build must start its own Ray, not join it.
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "-m", "autosong.pipeline", "build", str(corpus), "--out", str(tmp_path / "o"),
                           "--codec", "test"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"built {len(GOOD)} songs" in proc.stdout and f"rejected {len(BAD)}" in proc.stdout
    assert not (tmp_path / "o/.build.lock").exists()


def test_gpu_encoders_without_gpus_are_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: tests/test_gpu.py builds on it instead")
    from autosong.pipeline.synth import synth_corpus

    synth_corpus(tmp_path / "c", songs=1, seconds=1, seed=0)
    proc = cli("pipeline", "build", str(tmp_path / "c"), "--out", str(tmp_path / "out"), "--codec", "test",
               "--gpus-per-worker", "1")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "Traceback" not in stderr, stderr[-2000:]
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("autosong: error: --gpus-per-worker 1: the Ray cluster has 0 GPUs")


def test_a_killed_build_leaves_no_ray_process_behind(mixed_corpus, tmp_path):
    """SIGKILL the build while its private Ray runs: every process Ray started (the GCS, the raylet,
    its dashboard and runtime-env agents, workers) is gone soon after (pipeline/ray_watchdog.py)."""
    import psutil

    build_cmd = cli("pipeline", "build", str(mixed_corpus), "--out", str(tmp_path / "o"), "--codec", "test")
    driver = psutil.Process(build_cmd.pid)
    ray_procs: dict[int, psutil.Process] = {}
    deadline = time.time() + 120
    while time.time() < deadline and not any("raylet" in p.name() for p in ray_procs.values()):
        for p in driver.children(recursive=True):
            ray_procs.setdefault(p.pid, p)
        time.sleep(0.2)
    time.sleep(2)  # the raylet's agents start a moment after it
    for p in driver.children(recursive=True):
        ray_procs.setdefault(p.pid, p)
    assert any("raylet" in p.name() for p in ray_procs.values()), "Ray never started"
    build_cmd.kill()
    build_cmd.wait(timeout=30)
    _, alive = psutil.wait_procs(list(ray_procs.values()), timeout=30)
    assert not alive, [(p.pid, p.name(), p.cmdline()[:2]) for p in alive]
