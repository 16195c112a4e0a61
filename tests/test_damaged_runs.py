"""Damaged data and bad arguments around training and eval: one `autosong: error:` line that names
what is wrong, exit 2, no traceback."""
import json
import shutil

import pytest

from autosong.manifests import read_manifest
from tests.conftest import TINY, autosong_here, train_cli
from tests.eval.test_eval import autosong


def _one_line(out, *says):
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("autosong: error:") or "error: argument" in line, line
    for words in says:
        assert words in line, line


def test_a_missing_shard_is_one_line_in_eval_as_it_is_in_train(small_data, trained_run, tmp_path):
    # (train's: tests/pipeline/test_build.py; both come from manifests.refuse_missing_shards)
    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    val = sorted(r["shard"] for r in read_manifest(data, "samples") if r["split"] == "val")
    (data / "shards" / val[0]).unlink()
    says = ("shard(s) listed in the manifest are missing", val[0], "autosong pipeline verify")
    _one_line(autosong("eval", "--checkpoint", str(trained_run), "--data", str(data), "--generate", "0",
                       "--notes", "0"), *says)


@pytest.mark.parametrize("flag,value", [("--seconds", "nan"), ("--cfg", "nan"), ("--max-songs", "-1"),
                                        ("--notes", "-2"), ("--generate", "1.5"), ("--seconds", "0")])
def test_eval_refuses_bad_arguments_before_it_loads_anything(flag, value, tmp_path):
    out = autosong_here("eval", "--checkpoint", str(tmp_path / "none"), "--data", str(tmp_path / "none"), flag, value)
    _one_line(out, flag)


def _rewrite_codes(shard, change) -> str:
    """Rewrite the one sample of a shard with its codes changed by `change` (in place, as bit rot
    would); returns the sample's key."""
    import io
    import tarfile

    import numpy as np

    members = []
    with tarfile.open(shard) as tar:
        for m in tar.getmembers():
            data = tar.extractfile(m).read()
            if m.name.endswith(".codes.npy"):
                codes = np.load(io.BytesIO(data))
                change(codes)
                buf = io.BytesIO()
                np.save(buf, codes)
                data, key = buf.getvalue(), m.name.split(".")[0]
            members.append((m, data))
    with tarfile.open(shard, "w") as tar:
        for m, data in members:
            m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    return key


@pytest.mark.parametrize("damage", ["a code outside the codebook", "a code changed within range"])
def test_a_corrupted_code_is_refused_naming_shard_and_sample(damage, small_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    shard = sorted(r["shard"] for r in read_manifest(data, "samples") if r["split"] == "train")[0]
    args = ["--data", str(data), "--run", str(tmp_path / "run"), "--steps", "1", *TINY]
    if damage == "a code outside the codebook":  # the int16 bit flip that reached the embedding
        key = _rewrite_codes(data / "shards" / shard, lambda c: c.__setitem__((0, 3), 16_000))
        _one_line(train_cli(*args), shard, key, "code 16000 is outside the codebook (0-1023)", "pipeline verify")
    else:  # only the hash can tell: --verify-data
        key = _rewrite_codes(data / "shards" / shard, lambda c: c.__setitem__((0, 3), (int(c[0, 3]) + 1) % 1024))
        _one_line(train_cli(*args, "--verify-data"), shard, key, "differ from the hash the build recorded")


def test_resume_refuses_data_whose_genre_slots_changed_meaning(small_data, trained_run, tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(small_data, data)
    run.mkdir()
    shutil.copy(trained_run / "run_config.json", run)  # a run trained on small_data's slots
    card = json.loads((data / "dataset.json").read_text())
    card["genres"][1], card["genres"][2] = card["genres"][2], card["genres"][1]  # a rebuild that moved them
    (data / "dataset.json").write_text(json.dumps(card))
    out = train_cli("--data", str(data), "--run", str(run), "--resume")
    _one_line(out, "genre slot 1 is", f"learned it as {card['genres'][2]!r}", f"--genres {run}")


def _truncate(path) -> None:
    """Cut a shard in the middle of its first member's data ("unexpected end of data"; a cut in the
    tar's end padding would lose nothing)."""
    import tarfile

    with tarfile.open(path) as tar:
        first = tar.getmembers()[0]
    with open(path, "r+b") as f:
        f.truncate(first.offset_data + first.size // 2)


def test_a_truncated_shard_is_one_line_in_train_and_eval(small_data, trained_run, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    rows = read_manifest(data, "samples")
    shard = sorted(r["shard"] for r in rows if r["split"] == "train")[0]
    _truncate(data / "shards" / shard)
    _one_line(train_cli("--data", str(data), "--run", str(tmp_path / "run"), "--steps", "4", *TINY),
              shard, "is damaged", "pipeline verify", "pipeline build")
    val = sorted(r["shard"] for r in rows if r["split"] == "val")[0]
    _truncate(data / "shards" / val)
    _one_line(autosong("eval", "--checkpoint", str(trained_run), "--data", str(data), "--generate", "0",
                       "--notes", "0"), val, "is damaged", "pipeline build")


def test_training_refuses_a_shard_short_of_the_samples_the_manifest_lists(small_data, tmp_path):
    """A valid tar that lost its songs: the loader counts positions from the manifest, so it must
    not read on as if nothing were missing."""
    import tarfile

    from autosong.train.data import ShardStream, StreamConfig

    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    shards = sorted({r["shard"] for r in read_manifest(data, "samples") if r["split"] == "train"})
    with tarfile.open(data / "shards" / shards[0], "w"):
        pass  # the same name, no samples
    stream = ShardStream(StreamConfig(str(data), micro_batch=1, window_frames=300, bucket_songs=1))
    from autosong.manifests.errors import AutoSongError

    with pytest.raises(AutoSongError, match=f"{shards[0]} lacks 1 of the 1 train samples the manifest lists"):
        for _, _ in zip(range(len(shards) + 1), stream):
            pass


def test_a_second_training_of_one_run_is_refused_naming_the_first(tmp_path):
    import os

    from autosong.manifests.folder_lock import folder_lock

    run = tmp_path / "run"
    run.mkdir()
    with folder_lock(run, ".train.lock", "a training"):  # as a running training holds it
        out = train_cli("--data", str(tmp_path / "data"), "--run", str(run), "--steps", "4", *TINY)
    _one_line(out, f"{run} is in use: a training already writes it", f"process {os.getpid()}")
    assert not (run / ".train.lock").exists()


def test_eval_maps_genres_by_name_and_refuses_ones_the_model_never_learned():
    from types import SimpleNamespace

    import numpy as np

    from autosong.eval.evaluate import in_model_genre_slots
    from autosong.manifests.errors import AutoSongError
    from autosong.model.lyrics import default_tokenizer
    from autosong.manifests.shard_reader import Sample

    tok = default_tokenizer()
    model = SimpleNamespace(genres=["unknown", "rock", "folk", "pop"], path="runs/base")

    def song(genre, slot):
        return Sample("s", np.zeros((2, 3), np.int16), np.array([tok.genre_id(slot), 7, 8], np.int32), None, "la",
                      {"genre": genre})

    moved = in_model_genre_slots([song("pop", 1), song("rock", 3)], "data", model)  # another build's numbering
    assert [int(s.text[0]) for s in moved] == [tok.genre_id(3), tok.genre_id(1)]
    assert [list(s.text[1:]) for s in moved] == [[7, 8], [7, 8]]
    with pytest.raises(AutoSongError, match="genre\\(s\\) 'blues', 'jazz', which runs/base never learned"):
        in_model_genre_slots([song("jazz", 1), song("blues", 2), song("pop", 3)], "data", model)


def test_eval_out_naming_a_file_is_refused_before_the_work(tmp_path):
    (tmp_path / "report").write_text("mine")
    out = autosong("eval", "--checkpoint", str(tmp_path / "none"), "--data", str(tmp_path / "none"),
                   "--out", str(tmp_path / "report"))
    _one_line(out, f"--out {tmp_path / 'report'} is a file")
    assert (tmp_path / "report").read_text() == "mine"
