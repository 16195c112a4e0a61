"""Editing a song (model/edit.py, `autosong edit`): the kept part is the source's codes bit for bit,
the cut lands on the line's start, an edit is the same for the same seed, and bad requests are
one line each."""
import json
import re
import shutil

import numpy as np
import pytest

from tests.conftest import autosong_here
from tests.eval.test_eval import autosong

SOURCE_LYRICS = "[verse]\nla la la la\nshine away tonight\nhold me forever\n"
NEW_LYRICS = "[verse]\nla la la la\nriver of golden stars\ndance in the summer rain\n"


@pytest.fixture(scope="module")
def song(trained_run):
    from autosong.model.api import AutoSong

    return AutoSong.load(trained_run, "cpu", "fp32")


@pytest.fixture(scope="module")
def source(song):
    from autosong.model.edit import SourceSong
    from autosong.model.sampling import SamplingConfig

    made = song.generate(SOURCE_LYRICS, song.genres[-1], 3.0, SamplingConfig(seed=1))
    return SourceSong(made.codes[0], SOURCE_LYRICS, song.genres[-1], [0.0, 1.0, 2.0], "source")


def test_an_edit_from_a_line_keeps_the_source_before_its_start_and_repeats_for_a_seed(song, source):
    from autosong.model.edit import Edit, edit_song
    from autosong.model.sampling import SamplingConfig

    edited = edit_song(song, source, Edit(from_line=2, seconds=3.0), NEW_LYRICS, SamplingConfig(seed=3))
    cut = 75  # line 2 starts at 1.0 s: a frame boundary at 75 frames/s
    assert edited.cut_frame == cut and edited.codes.shape == source.codes.shape
    assert np.array_equal(edited.codes[:, :cut], source.codes[:, :cut])  # the kept part, bit for bit
    assert not np.array_equal(edited.codes[:, cut:], source.codes[:, cut:])
    at = cut * song.sample_rate // 75
    kept = song.decode(source.codes)
    assert np.array_equal(edited.audio[: at - 240], kept[: at - 240])  # the source's own audio, then a crossfade
    again = song.edit(source, Edit(from_line=2, seconds=3.0), NEW_LYRICS, SamplingConfig(seed=3))  # the API
    assert np.array_equal(again.codes, edited.codes) and np.array_equal(again.audio, edited.audio)
    other = edit_song(song, source, Edit(from_line=2, seconds=3.0), NEW_LYRICS, SamplingConfig(seed=4, temperature=1.0))
    assert np.array_equal(other.codes[:, :cut], source.codes[:, :cut]) and not np.array_equal(other.codes, edited.codes)
    assert edited.settings["cut_s"] == pytest.approx(1.0) and edited.settings["seed"] == 3


def test_an_edit_keeps_the_sources_own_audio_and_decodes_only_the_new_part(song, source):
    """Given the source's WAV, the edit keeps its samples before the cut (not a decode of its
    codes), and after the crossfade its audio is the new codes decoded from half a second before
    the cut: a tail decoded apart matches the whole song's decode there."""
    from dataclasses import replace

    from autosong.model.edit import Edit, edit_song
    from autosong.model.sampling import SamplingConfig

    heard = np.linspace(-0.5, 0.5, source.codes.shape[1] * 320, dtype=np.float32)  # not what the codes decode to
    edited = edit_song(song, replace(source, audio=heard), Edit(from_line=2, seconds=3.0), NEW_LYRICS,
                       SamplingConfig(seed=3))
    at = 75 * 320
    assert np.array_equal(edited.audio[: at - 240], heard[: at - 240]) and len(edited.audio) == len(heard)
    whole = song.decode(edited.codes)
    assert np.abs(edited.audio[at + 8000 :] - whole[at + 8000 :]).max() < 1e-3


def test_new_lines_get_the_time_they_take_at_the_sources_pace(song, source):
    """Without --seconds, the part after the cut lasts as long as the source's own lines from the
    cut on, scaled by how much longer or shorter the new lines are sung (in the units the model's
    alignment prior counts): the same lines keep the source's length, the rest sung twice gets
    twice the time, so the prior never squeezes new lines into the old ones' place."""
    from autosong.model.edit import Edit, edit_song, fitted_seconds
    from autosong.model.sampling import SamplingConfig

    rest = "shine away tonight\nhold me forever\n"
    assert fitted_seconds(song, source, SOURCE_LYRICS, 2, 1.0) == pytest.approx(3.0, abs=1e-6)
    twice = fitted_seconds(song, source, "[verse]\nla la la la\n" + rest * 2, 2, 1.0)
    assert 5.0 < twice < 5.3  # twice the lines, and the line break between the two copies
    shorter = fitted_seconds(song, source, "[verse]\nla la la la\nshine\n", 2, 1.0)
    assert 1.0 < shorter < 2.0
    edited = edit_song(song, source, Edit(from_line=2), "[verse]\nla la la la\n" + rest * 2, SamplingConfig(seed=3))
    assert edited.codes.shape[1] == round(twice * 75) and edited.settings["seconds"] == pytest.approx(twice, abs=0.01)
    assert np.array_equal(edited.codes[:, :75], source.codes[:, :75])


def test_lengths_an_edit_cannot_take_are_refused_with_the_reason(song, source):
    """What the command line prints in one line (AutoSongError, as the bad requests below)."""
    from autosong.manifests.errors import AutoSongError
    from autosong.model.edit import Edit, edit_song

    cases = [(lambda: edit_song(song, source, Edit(from_line=3), "[verse]\nla la la la\nriver of golden stars\n"),
              "the new lyrics have 2 lines"),
             (lambda: edit_song(song, source, Edit(from_line=2, seconds=0.5), NEW_LYRICS), "ends before line 2"),
             (lambda: Edit(extend=2.0, seconds=9.0), "--extend already says"),
             (lambda: Edit(instrumental=True, seconds=0.0), "a positive length")]
    for make, says in cases:
        with pytest.raises(AutoSongError, match=re.escape(says)):
            make()


def test_extend_continues_the_whole_source_and_instrumental_keeps_its_length(song, source):
    from autosong.model.edit import Edit, edit_song
    from autosong.model.sampling import SamplingConfig

    longer = edit_song(song, source, Edit(extend=2.0), SOURCE_LYRICS + "one more line\n", SamplingConfig(seed=2))
    T = source.codes.shape[1]
    assert longer.codes.shape[1] == T + 150 and np.array_equal(longer.codes[:, :T], source.codes)
    backing = edit_song(song, source, Edit(instrumental=True), None, SamplingConfig(seed=2))
    assert backing.codes.shape == source.codes.shape and backing.cut_frame == 0
    assert backing.lyrics == backing.settings["lyrics"] == "[instrumental]\n"  # what instrumental tracks are tagged


def test_edit_command_line_writes_its_files_and_refuses_bad_requests_in_one_line(trained_run, tmp_path):
    from autosong.model.line_times import AlignmentHeads
    from autosong.model.lrc import parse_lrc

    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    AlignmentHeads([(0, 0), (1, 1)]).save(run / "export")  # heads to time lines by (eval would choose them)
    (tmp_path / "old.txt").write_text(SOURCE_LYRICS)
    (tmp_path / "new.txt").write_text(NEW_LYRICS)
    made = autosong("generate", "--checkpoint", str(run), "--lyrics", str(tmp_path / "old.txt"), "--genre", "unknown",
                    "--seconds", "3", "--out", str(tmp_path / "song.wav"))
    assert made.returncode == 0, made.stderr[-2000:]
    base = ["edit", "--checkpoint", str(run), "--source", str(tmp_path / "song.wav")]
    done = autosong(*base, "--lyrics", str(tmp_path / "new.txt"), "--from-line", "2", "--out", str(tmp_path / "e.wav"))
    assert done.returncode == 0, done.stderr[-2000:]
    for suffix in (".wav", ".npy", ".json", ".lrc"):
        assert (tmp_path / f"e{suffix}").stat().st_size > 0
    settings = json.loads((tmp_path / "e.json").read_text())
    codes, source = np.load(tmp_path / "e.npy"), np.load(tmp_path / "song.npy")
    assert settings["cut_frame"] > 0 and np.array_equal(codes[:, : settings["cut_frame"]],
                                                         source[:, : settings["cut_frame"]])
    stamps = [line.start for line in parse_lrc((tmp_path / "e.lrc").read_text()).lines]
    kept = [line.start for line in parse_lrc((tmp_path / "song.lrc").read_text()).lines]
    assert len(stamps) == 3 and stamps[0] == kept[0]  # the kept line where the source's song.lrc has it
    assert stamps[1] == pytest.approx(settings["cut_s"], abs=0.01) and stamps[1] <= stamps[2]  # line 2 at the cut

    record = json.loads((tmp_path / "song.json").read_text())
    record["codec"]["weights_sha256"] = "0" * 64
    shutil.copy(tmp_path / "song.wav", tmp_path / "other.wav")
    shutil.copy(tmp_path / "song.npy", tmp_path / "other.npy")
    (tmp_path / "other.json").write_text(json.dumps(record))
    (tmp_path / "plain.wav").write_bytes((tmp_path / "song.wav").read_bytes())  # a recording, no records beside it
    (tmp_path / "long.txt").write_text("[verse]\n" + "shine away forever tonight\n" * 30)  # not what 3 s can sing
    cases = [(["--from-line", "7"], "the source's lyrics have 3 lines"),
             (["--from-line", "2", "--source", str(tmp_path / "plain.wav"), "--source-lyrics", str(tmp_path / "long.txt"),
               "--genre", "unknown"], "a weak alignment"),
             (["--from-line", "1"], "that is `autosong generate`"),
             (["--extend", "1e6"], "model.max_frames"),
             (["--instrumental", "--source", str(tmp_path / "plain.wav")], "say what it sings with --source-lyrics"),
             (["--instrumental", "--source", str(tmp_path / "other.wav")], "different codecs")]
    for args, says in cases:
        out = autosong_here(*base, *args, "--out", str(tmp_path / "bad.wav"))
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert says in out.stderr.strip().splitlines()[-1], (args, out.stderr)


def test_the_prior_of_an_edit_passes_through_the_kept_lines_and_the_cut(song):
    """The uniform t/T would put the cut wherever the new lyrics' length says; an edit pins the
    prior's song coordinate to the new lyrics' own line at the cut (and at each kept line)."""
    import torch

    from autosong.model.edit import prior_anchors
    from autosong.model.line_times import sung_lines
    from autosong.model.lyrics import default_tokenizer

    _, slots = sung_lines(NEW_LYRICS, default_tokenizer())
    anchors = prior_anchors(song, NEW_LYRICS, [0.0, 1.0])
    assert anchors == [(0.0, slots[0]), (1.0, slots[1])]
    model = song.bundle.model
    ids = torch.tensor([default_tokenizer().encode(NEW_LYRICS)])
    mask = torch.ones_like(ids, dtype=torch.bool)
    lyric = model.lyric_progress(ids, mask)
    positions = torch.arange(225)[None]
    lines = (torch.tensor([[0.0, 75.0]]), torch.tensor([[slots[0], slots[1]]]))
    pinned = model._align(positions, torch.tensor([225]), mask, lyric, lines).song[0]
    uniform = model._align(positions, torch.tensor([225]), mask, lyric).song[0]
    assert pinned[75].item() == pytest.approx(lyric[0, slots[1]].item(), abs=0.01)
    assert abs(uniform[75].item() - lyric[0, slots[1]].item()) > 0.02  # so the pin moved it
