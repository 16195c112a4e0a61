"""The Python API (model.api.AutoSong) and where it runs (--device / --dtype)."""
import numpy as np
import pytest
import torch

from autosong.manifests.errors import AutoSongError
from autosong.model.devices import resolve_device, resolve_dtype


def test_device_and_dtype_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32  # half precision is slower on a CPU
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    for bad, words in (("tpu", "expected one of auto, cpu, cuda"), ("cuda:x", "GPU")):
        with pytest.raises(AutoSongError, match=words.split(",")[0]):
            resolve_device(bad)
    with pytest.raises(AutoSongError, match="expected auto, fp32, bf16, fp16"):
        resolve_dtype("fp8", torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_asking_for_a_missing_gpu_is_one_clear_error():
    with pytest.raises(AutoSongError, match="no CUDA GPU is visible.*use --device cpu"):
        resolve_device("cuda")


def test_api_generates_a_song_longer_than_the_training_window(trained_run):
    from autosong.model.api import AutoSong
    from autosong.model.sampler import SamplingConfig

    song = AutoSong.load(trained_run, device="cpu", dtype="bf16")
    assert next(song.bundle.model.parameters()).dtype == torch.bfloat16
    window_s = song.bundle.model.cfg.window_frames / 75
    seconds = window_s + 1.0  # two windows: the second continues the last half of the first
    out = song.generate("[verse]\n我爱你 hello\n", song.genres[-1], seconds,
                        SamplingConfig(temperature=1.0, top_k=50, guidance=1.0, seed=3))
    frames = round(seconds * 75)
    assert out.codes.shape == (1, 2, frames) and out.codes.dtype == np.int16
    assert out.audio[0].shape == (frames * 320,) and np.isfinite(out.audio[0]).all()
    assert out.timing["device"] == "cpu" and out.timing["dtype"] == "bfloat16"
    assert len(np.unique(out.codes[0, 0, -frames // 4 :])) > 3  # the continuation is music-like codes, not a stall


def test_api_batch_matches_the_command_line(trained_run, tmp_path):
    """Two songs in one API call are the two songs `autosong generate --num-songs 2` writes, code
    for code and sample for sample, saved under the same names."""
    import soundfile as sf

    from autosong.model.api import AutoSong
    from autosong.generate_cli import run
    from autosong.model.sampler import SamplingConfig

    song = AutoSong.load(trained_run, device="cpu")
    out = song.generate(["la la\n"] * 2, song.genres[0], 0.5, SamplingConfig(seed=1, guidance=1.5, top_k=20))
    paths = out.save(tmp_path / "api" / "song.wav")
    assert [p.name for p in paths] == ["song_0.wav", "song_1.wav"]
    (tmp_path / "lyrics.txt").write_text("la la\n", encoding="utf-8")
    assert run(["--checkpoint", str(trained_run), "--lyrics", str(tmp_path / "lyrics.txt"), "--genre", song.genres[0],
                "--seconds", "0.5", "--num-songs", "2", "--seed", "1", "--cfg", "1.5", "--top-k", "20",
                "--device", "cpu", "--threads", str(torch.get_num_threads()),  # not fewer on a busy machine:
                "--out", str(tmp_path / "cli" / "song.wav")]) == 0                # other sums, other last bits
    for i, path in enumerate(paths):
        np.testing.assert_array_equal(np.load(tmp_path / "cli" / f"song_{i}.npy"), out.codes[i])
        api_wav, sr = sf.read(path)
        cli_wav, cli_sr = sf.read(tmp_path / "cli" / path.name)
        assert sr == cli_sr == song.sample_rate and len(api_wav) == out.codes.shape[-1] * 320
        np.testing.assert_array_equal(api_wav, cli_wav)
    assert not np.array_equal(out.codes[0], out.codes[1])  # two draws, not one song twice
    with pytest.raises(ValueError, match="2 lyrics but 3 genres"):
        song.generate(["a", "b"], ["pop"] * 3, 0.5)
    with pytest.raises(ValueError, match="2 lyrics but 3 genres"):
        song.generate(["a", "b"], ["pop"] * 3, 0.5)


def test_the_api_imports_beside_a_users_own_model_py(tmp_path):
    import subprocess
    import sys

    (tmp_path / "model.py").write_text("shadow = True\n")  # what a user's notebook folder often holds
    (tmp_path / "train").mkdir()  # and a folder of their own named like one of our stages
    code = ("import model; from autosong import AutoSong; from autosong.train.config import TrainConfig; "
            "print(AutoSong.__module__, model.__file__, model.shadow)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1500:]
    module, where, shadow = out.stdout.split()
    assert module == "autosong.model.api" and where == str(tmp_path / "model.py") and shadow == "True"


def test_load_bundle_takes_the_dtype_names_the_flags_take(trained_run):
    from autosong.model.bundle import load_bundle

    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32), ("auto", torch.float32)):
        assert next(load_bundle(trained_run, device="cpu", dtype=name).model.parameters()).dtype == dtype
