import pytest
import torch

from autosong.model.autoencoders import AEConfig, build_autoencoder, code_usage, compression_factor
from tests.conftest import music_signal


def ae(kind, **kw):
    torch.manual_seed(0)
    base = dict(kind=kind, d_model=64, n_layers=2, latent_vocab=64, window_frames=160)
    base.update(kw)
    return build_autoencoder(AEConfig(**base))


@pytest.mark.parametrize("kind", ["gumbel_ae", "vqvae"])
def test_straight_through_gradients_reach_the_encoder(kind):
    model = ae(kind).train()
    loss = model(torch.randint(0, 1024, (2, 2, 40)), torch.tensor([40, 33]), step=0)[0]
    loss.backward()
    for name in ("embed.tokens.weight", "encoder.layers.0.linear1.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_gumbel_codes_are_hard_in_training_and_the_argmax_at_inference():
    model = ae("gumbel_ae")
    codes = torch.randint(0, 1024, (2, 2, 40))
    model.eval()
    assert torch.equal(model.encode(codes), model.latent_logits(codes).argmax(-1).transpose(1, 2))
    model.train()
    sample = torch.nn.functional.gumbel_softmax(model.latent_logits(codes), tau=model.tau(0), hard=True)
    assert torch.equal(sample.sum(-1), torch.ones_like(sample.sum(-1))) and set(sample.unique().tolist()) == {0.0, 1.0}
    assert model.tau(0) == 2.0 and model.tau(10_000) == 0.5  # annealed


@pytest.mark.parametrize("kind", ["gumbel_ae", "vqvae"])
@pytest.mark.parametrize("stride", [2, 4])
def test_the_stride_shortens_sequences(kind, stride):
    model = ae(kind, stride=stride).eval()
    latents = model.encode(torch.randint(0, 1024, (1, 2, 40)))
    assert latents.shape == (1, 2, 40 // stride)
    assert model.decode(latents).shape == (1, 2, 40)
    assert compression_factor(model.cfg) == stride  # 2 codebooks -> 2 latent channels per position


@pytest.mark.parametrize("kind", ["gumbel_ae", "vqvae"])
def test_overfit_reconstructs_a_short_song(kind, codec):
    codes = torch.from_numpy(codec.encode(music_signal(2.0, seed=4), 24_000).astype("int64"))[None]  # [1, 2, 150]
    codes = codes[..., :148]
    model = ae(kind, d_model=128, latent_vocab=256, vocal_zero_prob=0.0, tau_decay_steps=150,
               dead_threshold=0.0).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(250):
        loss = model(codes, torch.tensor([148]), step)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    accuracy = (model.decode(model.encode(codes)) == codes).float().mean().item()
    assert accuracy >= 0.95, accuracy


def test_code_usage_figures():
    usage = torch.tensor([[5.0, 5.0, 0.0, 0.0]])
    perplexity, dead = code_usage(usage)
    assert perplexity == pytest.approx(2.0) and dead == 0.5
