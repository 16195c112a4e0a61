import pytest
import torch

from autosong.model.model_config import ModelConfig
from autosong.model.transformer import SoundTransformer
from autosong.train.losses import key_ce, token_ce

VARIANTS = [(p, n) for p in ("flatten", "delay") for n in ("post", "pre")]


def tiny(**kw):
    base = dict(d_model=64, n_layers=2, n_heads=4, d_ff=128, lora_rank=4, cond_dropout=0.0, max_frames=500,
                max_tokens=200)
    base.update(kw)
    torch.manual_seed(0)
    return SoundTransformer(ModelConfig(**base))


def batch(B=2, T=12, L=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 1024, (B, 2, T), generator=g)
    ids = torch.randint(5, 2808, (B, L), generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    return codes, torch.full((B,), T), torch.zeros(B, dtype=torch.long), ids, mask


@pytest.mark.parametrize("pattern,norm", VARIANTS)
def test_shapes(pattern, norm):
    model = tiny(pattern=pattern, norm=norm).eval()
    codes, lengths, off, ids, mask = batch(T=12)
    logits, pb = model(codes, lengths, off, ids, mask)
    S = model.pattern.steps(12)
    P = 1 if pattern == "flatten" else 2
    assert logits.shape == (2, S, P, 1024) and pb.targets.shape == (2, S, P)
    back = model.pattern.to_frames(pb.targets, 12)
    assert torch.equal(back, codes)  # the pattern's targets are exactly the codes


@pytest.mark.parametrize("pattern", ["flatten", "delay"])
def test_padding_never_changes_another_samples_loss(pattern):
    model = tiny(pattern=pattern).eval()
    codes, _, _, ids, mask = batch(B=2, T=12, L=7)
    lengths, mask[1, 4:] = torch.tensor([12, 5]), False
    off = torch.tensor([0, 30])
    logits, pb = model(codes, lengths, off, ids, mask)
    alone = [model(codes[i : i + 1, :, : lengths[i]], lengths[i : i + 1], off[i : i + 1], ids[i : i + 1, : int(mask[i].sum())],
                   mask[i : i + 1, : int(mask[i].sum())]) for i in range(2)]
    for i in range(2):
        la, pa = alone[i]
        solo = token_ce(model, la, pa)[0]
        ce = torch.nn.functional.cross_entropy(logits[i].flatten(0, 1), pb.targets[i].masked_fill(~pb.valid[i], 0).flatten(),
                                               reduction="none").view(pb.valid[i].shape)
        assert torch.allclose(ce[pb.valid[i]].mean(), solo, atol=1e-5)


@pytest.mark.parametrize("pattern,norm", VARIANTS)
def test_each_variant_trains(pattern, norm):
    model = tiny(pattern=pattern, norm=norm).train()
    codes, lengths, off, ids, mask = batch(T=20)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = token_ce(model, *model(codes, lengths, off, ids, mask))[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    grads = []
    for ckpt in (False, True):
        model = tiny(activation_checkpointing=ckpt).train()
        loss = token_ce(model, *model(*batch(T=10)))[0]
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    assert torch.equal(grads[0][0], grads[1][0])
    assert grads[0][1].keys() == grads[1][1].keys()
    for name in grads[0][1]:
        assert torch.allclose(grads[0][1][name], grads[1][1][name], atol=1e-6), name


@pytest.mark.parametrize("pattern,positions", [("flatten", "learned"), ("delay", "learned"), ("delay", "rotary")])
def test_cached_steps_equal_the_full_forward(pattern, positions):
    model = tiny(pattern=pattern, frame_positions=positions).eval()
    codes, lengths, off, ids, mask = batch(B=2, T=9)
    with torch.no_grad():
        full, pb = model(codes, lengths, off + 3, ids, mask)
        memory, mmask = model.text(ids, mask)
        cache = model.new_cache(2, pb.inputs.shape[1])
        S = pb.inputs.shape[1]
        cb = pb.codebook
        pieces = [model.step(pb.inputs[:, :5], cb[:5], pb.positions[:, :5], memory, mmask, cache)]  # a prompt
        for s in range(5, S):  # then one step at a time
            pieces.append(model.step(pb.inputs[:, s : s + 1], cb[s : s + 1], pb.positions[:, s : s + 1], memory, mmask, cache))
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-4)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_rotary_positions_see_frames_apart_not_where_in_the_song(positions):
    """Without the alignment prior, a window 300 frames into the song gives the logits the same codes
    give at its start when positions are rotary; a learned embedding per frame does not."""
    model = tiny(pattern="delay", frame_positions=positions).eval()
    with torch.no_grad():
        if model.pos_embed is not None:
            model.pos_embed.weight.normal_(std=1.0)  # make position matter to a random model
        codes, lengths, off, ids, mask = batch(B=2, T=12)
        start, later = model(codes, lengths, off, ids, mask)[0], model(codes, lengths, off + 300, ids, mask)[0]
    assert torch.allclose(start, later, atol=1e-4) == (positions == "rotary")
    assert model.pos_embed is None if positions == "rotary" else model.pos_embed.num_embeddings == 500 + 2


def test_null_memory_ignores_the_lyrics():
    model = tiny().eval()
    codes, lengths, off, ids, mask = batch(B=1)
    drop = torch.tensor([True])
    a, _ = model(codes, lengths, off, ids, mask, cond_drop=drop)
    b, _ = model(codes, lengths, off, torch.randint(5, 2808, ids.shape), mask, cond_drop=drop)
    c, _ = model(codes, lengths, off, ids, mask)
    assert torch.allclose(a, b) and not torch.allclose(a, c)


def test_lyric_context_reads_neighbours_within_its_reach_and_not_padding():
    text = tiny(lyric_context=1).text.eval()
    _, _, _, ids, mask = batch(B=1, L=7)
    memory, _ = text(ids, mask)
    changed = ids.clone()
    changed[0, 4] += 1
    moved = (text(changed, mask)[0] - memory)[0].abs().amax(-1) > 1e-6
    assert moved.tolist() == [False, False, False, True, True, True, False]  # slot 4 and its neighbours
    padded, _ = text(torch.cat([ids, ids[:, :2]], 1), torch.cat([mask, torch.zeros(1, 2, dtype=torch.bool)], 1))
    assert torch.allclose(padded[:, :7], memory, atol=1e-6)
    genre_only, _ = text(ids[:, :1], mask[:, :1])  # no lyrics at all (an instrumental): the genre as it is
    assert torch.allclose(genre_only, memory[:, :1], atol=1e-6)  # one row or seven through the GEMM: rounding apart


def test_the_song_key_is_learned_from_the_lyrics_and_moves_every_slot_alike():
    """The key head learns a key the lyrics decide (here: whether id 7 is among them); a key given
    moves every slot by the same vector, so no attention weight changes; and without one the
    memory carries the head's likeliest key, as the sampler's memory does."""
    model = tiny(song_key=True)
    text = model.text
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(20, 60, (16, 6), generator=g)
    ids[:8, 3] = 7
    mask = torch.ones_like(ids, dtype=torch.bool)
    key = torch.where((ids == 7).any(1), 4, 9)
    heard = torch.nn.functional.one_hot(key, 12).bool()
    heard[0] = False  # unknown: no loss from it
    opt = torch.optim.Adam(text.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        key_ce(text.key_logits(ids, mask), heard).backward()
        opt.step()
    text.eval()
    predicted = text.key_logits(ids, mask).argmax(-1)
    assert predicted[1:].tolist() == key[1:].tolist()
    given, _ = text(ids, mask, key=torch.full((16,), 2))
    other, _ = text(ids, mask, key=torch.full((16,), 5))
    shift = given - other  # [B, L, D]: one vector per song, on every slot
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-6) and shift.abs().amax() > 0
    assert torch.equal(text(ids, mask)[0], text(ids, mask, key=predicted)[0])
    unknown, _ = text(ids, mask, key=torch.full((16,), -1))
    assert not torch.allclose(unknown[:, 0], given[:, 0])


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="pattern"):
        ModelConfig(pattern="zigzag")
    with pytest.raises(ValueError, match="norm"):
        ModelConfig(norm="mid")
    with pytest.raises(ValueError, match="frame_positions"):
        ModelConfig(frame_positions="absolute")
    with pytest.raises(ValueError, match="even"):
        ModelConfig(d_model=60, n_heads=4, frame_positions="rotary")
    with pytest.raises(ValueError, match="3 weights for 2 codebooks"):
        ModelConfig(codebook_weights=(2.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="all 0"):
        ModelConfig(codebook_weights=(0.0, 0.0))


def _gathered_lora(model, h, cb):
    """The reference: each position's own U_c, V_c gathered (the head before it was matmuls)."""
    u, v = model.lora_u[cb], model.lora_v[cb]  # [B, S, P, D, r], [B, S, P, V, r]
    return torch.einsum("bspr,bspvr->bspv", torch.einsum("bspd,bspdr->bspr", h, u), v)


@pytest.mark.parametrize("pattern", ["flatten", "delay"])
def test_lora_head_equals_per_position_weights(pattern):
    model = tiny(pattern=pattern)
    torch.nn.init.normal_(model.lora_v, std=0.5)  # LoRA starts at zero: give it something to say
    B, S, C, D = 2, 9, 2, 64
    if pattern == "flatten":
        h = torch.randn(B, S, 1, D)
        cb = torch.randint(0, C, (B, S, 1))  # any codebook at any step (a sampler's prompt may mix)
    else:
        h = torch.randn(B, S, C, D)
        cb = torch.arange(C)[None, None].expand(B, S, C)
    out = model.pattern.low_rank_logits(h, cb, model.lora_u, model.lora_v)
    assert torch.allclose(out, _gathered_lora(model, h, cb), atol=1e-5)
    assert out[cb == 1].abs().sum() > 0 and out[cb == 0].abs().sum() > 0


def test_lora_head_saves_no_per_position_copies():
    """Bytes autograd keeps for the head's backward: well under one [S, V, r] copy."""
    model = tiny(lora_rank=8)
    S, V, r = 1000, 1024, 8
    h = torch.randn(1, S, 1, 64, requires_grad=True)
    cb = (torch.arange(S) % 2)[None, :, None]
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.pattern.low_rank_logits(h, cb, model.lora_u, model.lora_v).sum().backward()
    assert sum(saved) < S * V * r * 4 / 10, sum(saved)


@pytest.mark.parametrize("pattern", ["flatten", "delay"])
def test_the_decode_step_is_one_graph_with_no_break(pattern):
    """What `--compile` traces (model.step on a static cache) holds no data-dependent branch: one
    graph, no break (a break is also a host round trip per token on a GPU)."""
    model = tiny(pattern=pattern).eval()
    ids, mask = torch.randint(5, 100, (1, 7)), torch.ones(1, 7, dtype=torch.bool)
    frames = 20
    cache = model.new_cache(1, model.pattern.steps(frames))
    cache.static_step = torch.full((), 3)
    codes = torch.zeros(1, model.cfg.num_codebooks, frames, dtype=torch.long)
    with torch.inference_mode():
        memory, memory_mask = model.text(ids, mask)
        explained = torch._dynamo.explain(model.step)(*model.pattern.step_inputs(3, codes, frames), memory, memory_mask,
                                                      cache, torch.full((1,), frames), None)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_selective_activation_checkpointing_keeps_less_and_changes_nothing():
    """Recomputing every 2nd layer: the gradients of no checkpointing, and fewer saved activations
    than none, more than every layer's."""
    saved, grads = {}, {}
    for name, kw in {"none": {}, "every": {"activation_checkpointing": True},
                     "every 2nd": {"activation_checkpointing": True, "recompute_every": 2}}.items():
        model = tiny(n_layers=4, cross_align="prior", **kw).train()
        codes, lengths, off, ids, mask = batch(B=2, T=30)
        storages = {}

        def pack(t):
            storages.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            logits, pb = model(codes, lengths, off, ids, mask)
            loss = token_ce(model, logits, pb)[0]
        loss.backward()
        saved[name] = sum(storages.values())
        grads[name] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    assert saved["every"] < saved["every 2nd"] < saved["none"], saved
    assert torch.allclose(grads["every 2nd"], grads["none"], atol=1e-6)
