"""Bad numbers are refused at parse time: one line, exit 2, no traceback (table-driven)."""
import pytest

from tests.conftest import autosong_here as autosong

GENERATE = [
    (["--seconds", "nan"], "--seconds"), (["--seconds", "inf"], "--seconds"), (["--seconds", "0"], "--seconds"),
    (["--top-k", "-5"], "--top-k"), (["--top-k", "2.5"], "--top-k"), (["--top-p", "-0.5"], "--top-p"),
    (["--top-p", "1.5"], "--top-p"), (["--temperature", "nan"], "--temperature"), (["--temperature", "-1"], "--temperature"),
    (["--cfg", "nan"], "--cfg"), (["--num-songs", "0"], "--num-songs"), (["--num-songs", "-3"], "--num-songs"),
    (["--seed", "x"], "--seed"), (["--lyric-cfg", "-1"], "--lyric-cfg"),
]


@pytest.mark.parametrize("args,named", GENERATE)
def test_generate_refuses_bad_numbers(args, named, tmp_path):
    out = autosong("generate", "--checkpoint", str(tmp_path), "--lyrics", str(tmp_path / "l.txt"), *args)
    assert out.returncode == 2 and named in out.stderr and "Traceback" not in out.stderr, out.stderr


TRAIN = [
    (["--steps", "0"], "--steps"), (["--steps", "-1"], "--steps"), (["--steps", "1.5"], "--steps"),
    (["--train.steps", "1.5"], "whole number"), (["--train.lr_max", "nan"], "finite"),
    (["--train.lr_max", "0"], "lr_max"), (["--train.steps", "0"], "train.steps"), (["--train.micro_batch", "-2"], "micro_batch"),
    (["--model.n_layers", "two"], "--model.n_layers"),
    (["--train.lr_max", "1e-4"], "train.lr_min 0.0003 is above train.lr_max 0.0001"),  # fields checked together
]


@pytest.mark.parametrize("args,named", TRAIN)
def test_train_refuses_bad_numbers_before_touching_data(args, named, tmp_path):
    out = autosong("train", "--data", str(tmp_path / "none"), "--run", str(tmp_path / "run"), *args)
    assert out.returncode == 2 and named in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "run").exists()


SONG_LENGTHS = [
    (["demo", "--seconds", "5", "--longest", "4"], "--longest 4 is shorter than --seconds 5"),
    (["demo", "--longest", "nan"], "--longest"),
    (["pipeline", "synth", "DIR", "--seconds", "5", "--longest", "4"], "--longest 4 s is shorter than --seconds 5 s"),
]


@pytest.mark.parametrize("args,named", SONG_LENGTHS)
def test_song_lengths_that_cannot_be_drawn_are_refused_before_writing(args, named, tmp_path):
    args = [str(tmp_path / "c") if a == "DIR" else a for a in args]
    out = autosong(*args, "--out", str(tmp_path / "d")) if args[0] == "demo" else autosong(*args)
    assert out.returncode == 2 and named in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "c").exists()
