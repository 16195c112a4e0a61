"""The cross-attention alignment prior: song progress t/T meets lyric progress l/L."""
import numpy as np
import pytest
import torch

from autosong.model.attention import Alignment
from autosong.model.model_config import ModelConfig
from tests.model.test_transformer import batch, tiny
from autosong.train.losses import token_ce


def test_distance_is_zero_on_the_diagonal_and_spares_the_genre_slot():
    mask = torch.tensor([[True] * 5 + [False] * 3])  # genre + 4 lyric tokens, then padding
    positions = torch.tensor([[0, 25, 50, 75, 99]])
    d = Alignment.of(positions, torch.tensor([100]), mask).distance()[0, 0]  # [S, L]
    assert d.shape == (5, 8)
    assert torch.all(d[:, 0] == 0)  # genre: free for every frame
    nearest = d[:, 1:5].argmin(-1)
    assert nearest.tolist() == [0, 1, 2, 3, 3]  # frame t of T reads lyric token ~ t/T * L
    assert d[0, 1] < d[0, 4]


def test_empty_lyrics_and_null_memory_keep_finite_scores():
    mask = torch.tensor([[True, False, False]])
    d = Alignment.of(torch.tensor([[3]]), torch.tensor([10]), mask).distance()
    assert torch.isfinite(d).all()


@pytest.mark.parametrize("pattern", ["flatten", "delay"])
def test_prior_cached_steps_equal_the_full_forward(pattern):
    model = tiny(pattern=pattern, cross_align="prior").eval()
    codes, lengths, off, ids, mask = batch(B=2, T=9)
    song = torch.tensor([40, 25])
    with torch.no_grad():
        full, pb = model(codes, lengths, off + 3, ids, mask, song_frames=song)
        memory, mmask = model.text(ids, mask)
        cache = model.new_cache(2, pb.inputs.shape[1])
        cb = pb.codebook
        pieces = [model.step(pb.inputs[:, :5], cb[:5], pb.positions[:, :5], memory, mmask, cache, song)]
        for s in range(5, pb.inputs.shape[1]):
            pieces.append(model.step(pb.inputs[:, s : s + 1], cb[s : s + 1], pb.positions[:, s : s + 1],
                                     memory, mmask, cache, song))
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-4)


def test_the_prior_depends_on_the_song_length_and_is_learned():
    model = tiny(cross_align="prior").eval()
    codes, lengths, off, ids, mask = batch(B=1, T=12, L=20)
    a, _ = model(codes, lengths, off, ids, mask, song_frames=torch.tensor([12]))
    b, _ = model(codes, lengths, off, ids, mask, song_frames=torch.tensor([120]))
    assert not torch.allclose(a, b)  # the same frames are early in a long song
    widths = [n for n, p in model.named_parameters() if "prior_log_w" in n]
    assert len(widths) == 2  # one per layer, a width per head
    model.train()
    loss = token_ce(model, *model(codes, lengths, off, ids, mask, song_frames=torch.tensor([12])))[0]
    loss.backward()
    assert all(dict(model.named_parameters())[n].grad.abs().sum() > 0 for n in widths)


def test_prior_without_song_length_is_refused_at_step():
    model = tiny(cross_align="prior").eval()
    codes, lengths, off, ids, mask = batch(B=1, T=4)
    memory, mmask = model.text(ids, mask)
    with pytest.raises(ValueError, match="song_frames"):
        model.step(torch.zeros(1, 1, 1, dtype=torch.long), torch.zeros(1, dtype=torch.long),
                   torch.zeros(1, 1, dtype=torch.long), memory, mmask, model.new_cache(1, 8))


def test_attention_map_follows_the_diagonal_with_a_sharp_prior():
    model = tiny(cross_align="prior").eval()
    for layer in model.layers:  # every head sharp: the map must be the prior's diagonal
        layer.cross_attn.prior_log_w.data.fill_(torch.log(torch.tensor(0.5 / 0.01**2)))
    codes, lengths, off, ids, mask = batch(B=1, T=60, L=31)
    amap = model.cross_attention_map(codes, ids, mask, song_frames=torch.tensor([60]))
    assert amap.shape == (1, 60, 31)
    assert torch.allclose(amap.sum(-1), torch.ones(1, 60), atol=1e-5)
    peak = amap[0, :, 1:].argmax(-1)  # lyric token each frame reads most
    assert peak[0] <= 1 and peak[-1] >= 28
    assert (peak[1:] >= peak[:-1]).all()  # monotonic in time


@pytest.mark.parametrize("pattern", ["flatten", "delay"])
def test_an_opening_read_with_its_song_s_length_is_that_song_s_map_so_far(pattern):
    from autosong.model.line_times import attention_map

    model = tiny(pattern=pattern, cross_align="prior").eval()
    codes, lengths, off, ids, mask = batch(B=1, T=60, L=31)
    whole = attention_map(model, codes[0].numpy(), ids[0].numpy())
    opening = attention_map(model, codes[0, :, :25].numpy(), ids[0].numpy(), song_frames=60)
    alone = attention_map(model, codes[0, :, :25].numpy(), ids[0].numpy())  # as if the song ended there
    assert opening.shape == (25, 31)
    known = 25 - (model.cfg.num_codebooks - 1 if pattern == "delay" else 0)  # delayed codebooks' steps past the cut
    assert torch.allclose(torch.as_tensor(opening[:known]), torch.as_tensor(whole[:known]), atol=1e-5)
    assert not torch.allclose(torch.as_tensor(alone), torch.as_tensor(whole[:25]), atol=1e-3)


def test_a_readout_passes_through_pinned_lines_on_a_uniform_prior_model_as_the_sampler_does():
    from autosong.model.line_times import attention_map

    model = tiny(cross_align="prior").eval()  # align_source uniform: training reads no line times
    for layer in model.layers:
        layer.cross_attn.prior_log_w.data.fill_(torch.log(torch.tensor(0.5 / 0.01**2)))
    codes, lengths, off, ids, mask = batch(B=1, T=60, L=31)
    plain = attention_map(model, codes[0].numpy(), ids[0].numpy())
    pinned = attention_map(model, codes[0].numpy(), ids[0].numpy(), pinned=[(0, 1), (30, 24)])
    assert abs(int(plain[30, 1:].argmax()) + 1 - 15) <= 2  # t/T: halfway through the song, halfway through the slots
    assert abs(int(pinned[30, 1:].argmax()) + 1 - 24) <= 1  # the pinned line's slot where it is pinned


def test_a_readout_reads_a_song_in_the_key_heard_in_it_as_training_does():
    from autosong.model.line_times import _song_inputs, attention_map

    model = tiny(cross_align="prior", song_key=True).eval()
    codes, lengths, off, ids, mask = batch(B=1, T=40, L=31)
    codes, ids = codes[0].numpy(), ids[0].numpy()
    logits = model.text.key_logits(torch.as_tensor(ids)[None], torch.ones(1, 31, dtype=torch.bool))[0]
    called_for = int(logits.argmax())
    heard = (called_for, (called_for + 5) % 12)
    assert int(_song_inputs(model, codes, ids, heard)[4]) == called_for  # of the keys heard, the head's choice
    other = (called_for + 5) % 12
    assert int(_song_inputs(model, codes, ids, (other,))[4]) == other
    assert _song_inputs(model, codes, ids, ())[4] is None  # none heard: the key the lyrics call for
    assert np.array_equal(attention_map(model, codes, ids, heard=(called_for,)), attention_map(model, codes, ids))
    assert not np.array_equal(attention_map(model, codes, ids, heard=(other,)), attention_map(model, codes, ids))


def test_unknown_alignment_is_refused():
    with pytest.raises(ValueError, match="cross_align"):
        ModelConfig(cross_align="psychic")



def test_syllable_progress_counts_sung_time_not_ids(tokenizer):
    from autosong.model.lyrics import sung_units
    from autosong.model.attention import lyric_progress

    ids = tokenizer.encode("[verse]\n我爱你\nlove night", 1)
    units = torch.tensor(sung_units(tokenizer))[torch.tensor([ids])]
    kinds = [tokenizer.tokens[i] for i in ids]
    assert kinds[:3] == ["<genre:1>", "[verse]", "<nl>"] and units[0, :2].tolist() == [0, 0]
    by_syllable = lyric_progress(torch.ones(1, len(ids), dtype=torch.bool), units)[0]
    by_slot = lyric_progress(torch.ones(1, len(ids), dtype=torch.bool))[0]
    assert (by_syllable[1:].diff() >= 0).all() and by_syllable.min() >= 0 and by_syllable.max() < 1
    # 2 breaks + 3 syllables + 9 letters (3 syllables' worth): the Chinese line holds 3/8 of the
    # singing, though its 3 ids are under a fifth of the 16 lyric ids
    last_zh = kinds.index("ni3")
    assert abs(by_syllable[last_zh] - (1 + 3 - 0.5) / 8) < 1e-6
    assert by_slot[last_zh] < by_syllable[last_zh] - 0.15
    # padding and lyrics of silent ids only stay finite and in [0, 1]
    silent = lyric_progress(torch.tensor([[True, True, False]]), torch.zeros(1, 3))
    assert torch.isfinite(silent).all() and silent.max() <= 1


def test_a_section_tag_counts_what_model_tag_units_says(tokenizer):
    """Silent by default (a model trained before keeps its prior); with tag_units the tag's slot
    holds prior time, the intro or break before its lines, and the words after it move later."""
    from autosong.model.lyrics import sung_units

    ids = torch.tensor([tokenizer.encode("[verse]\n我爱你\nlove night", 1)])
    assert sung_units(tokenizer)[ids[0, 1]] == 0 and sung_units(tokenizer, 1.5)[ids[0, 1]] == 1.5
    silent = tiny(cross_align="prior", align_units="learned")
    counted = tiny(cross_align="prior", align_units="learned", tag_units=1.0)
    mask = torch.ones_like(ids, dtype=torch.bool)
    assert silent.lyric_units(ids)[0, 1] == 0 and counted.lyric_units(ids)[0, 1] == 1.0
    first_word = [tokenizer.tokens[i] for i in ids[0]].index("wo3")
    assert counted.lyric_progress(ids, mask)[0, first_word] > silent.lyric_progress(ids, mask)[0, first_word] + 0.05
    with pytest.raises(ValueError, match="tag_units"):
        ModelConfig(tag_units=-1.0)


@pytest.mark.parametrize("pattern", ["flatten", "delay"])
def test_syllable_prior_cached_steps_equal_the_full_forward(pattern, tokenizer):
    model = tiny(pattern=pattern, cross_align="prior", align_units="syllables").eval()
    a, b = tokenizer.encode("[verse]\n我爱你\nlove night\n天空", 0), tokenizer.encode("[chorus]\nfree\n月光", 2)
    ids = torch.tensor([a, b + [0] * (len(a) - len(b))])
    mask = ids != 0
    mask[:, 0] = True
    codes, lengths, off, _, _ = batch(B=2, T=9)
    song = torch.tensor([40, 25])
    with torch.no_grad():
        full, pb = model(codes, lengths, off, ids, mask, song_frames=song)
        tokens = tiny(pattern=pattern, cross_align="prior").eval()(codes, lengths, off, ids, mask, song_frames=song)[0]
        assert not torch.allclose(full, tokens)  # the same weights read other lyric slots
        memory, mmask = model.text(ids, mask)
        lyric = model.lyric_progress(ids, mask)
        cache = model.new_cache(2, pb.inputs.shape[1])
        cb = pb.codebook
        pieces = [model.step(pb.inputs[:, :4], cb[:4], pb.positions[:, :4], memory, mmask, cache, song, lyric)]
        for s in range(4, pb.inputs.shape[1]):
            pieces.append(model.step(pb.inputs[:, s : s + 1], cb[s : s + 1], pb.positions[:, s : s + 1],
                                     memory, mmask, cache, song, lyric))
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-4)
    with pytest.raises(ValueError, match="lyric_progress"):
        model.step(pb.inputs[:, :1], cb[:1], pb.positions[:, :1], memory, mmask, model.new_cache(2, 4), song)


def test_syllable_units_count_slots_of_a_bert_memory_and_unknown_units_are_refused():
    model = tiny(cross_align="prior", align_units="syllables", bert_dim=16)
    assert model.lyric_progress(torch.ones(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.bool)) is None
    with pytest.raises(ValueError, match="align_units"):
        ModelConfig(align_units="phonemes")


@pytest.mark.parametrize("pattern,units", [("flatten", "tokens"), ("delay", "syllables")])
def test_the_prior_inside_flex_attention_equals_the_dense_bias(pattern, units):
    """FlexAttention's score_mod (the GPU path: no [B, H, S, L] bias) gives the dense prior's
    logits, padding and the genre slot included. On a CPU PyTorch runs it forward only; the
    gradient of the widths is checked on a GPU (tests/test_gpu.py)."""
    dense = tiny(pattern=pattern, cross_align="prior", align_units=units, prior_kernel="dense").eval()
    flex = tiny(pattern=pattern, cross_align="prior", align_units=units, prior_kernel="flex").eval()
    codes, lengths, off, ids, mask = batch(B=2, T=9)
    mask[1, 3:] = False  # a shorter lyric: padded slots
    song = torch.tensor([40, 25])
    with torch.no_grad():
        for layer in dense.layers:  # widths apart from their sharp-to-flat start, as after training
            layer.cross_attn.prior_log_w.add_(torch.linspace(-1, 1, layer.cross_attn.prior_log_w.numel()))
        flex.load_state_dict(dense.state_dict())
        a, _ = dense(codes, lengths, off, ids, mask, song_frames=song)
        b, _ = flex(codes, lengths, off, ids, mask, song_frames=song)
        off_prior, _ = dense(codes, lengths, off, ids, mask, song_frames=song * 50)  # another song length
    assert flex.layers[0].cross_attn.uses_flex(torch.zeros(1, 1, 2, 1))
    assert not dense.layers[0].cross_attn.uses_flex(torch.zeros(1, 1, 2, 1))
    assert torch.allclose(a, b, atol=2e-5), (a - b).abs().max()
    assert not torch.allclose(a, off_prior, atol=1e-3)  # the prior matters here: the equality is not vacuous


def test_timed_prior_puts_each_line_start_at_its_lyric_position_and_untimed_songs_stay_uniform():
    from autosong.model.attention import timed_song_progress

    frames = torch.arange(10.0)[None].repeat(2, 1) + 0.5
    lyric = torch.linspace(0, 1, 6)[None].repeat(2, 1)  # slot l at l/5
    line_frames = torch.tensor([[4.0, 6.0], [0.0, 0.0]])  # song 0: a long intro, then lines at slots 1 and 3
    line_slots = torch.tensor([[1, 3], [-1, -1]])  # song 1: untimed (padding only)
    song = timed_song_progress(frames, torch.tensor([10, 10]), line_frames, line_slots, lyric)
    # song 0: 0 -> 0.2 over the 4-frame intro, 0.2 -> 0.6 over frames 4-6, then on to 1 at frame 10
    expected = torch.tensor([0.025, 0.075, 0.125, 0.175, 0.3, 0.5, 0.65, 0.75, 0.85, 0.95])
    assert torch.allclose(song[0], expected)
    assert torch.allclose(song[1], frames[1] / 10)  # t/T


def test_a_pinned_prior_read_from_its_table_is_the_prior_searched_step_by_step():
    """The sampler computes a pinned prior's coordinate for every frame once; a step reading its
    frames there (past the song's end too, where a delay pattern's last steps stand) gets the
    values the piecewise-linear search gives."""
    from autosong.model.attention import Alignment, pinned_progress_table

    mask = torch.ones(2, 6, dtype=torch.bool)
    lyric = torch.linspace(0, 1, 6)[None].repeat(2, 1)
    lines = (torch.tensor([[0.0, 4.0], [2.0, 7.0]]), torch.tensor([[1, 3], [2, -1]]))
    song_frames = torch.tensor([10, 10])
    table = pinned_progress_table(song_frames, lines, lyric, 11)  # the song's frames and one past its end
    positions = torch.tensor([[0, 3, 4, 9, 12], [1, 2, 6, 10, 11]])
    searched = Alignment.of(positions, song_frames, mask, lyric, lines).song
    assert torch.equal(Alignment.of(positions, song_frames, mask, lyric, table).song, searched)
    assert not torch.equal(searched, Alignment.of(positions, song_frames, mask, lyric).song)  # pinned, not t/T


def test_timed_prior_is_only_for_a_prior_over_lyric_ids():
    with pytest.raises(ValueError, match="align_source timed moves the alignment prior"):
        ModelConfig(align_source="timed")
    with pytest.raises(ValueError, match="model.bert_dim 0"):
        ModelConfig(align_source="timed", cross_align="prior", bert_dim=16)
    with pytest.raises(ValueError, match="align_source 'lrc'"):
        ModelConfig(align_source="lrc", cross_align="prior")


def test_a_timed_model_reads_the_line_times_and_an_untimed_one_ignores_them():
    codes, lengths, off, ids, mask = batch(B=2, T=12)
    song = torch.tensor([12, 12])
    lines = {"line_frames": torch.tensor([[6.0], [0.0]]), "line_slots": torch.tensor([[2], [-1]])}
    for source, differs in (("timed", True), ("uniform", False)):
        model = tiny(cross_align="prior", align_source=source).eval()
        with torch.no_grad():
            plain, _ = model(codes, lengths, off, ids, mask, song_frames=song)
            timed, _ = model(codes, lengths, off, ids, mask, song_frames=song, **lines)
        assert (not torch.allclose(plain[0], timed[0])) == differs
        assert torch.allclose(plain[1], timed[1])  # a song without lines keeps the uniform prior


def test_unit_rate_moves_the_learned_lengths_that_many_times_faster(tokenizer):
    """One AdamW step moves every trained parameter by about the learning rate, whatever its
    gradient's size; the learned sung lengths are the log scale times unit_rate, so they move
    unit_rate times as far, and the same step changes nothing else in how they are read."""
    ids = torch.tensor([tokenizer.encode("[verse]\n我爱你\nlove night", 1)])
    mask = torch.ones_like(ids, dtype=torch.bool)
    codes, lengths, off, _, _ = batch(B=1, T=12)
    moved = {}
    for rate in (1.0, 10.0):
        model = tiny(cross_align="prior", align_units="learned", unit_rate=rate)
        before = model.lyric_units(ids).log().detach()
        opt = torch.optim.AdamW([model.unit_log_scale], lr=1e-3, weight_decay=0.0)
        token_ce(model, *model(codes, lengths, off, ids, mask, song_frames=torch.tensor([12])))[0].backward()
        opt.step()
        sung = torch.isfinite(before) & (model.unit_log_scale.grad != 0)[ids]
        moved[rate] = (model.lyric_units(ids).log().detach() - before)[sung].abs()
        assert moved[rate].numel() > 3
    assert torch.allclose(moved[1.0], torch.full_like(moved[1.0], 1e-3), rtol=0.05)
    assert torch.allclose(moved[10.0], torch.full_like(moved[10.0], 1e-2), rtol=0.05)
    with pytest.raises(ValueError, match="unit_rate"):
        ModelConfig(unit_rate=-1.0)
