"""Damaged bundles and odd generate inputs: one `autosong: error:` line naming the file, exit 2,
no traceback; and the genre/lyrics readers the build and generate share."""
import json
import shutil

import pytest

from tests.conftest import autosong_here
from tests.eval.test_eval import autosong


def _damage(export, how):
    if how == "missing weights":
        (export / "model.safetensors").unlink()
    elif how == "truncated weights":
        data = (export / "model.safetensors").read_bytes()
        (export / "model.safetensors").write_bytes(data[: len(data) // 3])
    elif how == "garbage config":
        (export / "config.json").write_text("{not json")
    elif how == "empty config":
        (export / "config.json").write_text("")
    elif how == "edited d_model":
        cfg = json.loads((export / "config.json").read_text())
        cfg["model"]["d_model"] = cfg["model"]["d_model"] * 2
        (export / "config.json").write_text(json.dumps(cfg))
    elif how == "unknown model field":
        cfg = json.loads((export / "config.json").read_text())
        cfg["model"]["wings"] = 2
        (export / "config.json").write_text(json.dumps(cfg))
    elif how == "n_heads 0":  # out of its declared range (model/config_checks.py)
        cfg = json.loads((export / "config.json").read_text())
        cfg["model"]["n_heads"] = 0
        (export / "config.json").write_text(json.dumps(cfg))
    elif how == "no genres":
        cfg = json.loads((export / "config.json").read_text())
        del cfg["genres"]
        (export / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("how,says", [
    ("missing weights", "model.safetensors is missing"), ("truncated weights", "model.safetensors is damaged"),
    ("garbage config", "config.json is damaged"), ("empty config", "config.json is damaged"),
    ("edited d_model", "does not fit"), ("unknown model field", "model section is not valid"),
    ("n_heads 0", "model.n_heads must be at least 1"), ("no genres", "no 'genres'"),
])
def test_a_damaged_bundle_is_one_line(how, says, trained_run, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(trained_run / "export", export)
    _damage(export, how)
    lyrics = tmp_path / "l.txt"
    lyrics.write_text("[verse]\nla la\n")
    out = autosong_here("generate", "--checkpoint", str(export), "--lyrics", str(lyrics), "--seconds", "0.5",
                        "--out", str(tmp_path / "s.wav"))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("autosong: error:") and says in line and str(export) in line, line


def test_generate_reads_latin1_lyrics_like_the_build(trained_run, tmp_path):
    from autosong.model.lyrics import read_lyrics_file

    lyrics = tmp_path / "l.txt"
    lyrics.write_bytes("[verse]\nCafé crème, très bien, déjà vu\nà la française, garçon\n".encode("latin-1"))
    decoded = read_lyrics_file(lyrics)
    assert decoded.text == "[verse]\nCafé crème, très bien, déjà vu\nà la française, garçon\n"
    assert decoded.encoding == "cp1252" and not decoded.weak
    genre = json.loads((trained_run / "export/config.json").read_text())["genres"][1]
    out = autosong("generate", "--checkpoint", str(trained_run), "--lyrics", str(lyrics), "--genre", genre,
                   "--seconds", "0.5", "--out", str(tmp_path / "s.wav"))
    assert out.returncode == 0, out.stderr[-1500:]


@pytest.mark.parametrize("case", ["missing prompt", "lyrics over the limit", "out is a folder", "no such key",
                                  "a key for a model without keys"])
def test_generate_refuses_in_one_line(case, trained_run, tmp_path):
    lyrics = tmp_path / "l.txt"
    args = []
    out_path = tmp_path / "s.wav"
    if case in ("no such key", "a key for a model without keys"):
        lyrics.write_text("[verse]\nla la\n")
        args = ["--key", "H dorian" if case == "no such key" else "A minor"]
        says = "as 'A minor', 'F# major'" if case == "no such key" else "was not trained with song keys"
    elif case == "out is a folder":  # refused before sampling, not after
        lyrics.write_text("[verse]\nla la\n")
        out_path.mkdir()
        says = f"{out_path} is a folder; name a file"
    elif case == "missing prompt":
        lyrics.write_text("[verse]\nla la\n")
        args = ["--prompt-audio", str(tmp_path / "nowhere.wav")]
        says = "nowhere.wav: no such file"
    else:
        limit = json.loads((trained_run / "export/config.json").read_text())["model"]["max_text_len"]
        lyrics.write_text("la " * limit)
        says = f"this model reads at most {limit}"
    out = autosong_here("generate", "--checkpoint", str(trained_run), "--lyrics", str(lyrics), "--seconds", "0.5",
                        "--out", str(out_path), *args)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    assert says in out.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("raw,genre", [
    ("rock\npop\n", "rock"), ("\n\n  Hip-Hop, Rap \n", "hip-hop"), ("synth\twave\n", "synth wave"),
    ("", "unknown"), ("\n \n", "unknown"),
])
def test_genre_is_its_first_line_with_whitespace_collapsed(raw, genre):
    from autosong.model.lyrics import normalize_genre

    assert normalize_genre(raw) == genre


def test_generate_takes_an_8_channel_96k_prompt(trained_run, tmp_path):
    """The prompt goes through the build's decoder: FFmpeg's resampler used to segfault on it."""
    import numpy as np
    import soundfile as sf

    t = np.arange(96000) / 96000
    sf.write(tmp_path / "p.wav", np.repeat(0.3 * np.sin(2 * np.pi * 220 * t)[:, None], 8, 1).astype(np.float32),
             96000, subtype="FLOAT")
    lyrics = tmp_path / "l.txt"
    lyrics.write_text("[verse]\nla la\n")
    out = autosong("generate", "--checkpoint", str(trained_run), "--lyrics", str(lyrics), "--seconds", "1.5",
                   "--prompt-audio", str(tmp_path / "p.wav"), "--out", str(tmp_path / "s.wav"))
    assert out.returncode == 0, out.stderr[-1500:]
    assert sf.info(tmp_path / "s.wav").duration >= 1.4
    timing = json.loads((tmp_path / "s.json").read_text())["timing"]
    assert timing["prompt_frames"] == 75 and timing["generated_seconds"] == (timing["frames"] - 75) / 75
    busy = timing["seconds_sampling"] + timing["seconds_decode"]
    assert timing["rtf"] == pytest.approx(busy / timing["generated_seconds"])  # wall / audio: lower is better
    assert f"RTF {timing['rtf']:.2f} (wall / generated audio, lower is better)" in out.stdout
    whole = autosong("generate", "--checkpoint", str(trained_run), "--lyrics", str(lyrics), "--seconds", "0.8",
                     "--prompt-audio", str(tmp_path / "p.wav"), "--out", str(tmp_path / "t.wav"))
    assert whole.returncode == 2 and "Traceback" not in whole.stderr, whole.stderr[-1500:]
    assert "the prompt covers 1.0 s of the 0.8 s asked for" in whole.stderr.strip().splitlines()[-1]


def test_generate_into_an_unwritable_folder_is_one_line(trained_run, tmp_path):
    from tests.pipeline.test_poison_files import unprivileged

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    lyrics = tmp_path / "l.txt"
    lyrics.write_text("[verse]\nla la\n")
    cmd = unprivileged(["autosong"])  # only to learn whether permissions can be enforced here
    if cmd is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    out = autosong("generate", "--checkpoint", str(trained_run), "--lyrics", str(lyrics), "--seconds", "0.5",
                   "--out", str(locked / "s.wav"), prefix=cmd[:-1])
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("autosong: error: cannot access ") and str(locked) in line and "permission denied" in line
