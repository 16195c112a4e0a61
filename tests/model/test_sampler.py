import pytest
import torch

from autosong.model.sampler import Sampler, SamplingConfig
from tests.model.test_transformer import tiny


def text(B=2, L=6):
    g = torch.Generator().manual_seed(1)
    return torch.randint(5, 2808, (B, L), generator=g), torch.ones(B, L, dtype=torch.bool)


@pytest.mark.parametrize("pattern", ["flatten", "delay"])
@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_cache_and_recompute_samplers_agree(pattern, guidance):
    model = tiny(pattern=pattern).eval()
    ids, mask = text()
    s = SamplingConfig(temperature=0.0, guidance=guidance)
    fast = Sampler(model).generate(ids, mask, 12, s)
    slow = Sampler(model, recompute=True).generate(ids, mask, 12, s)
    assert fast.shape == (2, 2, 12) and torch.equal(fast, slow)


@pytest.mark.parametrize("pattern", ["flatten", "delay"])
def test_prompt_is_kept_and_continued(pattern):
    model = tiny(pattern=pattern).eval()
    ids, mask = text(B=1)
    prompt = torch.randint(0, 1024, (1, 2, 5))
    s = SamplingConfig(temperature=0.0, guidance=1.0)
    codes = Sampler(model).generate(ids, mask, 12, s, prompt=prompt)
    assert torch.equal(codes[..., :5], prompt)
    assert torch.equal(codes, Sampler(model, recompute=True).generate(ids, mask, 12, s, prompt=prompt))


def test_seeded_sampling_is_reproducible_and_seeds_differ():
    model = tiny().eval()
    ids, mask = text()
    a = Sampler(model).generate(ids, mask, 10, SamplingConfig(temperature=1.0, top_k=50, top_p=0.9, seed=3))
    b = Sampler(model).generate(ids, mask, 10, SamplingConfig(temperature=1.0, top_k=50, top_p=0.9, seed=3))
    c = Sampler(model).generate(ids, mask, 10, SamplingConfig(temperature=1.0, top_k=50, top_p=0.9, seed=4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_song_is_sung_in_the_key_given_or_else_in_the_key_its_lyrics_call_for():
    model = tiny(song_key=True).eval()
    with torch.no_grad():
        model.text.key.embed.weight.mul_(100)  # keys far apart, as a trained model's are
    ids, mask = text()
    s = SamplingConfig(temperature=1.0, top_k=50, seed=3)
    called_for = model.text.key_logits(ids, mask).argmax(-1)
    untold = Sampler(model).generate(ids, mask, 10, s)
    assert torch.equal(untold, Sampler(model).generate(ids, mask, 10, s, song_key=called_for))
    assert not torch.equal(untold, Sampler(model).generate(ids, mask, 10, s, song_key=(called_for + 6) % 12))


@pytest.mark.parametrize("pattern", ["flatten", "delay"])
def test_songs_longer_than_the_window_are_generated_window_by_window(pattern):
    model = tiny(pattern=pattern, max_tokens=40).eval()  # 20-frame windows
    ids, mask = text(B=2)
    s = SamplingConfig(temperature=0.0, guidance=3.0, context=0.5)
    seen = []
    long = Sampler(model).generate(ids, mask, 47, s, progress=lambda done, total, _: seen.append((done, total)))
    assert long.shape == (2, 2, 47)
    # the first window is the song a single pass makes (no alignment prior here, so the length asked
    # for does not enter the first frames)
    assert torch.equal(long[..., :20], Sampler(model).generate(ids, mask, 20, s))
    # windows 2.. start from the previous one's last 10 frames: cached and recomputed agree there too
    assert torch.equal(long, Sampler(model, recompute=True).generate(ids, mask, 47, s))
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == 47 and {t for _, t in seen} == {47}


def test_windows_that_lie_wholly_in_the_prompt_are_not_run():
    """An edit's kept part spans many windows: only a window with a frame to draw is prefilled (the
    first one re-encodes the context it keeps), and a prompt as long as the song runs none."""
    model = tiny(pattern="delay", max_tokens=40).eval()  # 20-frame windows, 10 frames kept
    ids, mask = text(B=1)
    prompt = torch.randint(0, 1024, (1, 2, 35))
    s = SamplingConfig(temperature=1.0, top_k=50, guidance=3.0, context=0.5, seed=2)
    sampler, starts = Sampler(model), []
    run_window = sampler._window

    def window_noted(text, frames, window, *rest):  # the sampler's own window, its start written down
        starts.append(window.start)
        return run_window(text, frames, window, *rest)

    sampler._window = window_noted
    codes = sampler.generate(ids, mask, 47, s, prompt=prompt)
    assert starts == [20, 30]  # [0, 20) and [10, 30) lie in the prompt
    assert torch.equal(codes[..., :35], prompt)
    assert torch.equal(codes, Sampler(model).generate(ids, mask, 47, s, prompt=prompt))  # deterministic for a seed
    starts.clear()
    assert torch.equal(sampler.generate(ids, mask, 35, s, prompt=prompt), prompt) and starts == []


def test_long_songs_with_the_alignment_prior_use_absolute_positions():
    """Later windows read their own frames' positions: the song is not a repeat of its first window."""
    model = tiny(max_tokens=40, cross_align="prior").eval()
    ids, mask = text(B=1, L=12)
    with torch.no_grad():
        model.pos_embed.weight.normal_(std=1.0)  # make position matter to a random model
    codes = Sampler(model).generate(ids, mask, 40, SamplingConfig(temperature=0.0, guidance=1.0, context=0.5))
    assert not torch.equal(codes[..., 20:30], codes[..., 10:20])


def test_an_opening_drawn_alone_is_the_whole_songs_opening():
    """song_frames: the first frames of a longer song, drawn with the whole song's length as the
    alignment prior's T, are the whole song's first frames; drawn as a song of their own, they are not."""
    model = tiny(pattern="delay", cross_align="prior").eval()
    with torch.no_grad():  # make the prior matter to a random model: sharp, and read loudly
        for layer in model.layers:
            layer.cross_attn.prior_log_w.fill_(8.0)
            layer.cross_attn.out.weight.mul_(50.0)
    ids, mask = text(B=1, L=12)
    s = SamplingConfig(temperature=0.0, guidance=3.0)
    whole = Sampler(model).generate(ids, mask, 30, s)
    opening = Sampler(model).generate(ids, mask, 12, s, song_frames=30)
    assert torch.equal(opening, whole[..., :12])
    assert not torch.equal(Sampler(model).generate(ids, mask, 12, s), opening)


@pytest.mark.parametrize("pattern,positions", [("flatten", "learned"), ("delay", "learned"), ("delay", "rotary")])
def test_the_static_cache_decodes_what_the_growing_cache_decodes(pattern, positions):
    """The compiled decode's step (fixed shapes: the whole cache under a mask) gives the same
    codes, guided, with a prompt, with the syllable prior, across windows (rotary positions too:
    the cache holds turned keys, and a later window's prefill turns them at their own frames)."""
    model = tiny(pattern=pattern, max_tokens=40, cross_align="prior", align_units="syllables",
                 frame_positions=positions).eval()
    ids, mask = text(B=2, L=12)
    prompt = torch.randint(0, 1024, (2, 2, 4))
    for s in (SamplingConfig(temperature=0.0, guidance=3.0), SamplingConfig(temperature=1.0, top_k=20, guidance=1.0, seed=5)):
        grown = Sampler(model).generate(ids, mask, 47, s, prompt=prompt)
        static = Sampler(model, static=True).generate(ids, mask, 47, s, prompt=prompt)
        assert torch.equal(grown, static)


@pytest.mark.slow
def test_the_compiled_decode_step_gives_the_eager_codes():
    """torch.compile over the static step (inductor on a CPU): same greedy song, traced once."""
    model = tiny(pattern="delay").eval()
    ids, mask = text(B=1)
    s = SamplingConfig(temperature=0.0, guidance=3.0)
    eager = Sampler(model).generate(ids, mask, 16, s)
    compiled = Sampler(model).generate(ids, mask, 16, SamplingConfig(temperature=0.0, guidance=3.0, compile=True))
    assert torch.equal(eager, compiled) and "_compiled_step" in model.__dict__


@pytest.mark.slow
def test_a_compiled_song_of_several_windows_is_traced_once():
    """One cache for every window of a song: the shorter last window (2.3 windows here) neither
    recompiles the step nor changes a code against eager sampling."""
    from torch._dynamo.utils import counters

    model = tiny(pattern="delay").eval()
    ids, mask = text(B=1)
    frames = int(2.3 * model.cfg.window_frames)
    torch._dynamo.reset()
    counters.clear()
    compiled = Sampler(model).generate(ids, mask, frames, SamplingConfig(temperature=0.0, guidance=3.0, compile=True))
    assert counters["frames"]["total"] == 1  # traced once, for the first window
    assert torch.equal(compiled, Sampler(model).generate(ids, mask, frames, SamplingConfig(temperature=0.0, guidance=3.0)))


def test_length_beyond_the_frame_positions_is_refused():
    model = tiny(max_frames=30).eval()
    ids, mask = text(B=1)
    with pytest.raises(ValueError, match="max_frames"):
        Sampler(model).generate(ids, mask, 29, SamplingConfig())


@pytest.mark.slow
def test_overfit_song_is_reproduced_by_greedy_generation(overfit_run, codec):
    """The design's overfit test, end to end: lyrics in, >= 95% of the song's tokens out."""
    from autosong.eval.evaluate import load_split
    from autosong.model.bundle import load_bundle
    from autosong.model.generate import generate_codes
    from autosong.model.lyrics import default_tokenizer

    data, run = overfit_run
    bundle = load_bundle(run)
    _, songs = load_split(str(data), "train")
    song = songs[0]
    lyrics = default_tokenizer().decode(song.text[1:])
    codes, timing = generate_codes(bundle, [lyrics], [song.genre], song.codes.shape[1] / 75,
                                   SamplingConfig(temperature=0.0, guidance=1.0), progress=False)
    match = (codes[0] == song.codes).mean()
    assert match >= 0.95, match
    assert timing["frames"] == song.codes.shape[1]
