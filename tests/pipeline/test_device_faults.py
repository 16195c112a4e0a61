"""A GPU's failure is never a song's reject (issue 27): out of memory is retried with fewer windows
per forward, any other CUDA error replaces the actor and its songs are encoded again. Without a
GPU, the errors are the ones CUDA raises, injected."""
import os
import subprocess
import sys

import pytest
import torch

from autosong.pipeline.build import BuildConfig
from autosong.pipeline.encode import DeviceFault, FAULT_HOOK, SongEncoder, SongJob
from autosong.pipeline.synth import synth_corpus
from tests.conftest import ROOT


def jobs(corpus):
    return [SongJob(f.name, f.name, str(next(f.glob("audio.*"))), str(f / "lyrics.txt"), "pop", 1, "genre.txt",
                    "", "", "", "train") for f in sorted(corpus.glob("song_*"))]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults") / "c"
    synth_corpus(root, songs=2, seconds=1, seed=3, workers=1)
    return root


def test_out_of_memory_is_retried_with_fewer_windows_per_forward(corpus, monkeypatch):
    encoder = SongEncoder("test", "pinyin", None, BuildConfig("c", "o").limits())
    real, asked = encoder.codec.encode_many, []

    def small_gpu(wavs, rate, batch_windows):
        asked.append(batch_windows)
        if batch_windows > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(wavs, rate, batch_windows)

    monkeypatch.setattr(encoder.codec, "encode_many", small_gpu)
    results = encoder.encode_songs(jobs(corpus), batch_windows=8)
    assert asked == [8, 4, 2] and all(r.ok for r in results)

    monkeypatch.setattr(encoder.codec, "encode_many", lambda *a: (_ for _ in ()).throw(
        torch.cuda.OutOfMemoryError("CUDA out of memory")))  # even one window: the device, not the song
    with pytest.raises(DeviceFault, match="OutOfMemoryError"):
        encoder.encode_songs(jobs(corpus), batch_windows=2)


def test_a_cuda_error_is_a_device_fault_and_other_errors_stay_the_songs(corpus, tmp_path, monkeypatch):
    encoder = SongEncoder("test", "pinyin", None, BuildConfig("c", "o").limits())
    monkeypatch.setenv(FAULT_HOOK, str(tmp_path / "fault"))
    with pytest.raises(DeviceFault, match="illegal memory access"):
        encoder.encode_songs(jobs(corpus))
    assert all(r.ok for r in encoder.encode_songs(jobs(corpus)))  # once: the marker file exists now
    monkeypatch.setattr(encoder.codec, "encode_many", lambda *a: (_ for _ in ()).throw(RuntimeError("bad window")))
    [row] = encoder.encode_songs(jobs(corpus)[:1])
    assert not row.ok and row.stage == "encode" and row.reason == "bad window"


def test_a_build_replaces_an_actor_whose_device_failed_and_rejects_nothing(corpus, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "autosong_cli", "pipeline", "build", str(corpus), "--out", str(out),
                           "--codec", "test", "--workers", "1"], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, FAULT_HOOK: str(tmp_path / "fault")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "fault").exists()  # the fault happened
    assert "device failed" in done.stderr and "replaced it" in done.stderr
    assert "built 2 songs, kept 0, rejected 0" in done.stdout, done.stdout
