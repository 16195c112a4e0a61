"""A model trained with song keys (model.song_key), as a user meets it: its key head's loss in the
log, `generate` saying the key it sings in, and singing in the key asked for."""
import json

import numpy as np

from tests.conftest import TINY, autosong_here, read_metrics, train_cli


def test_a_keyed_model_logs_its_key_loss_says_its_key_and_takes_one(small_data, tmp_path):
    from autosong.eval.evaluate import evaluate, format_table
    from autosong.manifests.dataset import read_sample_rows
    from autosong.model.bundle import load_bundle

    assert all(row.key_signatures for row in read_sample_rows(small_data))  # the build heard every song's key
    run = tmp_path / "run"
    out = train_cli("--data", str(small_data), "--run", str(run), "--steps", "3", *TINY, "--model.song_key", "true")
    assert out.returncode == 0, out.stderr[-3000:]
    logged = [row["key_ce"] for row in read_metrics(run) if "key_ce" in row]
    assert len(logged) == 3 and all(0 < ce < 10 for ce in logged)

    result = evaluate(load_bundle(run), str(small_data), "val")  # how often the head names the heard key
    assert result["song_key"]["songs"] == result["songs"] and 0 <= result["song_key"]["agree"] <= result["songs"]
    assert f"song key: the key head names the key heard in {result['song_key']['agree']} of" in format_table(result)

    lyrics = tmp_path / "l.txt"
    lyrics.write_text("[verse]\nlove night dream fire\n")
    made = autosong_here("generate", "--checkpoint", str(run), "--lyrics", str(lyrics), "--seconds", "0.5",
                         "--out", str(tmp_path / "a.wav"))
    assert made.returncode == 0, made.stderr[-1500:]
    called_for = json.loads((tmp_path / "a.json").read_text())["key"]
    assert f"key: {called_for} (the one its lyrics and genre call for)" in made.stdout and " major / " in called_for
    asked = autosong_here("generate", "--checkpoint", str(run), "--lyrics", str(lyrics), "--seconds", "0.5",
                          "--key", "F# minor", "--out", str(tmp_path / "b.wav"))
    assert asked.returncode == 0, asked.stderr[-1500:]
    assert "key: A major / F# minor" in asked.stdout
    assert json.loads((tmp_path / "b.json").read_text())["key"] == "A major / F# minor"
    same = autosong_here("generate", "--checkpoint", str(run), "--lyrics", str(lyrics), "--seconds", "0.5",
                         "--key", called_for.split(" / ")[0], "--out", str(tmp_path / "c.wav"))
    assert same.returncode == 0, same.stderr[-1500:]
    codes = {name: np.load(tmp_path / f"{name}.npy") for name in "abc"}
    assert np.array_equal(codes["a"], codes["c"])  # the key it calls for is the key it sings in, told or not

    # an edit keeps the source's key: the new part is drawn in the key the source's lyrics call for
    from autosong.model.api import AutoSong
    from autosong.model.edit import Edit, SourceSong, edit_song
    from autosong.model.sampling import SamplingConfig

    song = AutoSong.load(run, "cpu", "fp32")
    source = SourceSong(codes=codes["a"], lyrics=lyrics.read_text(), genre="unknown")
    assert song.key_for(source.lyrics, "unknown") == called_for
    extended = edit_song(song, source, Edit(extend=0.3), None, SamplingConfig(seed=0))
    assert extended.keys == (song.key_signature_for(source.lyrics, "unknown"),)  # what its song.lrc is read in
    assert np.array_equal(extended.codes[:, : codes["a"].shape[1]], codes["a"])
