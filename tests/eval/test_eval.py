import json
import math
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, autosong_here


def autosong(*args, timeout=600, prefix=()):
    """`autosong ARGS` in a fresh process; `prefix` wraps the command (e.g. setpriv)."""
    return subprocess.run([*prefix, sys.executable, "-m", "autosong_cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_evaluate_reports_per_codebook_ce_and_conditioning_gain(trained_run, small_data):
    from autosong.eval.evaluate import CONDITIONS, evaluate
    from autosong.model.bundle import load_bundle

    result = evaluate(load_bundle(trained_run), str(small_data), "val")
    assert result["songs"] >= 1 and result["tokens"] > 0
    assert set(result["ce"]) == {"q0", "q1", "mean"}
    for k in ("q0", "q1", "mean"):
        assert 0 < result["ce"][k] < math.log(1024) + 1
        assert result["bits"][k] == pytest.approx(result["ce"][k] / math.log(2))
        assert result["perplexity"][k] == pytest.approx(math.exp(result["ce"][k]), rel=1e-6)
        assert 0 <= result["accuracy"][k] <= 1
    assert len(result["ce_by_position"]) == 10
    assert set(result["conditioning_gain"]) == set(CONDITIONS) - {"true"}
    for g in result["conditioning_gain"].values():
        assert g["ci95"][0] <= g["mean"] <= g["ci95"][1]


def test_the_gain_is_a_mean_over_songs_of_each_songs_ce_difference():
    """Hand-made scores: song a has 1 token per codebook, song b 3, so averaging over songs and
    over tokens give different answers; the gain is the song average."""
    from autosong.eval.evaluate import conditioning_gains

    def score(ce_sums, n):
        return {"ce_sum": np.array(ce_sums, float), "n": np.array([n, n], float)}

    per_song = {"true": [score([1.0, 1.0], 1), score([3.0, 3.0], 3)],          # CE 1.0 and 1.0
                "empty_lyrics": [score([2.0, 4.0], 1), score([4.5, 4.5], 3)]}  # CE 3.0 and 1.5
    ce, gains = conditioning_gains(per_song, seed=0)
    assert ce == {"true": pytest.approx(1.0), "empty_lyrics": pytest.approx(15.0 / 8)}  # tokens: 15 nats / 8
    assert set(gains) == {"empty_lyrics"}
    assert gains["empty_lyrics"]["mean"] == pytest.approx((2.0 + 0.5) / 2)              # songs: gains 2.0, 0.5
    assert gains["empty_lyrics"]["songs"] == 2
    low, high = gains["empty_lyrics"]["ci95"]
    assert low == pytest.approx(0.5) and high == pytest.approx(2.0)  # resampling two songs: 0.5 .. 2.0


def test_cli_generate_writes_wav_codes_and_settings(trained_run, tmp_path):
    import soundfile as sf

    lyrics = tmp_path / "lyrics.txt"
    lyrics.write_text("[verse]\n我爱你 hello\n", encoding="utf-8")
    genre = json.loads((trained_run / "export/config.json").read_text())["genres"][1]
    out = autosong("generate", "--checkpoint", str(trained_run), "--lyrics", str(lyrics), "--genre", genre,
                   "--seconds", "1", "--out", str(tmp_path / "song.wav"), "--num-songs", "2", "--seed", "7")
    assert out.returncode == 0, out.stderr[-2000:]
    for i in range(2):
        wav, sr = sf.read(tmp_path / f"song_{i}.wav")
        assert sr == 24_000 and len(wav) == 75 * 320
        assert np.load(tmp_path / f"song_{i}.npy").shape == (2, 75)
        settings = json.loads((tmp_path / f"song_{i}.json").read_text())
        assert settings["sampling"]["seed"] == 7 and settings["genre"] == genre


def test_cli_generate_refuses_bad_requests(trained_run, tmp_path):
    lyrics, empty = tmp_path / "l.txt", tmp_path / "e.txt"
    lyrics.write_text("la la\n")
    empty.write_text("\n  \n")
    cases = [(["--lyrics", str(empty)], "lyrics are empty"),
             (["--lyrics", str(lyrics), "--genre", "polka"], "unknown genre 'polka'; this model knows: unknown"),
             (["--lyrics", str(lyrics), "--seconds", "1000"], "model.max_frames"),
             (["--lyrics", str(lyrics), "--dtype", "fp8"], "--dtype 'fp8': expected auto, fp32, bf16, fp16"),
             (["--lyrics", str(lyrics), "--device", "tpu"], "--device 'tpu': expected one of auto, cpu, cuda")]
    for args, words in cases:
        out = autosong_here("generate", "--checkpoint", str(trained_run), "--out", str(tmp_path / "x.wav"), *args)
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_cli_eval_writes_json_and_report(trained_run, small_data, tmp_path):
    import shutil

    run = shutil.copytree(trained_run, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints"))
    out = autosong("eval", "--checkpoint", str(run), "--data", str(small_data), "--out", str(tmp_path),
                   "--generate", "1", "--seconds", "1")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "codebook" in out.stdout and "true vs shuffled_lyrics" in out.stdout
    songs = json.loads((tmp_path / "eval.json").read_text())["songs"]  # small_data holds 2 held-out songs
    assert f"n={songs}  (warning: fewer than 20 songs; this interval means little)" in out.stdout
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["generated"][0]["wav"] == "generated_0.wav" and (tmp_path / "generated_0.wav").exists()
    page = (tmp_path / "report.html").read_text()
    assert "Per-codebook cross-entropy" in page and "data:image/png;base64," in page
    assert page.count("<audio") == 2  # the generated song and the true song whose lyrics it sang
    assert len(page.encode()) < 400_000 + 40_000 * 2 * 4  # Ogg audio: 2 songs of at most 4 s, not WAV
    assert "cross-attention alignment" in page
    assert "drawn with the alignment prior on; it moves" in page  # the tiny preset's prior, and its share


def test_report_escapes_lyrics(tmp_path):
    from autosong.eval.report import write_report

    result = {"checkpoint": "<run>", "step": 1, "data": "d", "split": "val", "songs": 1, "tokens": 10,
              "ce": {"q0": 1.0, "mean": 1.0}, "bits": {"q0": 1.4, "mean": 1.4}, "perplexity": {"q0": 2.7, "mean": 2.7},
              "accuracy": {"q0": 0.5, "mean": 0.5}, "ce_by_position": [1.0] * 10, "conditioning_gain": {}}
    song = {"title": "t", "lyrics": "<script>alert(1)</script>", "genre": "<b>pop</b>", "wav": np.zeros(2400)}
    page = write_report(tmp_path / "r.html", result, [], [song], 24_000).read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page and "<b>pop" not in page


def test_batched_scoring_equals_one_window_at_a_time(trained_run, small_data):
    """Windows of several songs and conditions share a forward pass; padding changes nothing."""
    from autosong.eval.evaluate import CONDITIONS, _conditions, _score_all, load_split
    from autosong.model.bundle import load_bundle

    model = load_bundle(trained_run).model
    card, songs = load_split(str(small_data), "train")
    assert len(songs) >= 3 and len({s.codes.shape[1] for s in songs}) > 1  # different lengths, so padding
    conditions = _conditions(songs, card.genres, seed=0)
    alone = _score_all(model, songs, conditions, batch_tokens=1)  # one window per forward
    batched = _score_all(model, songs, conditions)
    for c in CONDITIONS:
        for a, b in zip(alone[c], batched[c]):
            for key in a:
                assert np.allclose(a[key], b[key], rtol=1e-4, atol=1e-3), (c, key)


def test_cli_generate_beyond_the_window_on_the_cpu(trained_run, tmp_path):
    import soundfile as sf

    lyrics = tmp_path / "lyrics.txt"
    lyrics.write_text("[verse]\n我爱你\n", encoding="utf-8")
    window_s = json.loads((trained_run / "export/config.json").read_text())["model"]["max_tokens"] / 2 / 75
    seconds = window_s + 0.5
    out = autosong("generate", "--checkpoint", str(trained_run), "--lyrics", str(lyrics), "--seconds", str(seconds),
                   "--device", "cpu", "--dtype", "fp32", "--cfg", "1", "--out", str(tmp_path / "long.wav"))
    assert out.returncode == 0, out.stderr[-2000:]
    wav, sr = sf.read(tmp_path / "long.wav")
    assert len(wav) == round(seconds * 75) * 320
    timing = json.loads((tmp_path / "long.json").read_text())["timing"]
    assert timing["device"] == "cpu" and timing["dtype"] == "float32"


def test_report_of_a_four_minute_song(tmp_path):
    """A real-length song's report: one Ogg write of 4 minutes segfaults inside libsndfile 1.2.2, so
    the report is written in a process of its own here, and its audio is read back whole."""
    script = f"""
import base64, io, re, sys
import numpy as np, soundfile as sf
from autosong.eval.report import write_report
sr, seconds = 24_000, 240
t = np.arange(sr * seconds) / sr
wav = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.2 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)
result = {{"checkpoint": "run", "step": 1, "data": "d", "split": "val", "songs": 1, "tokens": 10,
          "ce": {{"q0": 1.0, "mean": 1.0}}, "bits": {{"q0": 1.4, "mean": 1.4}}, "perplexity": {{"q0": 2.7, "mean": 2.7}},
          "accuracy": {{"q0": 0.5, "mean": 0.5}}, "ce_by_position": [1.0] * 10, "conditioning_gain": {{}}}}
page = write_report(__import__("pathlib").Path({str(tmp_path / 'r.html')!r}), result, [],
                    [{{"title": "long", "lyrics": "la", "genre": "pop", "wav": wav}}], sr).read_text()
audio = re.search(r'data:audio/ogg;base64,([^"]+)', page).group(1)
back, rate = sf.read(io.BytesIO(base64.b64decode(audio)))
print(len(back) / rate)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) == pytest.approx(240, abs=0.1)


def test_a_split_is_decoded_once_per_dataset_and_the_model_slots_are_copies(small_data, trained_run):
    """The eval's parts (CE, line times, note errors, the report) share one Dataset: its songs are
    read from the shards once, and moving their genre token to a model's slot changes copies."""
    from autosong.eval.evaluate import load_split
    from autosong.manifests.dataset import Dataset
    from autosong.model.bundle import load_bundle

    data = Dataset.open(small_data)
    first = data.samples("val")
    texts = [s.text.copy() for s in first]
    _, moved = load_split(data, "val", model=load_bundle(trained_run))
    assert all(m is not s for m, s in zip(moved, first)) and [m.key for m in moved] == [s.key for s in first]
    again = data.samples("val")
    assert len(again) == len(first) and all(a is s for a, s in zip(again, first))
    assert data.samples("val", 1)[0] is first[0]
    assert all(np.array_equal(s.text, t) for s, t in zip(again, texts))
