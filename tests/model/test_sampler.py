import pytest
import torch

from model.sampler import Sampler, SamplingConfig
from tests.model.test_transformer import tiny


def text(B=2, L=6):
    g = torch.Generator().manual_seed(1)
    return torch.randint(5, 2808, (B, L), generator=g), torch.ones(B, L, dtype=torch.bool)


@pytest.mark.parametrize("pattern", ["flatten", "delay"])
@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_cache_and_recompute_samplers_agree(pattern, guidance):
    model = tiny(pattern=pattern).eval()
    ids, mask = text()
    s = SamplingConfig(temperature=0.0, cfg=guidance)
    fast = Sampler(model).generate(ids, mask, 12, s)
    slow = Sampler(model, recompute=True).generate(ids, mask, 12, s)
    assert fast.shape == (2, 2, 12) and torch.equal(fast, slow)


@pytest.mark.parametrize("pattern", ["flatten", "delay"])
def test_prompt_is_kept_and_continued(pattern):
    model = tiny(pattern=pattern).eval()
    ids, mask = text(B=1)
    prompt = torch.randint(0, 1024, (1, 2, 5))
    s = SamplingConfig(temperature=0.0, cfg=1.0)
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


def test_length_beyond_the_trained_context_is_refused():
    model = tiny(max_tokens=40).eval()  # 20-frame windows
    ids, mask = text(B=1)
    with pytest.raises(ValueError, match="trained context"):
        Sampler(model).generate(ids, mask, 21, SamplingConfig())


@pytest.mark.slow
def test_overfit_song_is_reproduced_by_greedy_generation(overfit_run, codec):
    """The design's overfit test, end to end: lyrics in, >= 95% of the song's tokens out."""
    from eval.evaluate import load_split
    from model.bundle import load_bundle
    from model.generate import generate_codes
    from model.lyrics import default_tokenizer

    data, run = overfit_run
    bundle = load_bundle(run)
    _, songs = load_split(str(data), "train")
    song = songs[0]
    lyrics = default_tokenizer().decode(song.text[1:])
    codes, timing = generate_codes(bundle, [lyrics], [song.genre], song.codes.shape[1] / 75,
                                   SamplingConfig(temperature=0.0, cfg=1.0), progress=False)
    match = (codes[0] == song.codes).mean()
    assert match >= 0.95, match
    assert timing["frames"] == song.codes.shape[1]
