"""Stage 1 of the two-stage path: discrete autoencoders over EnCodec token sequences that
compress in time (`stride` frames per latent position), so the stage-2 AR model sees shorter,
lower-entropy sequences.

- GumbelAE (the design's "Discrete Transformer Autoencoder"): transformer encoder -> per-position
  logits over a latent vocabulary for each latent channel -> Gumbel-softmax (hard, straight-through)
  while training, argmax at inference -> transformer decoder -> EnCodec token logits. Loss: CE +
  entropy regularisation of the batch's code usage (keeps codes in use); tau anneals.
- VQVAE (the design's VQ-VAE): each segment of `stride` frames -> a pair of codes (acoustic,
  vocal) from EMA codebooks with dead-code revival; the vocal code can be zeroed while training;
  a segment is reconstructed from [z_prev, z_curr, z_next] (6 vectors).
Both: `encode(codes) -> latents [B, L, T/stride]`, `decode(latents) -> codes [B, C, T]`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autosong.model.config_checks import check_ranges, ranged

AE_KINDS = ("gumbel_ae", "vqvae")


@dataclass
class AEConfig:
    kind: str = "gumbel_ae"           # gumbel_ae | vqvae
    num_codebooks: int = ranged(2, low=1)  # EnCodec codebooks (from the dataset)
    codebook_size: int = ranged(1024, low=2)
    d_model: int = ranged(128, low=1)
    n_layers: int = ranged(2, low=1)  # encoder layers (and decoder layers)
    n_heads: int = ranged(4, low=1)
    stride: int = ranged(4, low=1)  # EnCodec frames per latent position
    latent_vocab: int = ranged(512, low=2)
    latent_channels: int = ranged(2, low=1)  # gumbel_ae; the VQ-VAE always has 2 (acoustic, vocal)
    window_frames: int = ranged(600, low=1)  # training window (a multiple of stride)
    max_frames: int = ranged(27_000, low=1)
    tau_start: float = ranged(2.0, low=0, above=True)  # Gumbel temperature, annealed exponentially ...
    tau_end: float = ranged(0.5, low=0, above=True)
    tau_decay_steps: int = ranged(1000, low=1)  # ... to tau_end over this many steps
    entropy_weight: float = ranged(0.1, low=0)
    commitment: float = ranged(0.25, low=0)  # VQ-VAE
    ema_decay: float = ranged(0.95, low=0, high=0.9999)
    dead_threshold: float = ranged(0.05, low=0)  # a code used less than this (EMA count) is revived
    vocal_zero_prob: float = ranged(0.2, low=0, high=1)  # VQ-VAE: train as if instrumental-only this often

    def __post_init__(self):
        check_ranges(self, "ae")
        if self.kind not in AE_KINDS:
            raise ValueError(f"ae.kind {self.kind!r}: expected one of {AE_KINDS}")
        if self.kind == "vqvae":
            self.latent_channels = 2
        if self.window_frames % self.stride:
            raise ValueError(f"ae.window_frames {self.window_frames} is not a multiple of ae.stride {self.stride}")

    def to_dict(self) -> dict:
        return asdict(self)


def _pad_to_stride(codes: torch.Tensor, stride: int) -> torch.Tensor:
    T = codes.shape[-1]
    return F.pad(codes, (0, (-T) % stride))


class FrameEmbed(nn.Module):
    """codes [B, C, T] -> [B, T, D]: per-codebook token embeddings summed per frame, + position."""

    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.tokens = nn.Embedding(cfg.num_codebooks * cfg.codebook_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_frames, cfg.d_model)
        self.offsets = nn.Parameter(torch.arange(cfg.num_codebooks) * cfg.codebook_size, requires_grad=False)

    def forward(self, codes):
        x = self.tokens(codes.long() + self.offsets[None, :, None]).sum(1)  # [B, T, D]
        return x + self.pos(torch.arange(codes.shape[-1], device=codes.device))


class TokenHead(nn.Module):
    """[B, T, D] -> EnCodec logits [B, T, C, V]: a shared projection after a codebook embedding."""

    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.codebook = nn.Embedding(cfg.num_codebooks, cfg.d_model)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.codebook_size)

    def forward(self, h):
        return self.out(self.norm(h[:, :, None, :] + self.codebook.weight[None, None]))


def _encoder(cfg: AEConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, 4 * cfg.d_model, dropout=0.0,
                                       activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)


def recon_stats(logits, codes, valid) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """CE over valid frames; per-codebook CE sums, counts and correct counts."""
    target = codes.long().transpose(1, 2)  # [B, T, C]
    ce = F.cross_entropy(logits.float().flatten(0, 2), target.flatten(), reduction="none").view(target.shape)
    mask = valid[:, :, None].expand_as(ce).float()
    per_sum = (ce * mask).sum((0, 1))
    per_n = mask.sum((0, 1))
    correct = ((logits.argmax(-1) == target).float() * mask).sum((0, 1))
    return (ce * mask).sum() / mask.sum().clamp(min=1), per_sum, per_n, correct


class Autoencoder(nn.Module):
    """What both stage-1 autoencoders share: latents back to EnCodec codes through `decode_logits`."""

    @torch.no_grad()
    def decode(self, latents):
        """latents -> EnCodec codes [B, C, T], the most likely code of each."""
        return self.decode_logits(latents).argmax(-1).transpose(1, 2)


class GumbelAE(Autoencoder):
    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg
        D, s, L, K = cfg.d_model, cfg.stride, cfg.latent_channels, cfg.latent_vocab
        self.embed = FrameEmbed(cfg)
        self.encoder = _encoder(cfg)
        self.down = nn.Linear(s * D, D)
        self.to_logits = nn.Linear(D, L * K)
        self.latent_embed = nn.Parameter(torch.randn(L, K, D) * D**-0.5)
        self.latent_pos = nn.Embedding(cfg.max_frames // s + 1, D)
        self.up = nn.Linear(D, s * D)
        self.decoder = _encoder(cfg)
        self.head = TokenHead(cfg)

    def tau(self, step: int) -> float:
        c = self.cfg
        return max(c.tau_end, c.tau_start * (c.tau_end / c.tau_start) ** (step / max(1, c.tau_decay_steps)))

    def latent_logits(self, codes):
        """codes [B, C, T] (T a multiple of stride) -> logits [B, T/s, L, K]."""
        B, _, T = codes.shape
        s = self.cfg.stride
        h = self.encoder(self.embed(codes))  # [B, T, D]
        h = self.down(h.reshape(B, T // s, s * h.shape[-1]))  # [B, T/s, D]
        return self.to_logits(h).view(B, T // s, self.cfg.latent_channels, self.cfg.latent_vocab)

    def decode_onehot(self, onehot):
        """onehot [B, T', L, K] -> EnCodec logits [B, T' * s, C, V]."""
        B, Tp = onehot.shape[:2]
        z = torch.einsum("btlk,lkd->btd", onehot.to(self.latent_embed.dtype), self.latent_embed)
        z = z + self.latent_pos(torch.arange(Tp, device=z.device))
        h = self.up(z).view(B, Tp * self.cfg.stride, -1)
        h = h + self.embed.pos(torch.arange(h.shape[1], device=h.device))
        return self.head(self.decoder(h))

    @torch.no_grad()
    def encode(self, codes):
        codes = _pad_to_stride(codes, self.cfg.stride)
        return self.latent_logits(codes).argmax(-1).transpose(1, 2)  # [B, L, T']

    def decode_logits(self, latents):
        """latents [B, L, T'] -> EnCodec logits [B, T' * stride, C, V]."""
        return self.decode_onehot(F.one_hot(latents.long().transpose(1, 2), self.cfg.latent_vocab).float())

    def forward(self, codes, lengths, step: int = 0):
        codes = _pad_to_stride(codes, self.cfg.stride)
        logits = self.latent_logits(codes)
        if self.training:  # straight-through: hard one-hot forward, soft gradient backward
            onehot = F.gumbel_softmax(logits.float(), tau=self.tau(step), hard=True)
        else:
            onehot = F.one_hot(logits.argmax(-1), self.cfg.latent_vocab).float()
        recon = self.decode_onehot(onehot)
        valid = torch.arange(codes.shape[-1], device=codes.device)[None] < lengths[:, None]
        loss, per_sum, per_n, correct = recon_stats(recon, codes, valid)
        lat_valid = valid[:, :: self.cfg.stride]
        p = logits.float().softmax(-1)[lat_valid].mean(0)  # [L, K] batch code usage
        entropy = -(p * (p + 1e-9).log()).sum(-1).mean()
        total = loss - self.cfg.entropy_weight * entropy  # maximise usage entropy
        usage = onehot.detach()[lat_valid].mean(0)
        return total, per_sum, per_n, {"correct": correct, "usage": usage, "entropy": entropy.detach(),
                                       "tau": torch.tensor(self.tau(step))}


class EMACodebook(nn.Module):
    """Vector quantiser whose codes follow an EMA of their assigned vectors; codes that fall out
    of use are re-seeded from this batch's vectors, so the codebook does not collapse."""

    def __init__(self, size: int, dim: int, decay: float, dead_threshold: float):
        super().__init__()
        self.decay, self.dead_threshold = decay, dead_threshold
        self.register_buffer("embed", torch.randn(size, dim) * dim**-0.5)
        self.register_buffer("count", torch.ones(size))
        self.register_buffer("sum", self.embed.clone())

    def codes(self, x):
        """x [N, D] -> nearest code ids [N]."""
        return torch.cdist(x.float(), self.embed.float()).argmin(-1)

    def forward(self, x):
        """x [N, D] -> (quantised [N, D] with straight-through gradient, ids [N])."""
        ids = self.codes(x)
        q = self.embed[ids].to(x.dtype)
        if self.training:
            with torch.no_grad():
                onehot = F.one_hot(ids, self.embed.shape[0]).float()
                self._all_reduce_ema(onehot.sum(0), onehot.T @ x.detach().float(), x.detach().float())
        return x + (q - x).detach(), ids

    def _all_reduce_ema(self, counts, sums, x):
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():  # every rank keeps the same codebook
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        self.embed.copy_(self.sum / self.count.clamp(min=1e-5)[:, None])
        dead = self.count < self.dead_threshold
        if dead.any() and len(x):
            g = torch.Generator(device="cpu").manual_seed(int(self.count.sum().item() * 1000) % 2**31)
            pick = torch.randint(0, len(x), (int(dead.sum()),), generator=g).to(x.device)
            fresh = x[pick]
            if dist.is_available() and dist.is_initialized():
                dist.broadcast(fresh, 0)
            self.embed[dead] = fresh
            self.sum[dead] = fresh
            self.count[dead] = 1.0


class VQVAE(Autoencoder):
    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg
        D, s, K = cfg.d_model, cfg.stride, cfg.latent_vocab
        self.embed = FrameEmbed(cfg)
        self.encoder = _encoder(cfg)
        self.to_pair = nn.Linear(s * D, 2 * D)  # acoustic, vocal
        self.books = nn.ModuleList(EMACodebook(K, D, cfg.ema_decay, cfg.dead_threshold) for _ in range(2))
        self.context = nn.Sequential(nn.Linear(6 * D, 2 * D), nn.GELU(), nn.Linear(2 * D, s * D))
        self.decoder = _encoder(cfg)
        self.head = TokenHead(cfg)

    def segment_vectors(self, codes):
        """codes [B, C, T] -> continuous (acoustic, vocal) vectors [B, S, 2, D]."""
        B, _, T = codes.shape
        h = self.encoder(self.embed(codes))
        return self.to_pair(h.reshape(B, T // self.cfg.stride, -1)).view(B, T // self.cfg.stride, 2, -1)

    def quantise(self, z):
        """[B, S, 2, D] -> quantised [B, S, 2, D], ids [B, 2, S]."""
        B, S, _, D = z.shape
        outs, ids = [], []
        for k, book in enumerate(self.books):
            q, i = book(z[:, :, k].reshape(B * S, D))
            outs.append(q.view(B, S, D))
            ids.append(i.view(B, S))
        return torch.stack(outs, 2), torch.stack(ids, 1)

    def decode_vectors(self, q):
        """[B, S, 2, D] -> EnCodec logits [B, S * stride, C, V] from [prev, curr, next] context."""
        B, S, _, D = q.shape
        flat = q.reshape(B, S, 2 * D)
        prev = F.pad(flat, (0, 0, 1, 0))[:, :S]
        nxt = F.pad(flat, (0, 0, 0, 1))[:, 1:]
        h = self.context(torch.cat([prev, flat, nxt], -1)).view(B, S * self.cfg.stride, D)
        h = h + self.embed.pos(torch.arange(h.shape[1], device=h.device))
        return self.head(self.decoder(h))

    @torch.no_grad()
    def encode(self, codes):
        z = self.segment_vectors(_pad_to_stride(codes, self.cfg.stride))
        return torch.stack([book.codes(z[:, :, k].reshape(-1, z.shape[-1])).view(z.shape[0], -1)
                            for k, book in enumerate(self.books)], 1)  # [B, 2, S]

    def decode_logits(self, latents):
        """latents [B, 2, S] -> EnCodec logits [B, S * stride, C, V]."""
        q = torch.stack([book.embed[latents[:, k].long()] for k, book in enumerate(self.books)], 2)
        return self.decode_vectors(q)

    def forward(self, codes, lengths, step: int = 0):
        codes = _pad_to_stride(codes, self.cfg.stride)
        z = self.segment_vectors(codes)
        q, ids = self.quantise(z)
        if self.training and self.cfg.vocal_zero_prob > 0:  # as if the song had no vocals
            zero = torch.rand(q.shape[0], device=q.device) < self.cfg.vocal_zero_prob
            q = torch.cat([q[:, :, :1], q[:, :, 1:] * (~zero)[:, None, None, None]], 2)
        recon = self.decode_vectors(q)
        valid = torch.arange(codes.shape[-1], device=codes.device)[None] < lengths[:, None]
        loss, per_sum, per_n, correct = recon_stats(recon, codes, valid)
        seg_valid = valid[:, :: self.cfg.stride]
        commit = F.mse_loss(z[seg_valid].float(), q.detach()[seg_valid].float())
        usage = F.one_hot(ids.transpose(1, 2)[seg_valid], self.cfg.latent_vocab).float().mean(0)  # [2, K]
        return loss + self.cfg.commitment * commit, per_sum, per_n, {
            "correct": correct, "usage": usage, "commitment": commit.detach()}


def build_autoencoder(cfg: AEConfig) -> nn.Module:
    return GumbelAE(cfg) if cfg.kind == "gumbel_ae" else VQVAE(cfg)


def code_usage(usage: torch.Tensor) -> tuple[float, float]:
    """usage [L, K] code frequencies -> (perplexity averaged over channels, dead fraction)."""
    p = usage / usage.sum(-1, keepdim=True).clamp(min=1e-9)
    perplexity = torch.exp(-(p * (p + 1e-12).log()).sum(-1)).mean().item()
    return perplexity, (usage == 0).float().mean().item()


def compression_factor(cfg: AEConfig) -> float:
    """EnCodec tokens per latent token."""
    return cfg.stride * cfg.num_codebooks / cfg.latent_channels
