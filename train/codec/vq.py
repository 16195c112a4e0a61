"""The codec trainer's residual VQ: EMA codebooks with dead codes revived, codebooks seeded from
real encoder frames, and latents centred so the quantizer sees no constant offset."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from autosong.model.spectral_decoder import has_spectral_decoder
from autosong.train.codec.data import random_crops


def quantize_train(model, emb: torch.Tensor, n_q: int, decay: float, dead_fraction: float,
                   gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """emb [B, D, F] -> (straight-through quantized [B, D, F], commitment loss, codes [n_q, B*F]).
    Updates each codebook's EMA statistics in place (transformers' buffers: embed, embed_avg,
    cluster_size), the layout `EncodecModel` reads at inference."""
    B, D, Fr = emb.shape
    x = emb.permute(0, 2, 1).reshape(-1, D)  # [N, D]
    residual = x.detach()
    quantized = torch.zeros_like(x)
    commit = x.new_zeros(())
    all_codes = []
    for layer in model.quantizer.layers[:n_q]:
        book = layer.codebook
        codes = torch.cdist(residual, book.embed).argmin(1)  # [N]; exact, no |x|^2 - 2xe + |e|^2 cancellation
        q = book.embed[codes]
        with torch.no_grad():
            onehot = F.one_hot(codes, book.codebook_size).type(residual.dtype)  # [N, K]
            book.cluster_size.mul_(decay).add_(onehot.sum(0), alpha=1 - decay)
            book.embed_avg.mul_(decay).add_(onehot.T @ residual, alpha=1 - decay)
            n = book.cluster_size.sum()
            smoothed = (book.cluster_size + 1e-5) / (n + book.codebook_size * 1e-5) * n  # Laplace
            book.embed.copy_(book.embed_avg / smoothed[:, None])
            # EMA usage of a code that is used as often as any other: frames / codes per step
            fair = residual.shape[0] / book.codebook_size
            dead = book.cluster_size < dead_fraction * fair
            if dead.any():  # revive unused codes at random residuals of this batch
                pick = torch.randint(0, residual.shape[0], (int(dead.sum()),), generator=gen).to(residual.device)
                book.embed[dead] = residual[pick]
                book.embed_avg[dead] = residual[pick] * fair
                book.cluster_size[dead] = fair
        quantized = quantized + q
        residual = residual - q
        all_codes.append(codes)
    commit = F.mse_loss(x, quantized.detach())
    # Keep the latents centred: a constant offset much larger than their variation makes the
    # expanded distance that transformers' quantizer computes at inference lose every digit.
    commit = commit + x.mean(0).pow(2).mean()
    st = x + (quantized - x).detach()  # straight-through to the encoder
    return st.view(B, Fr, D).permute(0, 2, 1), commit, torch.stack(all_codes)


@torch.no_grad()
def seed_from_frames(model, clips: list[np.ndarray], n_q: int, crop: int, rng: np.random.Generator,
                     gen: torch.Generator, fair: float, batches: int = 24) -> None:
    """Fill each codebook with encoder frames of real audio (residuals after the earlier books)."""
    model.eval()
    device = next(model.parameters()).device
    frames = torch.cat([model.encoder(random_crops(clips, 16, crop, rng)[:, None].to(device)).permute(0, 2, 1)
                        .reshape(-1, model.config.codebook_dim) for _ in range(batches)])  # [N, D]
    model.train()
    residual = frames
    for layer in model.quantizer.layers[:n_q]:
        book = layer.codebook
        pick = torch.randperm(residual.shape[0], generator=gen)[: book.codebook_size].to(device)
        vectors = residual[pick]
        if len(vectors) < book.codebook_size:
            vectors = vectors.repeat(-(-book.codebook_size // len(vectors)), 1)[: book.codebook_size]
        book.embed.copy_(vectors)
        book.embed_avg.copy_(vectors * fair)
        book.cluster_size.fill_(fair)  # as if used at the uniform rate; unused codes soon get revived
        residual = residual - book.embed[book.encode(residual)]


@torch.no_grad()
def center_latents(model, clips: list[np.ndarray], crop: int, rng: np.random.Generator, batches: int = 8) -> None:
    """Fold the latents' mean out of the codec, exactly: the encoder's last bias and the first
    codebook move by -mu, the decoder's first convolution adds W.mu back (its padding reflects or
    replicates, so a constant shift passes through). transformers' quantizer computes |x|^2 - 2xe + |e|^2 in
    float32, which loses every digit when a large common offset dwarfs the latents' variation."""
    device = next(model.parameters()).device
    mu = torch.cat([model.encoder(random_crops(clips, 16, crop, rng)[:, None].to(device))
                    for _ in range(batches)]).mean((0, 2))  # [D]
    model.encoder.layers[-1].conv.bias -= mu
    book = model.quantizer.layers[0].codebook
    book.embed -= mu
    book.embed_avg.copy_(book.embed * book.cluster_size[:, None])
    first = model.decoder.input if has_spectral_decoder(model) else model.decoder.layers[0].conv
    first.bias += first.weight.sum(-1) @ mu
