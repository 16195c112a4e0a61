"""The note each first-codebook code sounds, and the sampler's note hold built on it."""
import numpy as np
import pytest
import torch

from autosong.model.code_notes import UNVOICED, NoteHold, code_notes
from autosong.model.sampler import Draw, Sampler, SamplingConfig
from tests.model.test_sampler import text
from tests.model.test_transformer import tiny

NOTES = np.array([60, 60, 60, 60, 67, 67, 72, UNVOICED])  # a table for 8 codes: three notes and no pitch


def logits_of(*probs) -> torch.Tensor:
    """[B, 8] logits whose softmax is each row of `probs` (missing codes get a sliver)."""
    p = torch.tensor(probs, dtype=torch.float64).clamp_min(1e-9)
    return p.log().float()


def greedy(logits):
    return logits.argmax(-1)


def test_the_codes_of_one_note_pool_their_probability():
    """Four codes of 60 at 0.15 each outweigh one code of 67 at 0.3: a low temperature over codes
    would sing 67, drawn by note the song sings 60 (one of its codes, the likeliest)."""
    hold = NoteHold(NOTES, bonus=0.0, fade=4, device="cpu")
    logits = logits_of([0.15, 0.16, 0.15, 0.14, 0.3, 0.0, 0.1, 0.0])
    assert greedy(logits).item() == 4
    assert hold.pick(logits, torch.zeros(1, 0, dtype=torch.long), greedy, 0.0, torch.Generator()).item() == 1


def test_a_note_just_begun_is_held_and_the_hold_fades():
    hold = NoteHold(NOTES, bonus=1.0, fade=4, device="cpu")
    pick = lambda logits, before: hold.pick(logits, torch.tensor([before]), greedy, 0.0, torch.Generator()).item()  # noqa: E731
    close = logits_of([0.3, 0, 0, 0, 0.7, 0, 0, 0])  # 67 likelier, by less than e (log 0.3 + 1 > log 0.7)
    clear = logits_of([0.2, 0, 0, 0, 0.8, 0, 0, 0])  # 67 likelier by more than e
    assert pick(close, [4, 0]) == 0  # a 60 begun on the frame before: held by the whole nat
    assert pick(clear, [4, 0]) == 4
    assert pick(close, [4, 1, 0]) == 4  # two frames of 60 (two codes of it): 0.75 nats are not enough
    assert pick(close, [0, 0, 0, 0, 0, 1, 2]) == 4  # a note sung longer than the fade: no hold at all
    assert hold.pick(close, torch.zeros(1, 0, dtype=torch.long), greedy, 0.0, torch.Generator()).item() == 4
    assert NoteHold(NOTES, 0.0, 4, "cpu").pick(close, torch.tensor([[0]]), greedy, 0.0, torch.Generator()).item() == 4


def test_sampling_draws_a_code_of_the_drawn_note():
    hold = NoteHold(NOTES, bonus=0.5, fade=4, device="cpu")
    gen = torch.Generator().manual_seed(0)
    settings = SamplingConfig(temperature=1.0, top_k=0)
    logits = logits_of(*[[0.1, 0.1, 0.1, 0.1, 0.25, 0.25, 0.05, 0.05]] * 400)
    codes = hold.pick(logits, torch.full((400, 1), 4), Draw(settings, gen, None).codes, 1.0, gen)
    notes = NOTES[codes.numpy()]
    # by note: 60 at 0.4, 67 at 0.5 (+0.5 nats: 0.82 of 67's and 60's renormalised share), 72 and none at 0.05
    assert 0.55 < (notes == 67).mean() < 0.8 and 0.15 < (notes == 60).mean() < 0.4
    assert set(codes[notes == 60].tolist()) == {0, 1, 2, 3}  # within a note, its codes as the model weighs them


@pytest.mark.parametrize("pattern", ["flatten", "delay"])
def test_the_sampler_holds_notes_and_without_a_hold_draws_as_before(pattern):
    model = tiny(pattern=pattern).eval()
    ids, mask = text()
    notes = np.arange(1024) // 128  # eight notes of 128 codes each
    plain = SamplingConfig(temperature=1.0, top_k=0, guidance=3.0, note_hold=0.0, seed=2)
    before = Sampler(model).generate(ids, mask, 30, plain)
    assert torch.equal(before, Sampler(model, code_notes=notes).generate(ids, mask, 30, plain))
    held = SamplingConfig(temperature=1.0, top_k=0, guidance=3.0, note_hold=1.0, seed=2)
    assert torch.equal(before, Sampler(model).generate(ids, mask, 30, held))  # no table: codes drawn as codes
    sung = Sampler(model, code_notes=notes).generate(ids, mask, 30, held)
    assert torch.equal(sung, Sampler(model, code_notes=notes, recompute=True).generate(ids, mask, 30, held))
    stuck = Sampler(model, code_notes=notes).generate(ids, mask, 30, SamplingConfig(note_hold=100.0, note_fade=1.0,
                                                                                     seed=2))  # 75 frames of fade
    assert (notes[stuck[:, 0].numpy()] == notes[stuck[:, 0, :1].numpy()]).all()  # one note, the first frame's
    assert len(np.unique(stuck[:, 0].numpy())) > 2  # sung with several of its codes
    changes = lambda codes: (np.diff(notes[codes[:, 0].numpy()], axis=1) != 0).sum()  # noqa: E731
    assert changes(sung) < changes(before)


def test_the_tiny_codec_names_the_note_a_tone_sounds():
    """A held A4 (440 Hz with two harmonics) encoded by `tiny`: the table names 69 for most of its
    first-codebook codes, the pitch one hears."""
    from autosong.model.codec import Codec

    tiny_codec = Codec.load("tiny")
    table = code_notes(tiny_codec)
    assert table.shape == (tiny_codec.codebook_size,) and (table != UNVOICED).mean() > 0.5
    assert code_notes(tiny_codec) is table  # found once per process
    t = np.arange(24_000) / 24_000
    for midi in (64, 69, 76):
        hz = 440 * 2 ** ((midi - 69) / 12)
        wav = (0.3 * np.sin(2 * np.pi * hz * t) + 0.12 * np.sin(4 * np.pi * hz * t)
               + 0.06 * np.sin(6 * np.pi * hz * t)).astype(np.float32)
        first = tiny_codec.encode(wav, 24_000)[0, 10:-10]
        assert (np.abs(table[first] - midi) <= 1).mean() > 0.6, (midi, np.bincount(table[first] + 1).argmax() - 1)


def test_a_codec_s_table_is_kept_on_disk_and_a_bad_copy_is_found_anew(codec, tmp_path, monkeypatch):
    import autosong.model.code_notes as found

    monkeypatch.setenv("AUTOSONG_CACHE", str(tmp_path))
    monkeypatch.setattr(found, "_FOUND", {})
    table = code_notes(codec)
    kept = list((tmp_path / "code_notes").iterdir())
    assert [p.suffix for p in kept] == [".npy"] and np.array_equal(np.load(kept[0]), table)
    monkeypatch.setattr(found, "_FOUND", {})  # a new process: read, not found again
    monkeypatch.setattr(found, "_held_code_notes", lambda codec: pytest.fail("found again"))
    assert np.array_equal(code_notes(codec), table)
    kept[0].write_bytes(kept[0].read_bytes()[:40])  # torn
    monkeypatch.setattr(found, "_FOUND", {})
    monkeypatch.setattr(found, "_held_code_notes", lambda codec: table + 0)
    assert np.array_equal(code_notes(codec), table) and np.array_equal(np.load(kept[0]), table)  # written whole again
    monkeypatch.setenv("AUTOSONG_CACHE", str(kept[0]))  # a file where the folder should be: nothing kept, no error
    monkeypatch.setattr(found, "_FOUND", {})
    assert np.array_equal(code_notes(codec), table)
