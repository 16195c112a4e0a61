"""LRC out: eval chooses the alignment heads on held-out songs with lyrics.lrc and records them;
then `autosong align` times a recording's lines and `autosong generate` writes song.lrc."""
import json

import numpy as np

from autosong.model.lrc import parse_lrc
from autosong.model.lyrics import lyric_words
from tests.conftest import autosong_here
from tests.eval.test_eval import autosong


def prior_only_errors(run, data) -> np.ndarray:
    """|start - true| of each held-out line if a line started where the uniform prior's song
    progress t/T meets its first slot's lyric progress: timing with no model at all."""
    import torch

    from autosong.eval.evaluate import load_split
    from autosong.model.bundle import load_bundle
    from autosong.model.line_times import true_line_starts

    model, errors = load_bundle(run).model, []
    for song in load_split(data, "val")[1]:
        frames, slots = true_line_starts(model, song)
        ids = torch.as_tensor(song.text.astype(np.int64))[None]
        progress = model.lyric_progress(ids, torch.ones_like(ids, dtype=torch.bool))[0].numpy()
        errors += list(np.abs(progress[slots] * song.codes.shape[1] - frames) / 75)
    return np.array(errors)


def test_eval_chooses_alignment_heads_then_align_and_generate_write_lrc(small_data, tmp_path):
    from autosong.manifests.dataset import read_sample_rows
    from tests.conftest import TINY, train_cli

    run = tmp_path / "run"  # 150 steps: 20 leave the heads reading the prior and little else; with song keys,
    # so that align reads a recording in the key heard in it (model/line_times._song_inputs)
    trained = train_cli("--data", str(small_data), "--run", str(run), "--steps", "150", *TINY,
                        "--train.log_every", "50", "--model.song_key", "true")
    assert trained.returncode == 0, trained.stderr[-2000:]
    row = read_sample_rows(small_data, "val")[0]
    audio = small_data.parent / "corpus" / row.source
    lyrics = audio.parent / "lyrics.txt"
    found = tmp_path / "found.lrc"
    align = ["align", "--checkpoint", str(run), "--audio", str(audio), "--lyrics", str(lyrics), "--genre", row.genre,
             "--out", str(found)]

    refused = autosong_here(*align)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "has no alignment heads to read line times from: run `autosong eval" in refused.stderr

    ev = autosong("eval", "--checkpoint", str(run), "--data", str(small_data), "--out", str(tmp_path / "eval"),
                  "--generate", "1", "--notes", "2", "--seconds", "1")
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert "teacher-forced onset error: median" in ev.stdout and "generated songs: median" in ev.stdout
    heads = json.loads((run / "export/alignment.json").read_text())
    assert heads["heads"] and heads["chosen_on"]["split"] == "val"
    page = (tmp_path / "eval/report.html").read_text()  # the generated song's line starts, on its map
    assert page.count('class="line-start"') >= 1 and '<ol class="line-times"><li>0.' in page
    report = json.loads((tmp_path / "eval/eval.json").read_text())["line_alignment"]
    assert report["teacher_forced"]["lines"] > 0 and report["generated"]["songs"] == 2
    # Read from the heads, held-out line starts are nearer the truth than the prior's own timing.
    # The issue's 0.25 s median is for the demo's model (bench/line_times.py: 0.087 s with the heads'
    # offsets, 0.25 s without); a model this size and this short errs more (bench/RESULTS.md).
    baseline = np.median(prior_only_errors(run, small_data))
    assert report["teacher_forced"]["median_s"] < min(0.5, baseline), (report["teacher_forced"], baseline)

    aligned = autosong(*align)
    assert aligned.returncode == 0, aligned.stderr[-2000:]
    assert "weak alignment" not in aligned.stderr, aligned.stderr
    # another song's recording, three times as long as these lyrics' song: it aligns, with a warning
    import soundfile as sf

    other = small_data.parent / "corpus" / read_sample_rows(small_data, "train")[0].source
    wav, rate = sf.read(other)
    sf.write(tmp_path / "other.wav", np.concatenate([wav] * 3), rate)
    mismatched = autosong(*align[:4], str(tmp_path / "other.wav"), *align[5:-1], str(tmp_path / "other.lrc"))
    assert mismatched.returncode == 0, mismatched.stderr[-2000:]
    assert "warning: a weak alignment" in mismatched.stderr and "is this the recording" in mismatched.stderr
    truth = [line.start for line in parse_lrc((audio.parent / "lyrics.lrc").read_text()).lines if lyric_words(line.text)]
    starts = [line.start for line in parse_lrc(found.read_text()).lines]
    assert len(starts) == len(truth) and starts == sorted(starts)
    # one song through the codec again: the accuracy is the eval's figure above, this is the command
    assert np.max(np.abs(np.array(starts) - truth)) <= 1.0

    made = autosong("generate", "--checkpoint", str(run), "--lyrics", str(lyrics), "--genre", row.genre,
                    "--seconds", "1.5", "--out", str(tmp_path / "song.wav"))
    assert made.returncode == 0, made.stderr[-2000:]
    sung = parse_lrc((tmp_path / "song.lrc").read_text()).lines
    assert len(sung) == len(truth) and all(0 <= line.start < 1.5 for line in sung)
    (tmp_path / "backing.txt").write_text("[instrumental]\n", encoding="utf-8")  # no line with words: no song.lrc
    backing = autosong("generate", "--checkpoint", str(run), "--lyrics", str(tmp_path / "backing.txt"),
                       "--genre", row.genre, "--seconds", "1", "--out", str(tmp_path / "backing.wav"))
    assert backing.returncode == 0, backing.stderr[-2000:]
    assert (tmp_path / "backing.wav").is_file() and not (tmp_path / "backing.lrc").exists()
    assert "no .lrc written: the lyrics hold no line with words to time" in backing.stderr


def test_heads_chosen_without_timed_songs_are_checked_on_timed_ones(trained_run, small_data):
    """A corpus of plain lyrics.txt still gets alignment heads (by their focus), and on the songs
    whose lyrics.lrc says the truth they place lines no worse than the prior alone does."""
    from autosong.eval.evaluate import load_split
    from autosong.model.bundle import load_bundle
    from autosong.model.line_times import choose_heads_untimed, teacher_forced_errors

    model = load_bundle(trained_run).model
    songs = load_split(small_data, "val")[1] + load_split(small_data, "train")[1]
    heads = choose_heads_untimed(model, songs, 75)
    assert len(heads.heads) == 2 and heads.chosen_on["method"] == "focus: no timed songs"
    assert all(0 <= layer < model.cfg.n_layers and 0 <= h < model.cfg.n_heads for layer, h in heads.heads)
    errors = teacher_forced_errors(model, songs, heads.heads, 75)
    assert len(errors) and np.median(errors) <= np.median(prior_only_errors(trained_run, small_data)) + 0.1


def test_heads_are_chosen_on_the_longest_held_out_songs():
    """The choice reads the songs most like what `align` reads: of more held-out songs than it takes,
    the longest, in any order they came."""
    from types import SimpleNamespace

    from autosong.eval.line_alignment import CHOICE_SONGS, choice_songs

    frames = np.random.default_rng(0).permutation(np.arange(100, 100 + 2 * CHOICE_SONGS))
    songs = [SimpleNamespace(codes=np.zeros((2, n))) for n in frames]
    chosen = sorted(s.codes.shape[1] for s in choice_songs(songs))
    assert chosen == list(range(100 + CHOICE_SONGS, 100 + 2 * CHOICE_SONGS))
    assert len(choice_songs(songs[:5])) == 5
