"""The SoundTransformer's attention: causal self-attention over a KV cache, and cross-attention to
the lyric memory with the optional alignment prior.

Alignment (`cross_align: prior`): the complete lyrics are the memory and the model decides the
timing, but a song sings lyric token l of L near frame t of T. Each cross-attention head adds a
Gaussian log-prior -w_h (t/T - l/L)^2 to its scores, with a learned width per head (initialised
from sharp to nearly flat; the genre token is exempt), the static alignment prior that TTS
aligners use to find the diagonal early. T is the song's length in frames: the whole song's in
training and eval, the requested length at generation. On a GPU the prior is computed inside
FlexAttention's kernel from two vectors (`prior_kernel: auto`), so no [B, H, S, L] bias and its
gradient are held per layer (0.8-2.2 GiB each at 18k frames).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from autosong.model.model_config import ModelConfig


class KVCache:
    """Preallocated self-attention keys/values for incremental decoding, plus each layer's
    cross-attention keys/values, computed once from the memory.

    Two ways to add a step. By default the cache grows: `length` (a Python int) says how many
    steps it holds and attention reads that prefix. With `static_step` (a 0-d long tensor on the
    device, the sampler's compiled decode) one new step is written at that index and attention
    reads the whole preallocated cache under a mask: every decode step has the same shapes, so
    torch.compile traces it once and CUDA graphs can replay it."""

    def __init__(self, cfg: ModelConfig, batch: int, max_steps: int, device, dtype):
        shape = (batch, cfg.n_heads, max_steps, cfg.d_model // cfg.n_heads)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)]
        self.cross: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * cfg.n_layers
        self.length = 0  # steps already cached
        self.static_step: torch.Tensor | None = None
        self.step_index = torch.zeros((), dtype=torch.long, device=device)  # what static_step is set to
        self.slots = torch.arange(max_steps, device=device)  # [T] cache index, for the static mask

    def rewind(self) -> None:
        """Empty of steps for the next window of the same song. The buffers stay, at the same
        addresses (a compiled step holds them), and so do the cross-attention keys/values."""
        self.length, self.static_step = 0, None


@dataclass
class Rotation:
    """Rotary frame positions (`model.frame_positions: rotary`): each self-attention query and key
    is turned, pair of channels by pair, through an angle proportional to its step's frame, so a
    score depends on how many frames apart two steps are, not on where in the song they stand. A
    frame past the training songs' length is then no untrained position. cos/sin [B, 1, S, Dh/2]."""
    cos: torch.Tensor
    sin: torch.Tensor

    @classmethod
    def of(cls, positions, head_dim: int, base: float = 10_000.0) -> "Rotation":
        """positions [B, S] absolute frames; channel pair i turns at base^(-2i/head_dim) per frame."""
        rates = base ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
        angles = positions.float()[:, None, :, None] * rates  # [B, 1, S, Dh/2]
        return cls(angles.cos(), angles.sin())

    def turn(self, x):
        """x [B, H, S, Dh] -> the same, each pair (x_i, x_{i + Dh/2}) rotated by its angle."""
        a, b = x.float().chunk(2, dim=-1)
        return torch.cat([a * self.cos - b * self.sin, a * self.sin + b * self.cos], -1).to(x.dtype)


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.dropout = cfg.n_heads, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x, cache: KVCache | None = None, layer: int = 0, rotation: Rotation | None = None):
        """rotation: the steps' rotary positions (None: positions are in x already, a learned embedding).
        The cache holds keys already turned."""
        B, S, D = x.shape
        q, k, v = self.qkv(x).view(B, S, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # [B, H, S, Dh]
        if rotation is not None:
            q, k = rotation.turn(q), rotation.turn(k)
        drop = self.dropout if self.training else 0.0
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        elif cache.static_step is not None:  # one step at a tensor index, over the whole cache
            at = cache.static_step.view(1)
            cache.k[layer].index_copy_(2, at, k)
            cache.v[layer].index_copy_(2, at, v)
            y = F.scaled_dot_product_attention(q, cache.k[layer], cache.v[layer],
                                               attn_mask=(cache.slots <= cache.static_step)[None])  # [1, T] visible
        else:
            start = cache.length
            cache.k[layer][:, :, start : start + S] = k
            cache.v[layer][:, :, start : start + S] = v
            k, v = cache.k[layer][:, :, : start + S], cache.v[layer][:, :, : start + S]
            mask = None
            if S > 1:  # a prompt: causal within the new steps, everything before them visible
                mask = torch.ones(S, start + S, dtype=torch.bool, device=x.device).tril(diagonal=start)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(B, S, D))


def lyric_progress(memory_mask, units=None):
    """Where in the lyrics each memory slot sits, in [0, 1], [B, L]: the middle of its share of
    the lyrics' units. units [B, L] (e.g. sung syllables per id; default 1 per slot): slot l sits
    at (units before it + half its own) / all units. Slot 0 (the genre) counts nothing."""
    if units is None:
        units = torch.ones(memory_mask.shape, device=memory_mask.device)
    units = units.float() * memory_mask
    units[:, 0] = 0.0
    total = units.sum(1, keepdim=True)
    units = torch.where(total > 0, units, memory_mask.float())  # lyrics of silent ids only: by slot
    units[:, 0] = 0.0
    return (units.cumsum(1) - units / 2) / units.sum(1, keepdim=True).clamp(min=1e-6)


def timed_song_progress(frames, song_frames, line_frames, line_slots, lyric):
    """The song coordinate that follows timed lyrics: piecewise linear in the frame, through
    (0, 0), (each line's start, the lyric progress of its first slot) and (T, 1), so a frame
    sits where the line it sings sits in the lyrics; a song without timed lines gets t/T.
    frames [B, S] (frame centres), song_frames [B], line_frames/line_slots [B, N], lyric [B, L]."""
    B = frames.shape[0]
    T = song_frames.float().clamp(min=1)[:, None]
    timed = line_slots >= 0
    at = lyric.gather(1, line_slots.clamp(min=0)).float()
    zero, one = torch.zeros(B, 1, device=frames.device), torch.ones(B, 1, device=frames.device)
    xs = torch.cat([zero, torch.where(timed, line_frames.float(), T), T], 1).cummax(1).values  # [B, N + 2]
    ys = torch.cat([zero, torch.where(timed, at, one), one], 1).cummax(1).values
    right = torch.searchsorted(xs.contiguous(), frames.contiguous(), right=True).clamp(1, xs.shape[1] - 1)
    x0, x1, y0, y1 = xs.gather(1, right - 1), xs.gather(1, right), ys.gather(1, right - 1), ys.gather(1, right)
    return y0 + (y1 - y0) * ((frames - x0) / (x1 - x0).clamp(min=1e-6)).clamp(0, 1)


def pinned_progress_table(song_frames, lines, lyric, length: int):
    """timed_song_progress at every frame 0..length-1, [B, length]: a generation's song coordinate
    when its line starts are pinned (an edit's), computed once so that each decode step reads its
    own frames' entries (Alignment.of takes the table in place of the lines) instead of redoing the
    piecewise-linear search. Past the song's end the coordinate is the same at every frame, so a
    table one entry longer than the song serves every step (a position beyond it reads the last
    entry). lines (line_frames, line_slots) [B, N], lyric [B, L]."""
    frames = torch.arange(length, device=song_frames.device).float()[None].expand(len(song_frames), -1) + 0.5
    return timed_song_progress(frames, song_frames, *lines, lyric)


@dataclass
class Alignment:
    """What the alignment prior needs, as two vectors: where each query step is in the song,
    song [B, S] = (frame + 1/2) / T in [0, 1], and where each memory slot is in the lyrics,
    lyric [B, L] (lyric_progress). The [B, S, L] distance is built only by the dense kernel;
    FlexAttention computes it inside the kernel from these."""
    song: torch.Tensor
    lyric: torch.Tensor

    @classmethod
    def of(cls, positions, song_frames, memory_mask, lyric=None, lines=None) -> "Alignment":
        """positions [B, S] absolute frames, song_frames [B] frames in the whole song, memory_mask
        [B, L] (valid slots first), lyric [B, L] (default: lyric_progress(memory_mask), by slot),
        lines: timed lines (line_frames, line_slots) [B, N] (slot -1 pads), their song coordinate
        at every frame (pinned_progress_table, [B, frames]), or None: uniform t/T."""
        lyric = lyric_progress(memory_mask) if lyric is None else lyric
        if lines is None:
            song = (positions.float() + 0.5) / song_frames.float().clamp(min=1)[:, None]
        elif isinstance(lines, torch.Tensor):
            song = lines.gather(1, positions.clamp(0, lines.shape[1] - 1))
        else:
            song = timed_song_progress(positions.float() + 0.5, song_frames, *lines, lyric)
        return cls(song.clamp(0, 1), lyric)

    def distance(self) -> torch.Tensor:
        """Squared distance between song and lyric progress, [B, 1, S, L]; 0 for the genre slot
        (memory position 0), which every frame may read."""
        dist = (self.song[:, :, None] - self.lyric[:, None, :]) ** 2
        dist[:, :, 0] = 0.0
        return dist[:, None]


def per_frame(weights, positions, frames: int):
    """Weights per step [..., S, L] -> per frame [..., T, L]: each frame's steps averaged
    (positions [S]: the frame of each step)."""
    at = positions.clamp(max=frames - 1)
    out = torch.zeros(*weights.shape[:-2], frames, weights.shape[-1], device=weights.device)
    out.index_add_(out.dim() - 2, at, weights.float())
    count = torch.zeros(frames, device=weights.device).index_add_(0, at, torch.ones_like(at, dtype=torch.float))
    return out / count.clamp(min=1)[:, None]


_compiled_flex = None


def flex_prior_attention(q, k, v, memory_mask, align: Alignment, width):
    """Cross-attention with the prior -width[h] (song - lyric)^2 added to each score inside the
    kernel (FlexAttention's score_mod): no [B, H, S, L] bias is materialized, and the widths
    still get their gradient. Compiled (fused) on CUDA; eager elsewhere, where it is a reference
    that holds the scores (and PyTorch has no backward for it on a CPU)."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    song, lyric = align.song, align.lyric

    def prior(score, b, h, q_idx, kv_idx):
        dist = (song[b, q_idx] - lyric[b, kv_idx]) ** 2
        dist = torch.where(kv_idx == 0, torch.zeros_like(dist), dist)  # the genre slot is exempt
        return torch.where(memory_mask[b, kv_idx], score - width[h] * dist, -float("inf"))

    if q.is_cuda:
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention, dynamic=False)
        return _compiled_flex(q, k, v, score_mod=prior)
    return flex_attention(q, k, v, score_mod=prior)


@dataclass
class Recording:
    """What a teacher-forced pass keeps of its cross-attention (plots, line times), passed down
    the layers: for each layer in `record`, a function of its weights [B, H, S, L], whose value is
    kept in `kept`; `prior` False runs the pass as if the alignment prior were off."""
    record: dict[int, Callable[[torch.Tensor], torch.Tensor]]
    prior: bool = True
    kept: dict[int, torch.Tensor] = field(default_factory=dict)


class CrossAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.dropout = cfg.n_heads, cfg.dropout
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.prior_log_w = None
        if cfg.cross_align == "prior":
            # widths sigma from 0.03 (a few lyric tokens of a long song) to 0.3 (nearly flat)
            sigma = 0.03 * 10 ** torch.linspace(0, 1, cfg.n_heads)
            self.prior_log_w = nn.Parameter(torch.log(0.5 / sigma**2))
        self.kernel = cfg.prior_kernel

    def memory_kv(self, memory):
        B, L, D = memory.shape
        k, v = self.kv(memory).view(B, L, 2, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        return k, v  # [B, H, L, Dh]

    def uses_flex(self, q) -> bool:
        """Whether the prior goes inside the kernel (prior_kernel: flex, or auto on CUDA for more than
        one query step) rather than as a dense bias."""
        if self.prior_log_w is None or self.kernel == "dense":
            return False
        return self.kernel == "flex" or (q.is_cuda and q.shape[2] > 1)

    def forward(self, x, memory, memory_mask, kv=None, align: Alignment | None = None,
                recording: Recording | None = None, layer: int = 0):
        """recording: where this `layer`'s weights are kept, when it records this layer (the weights
        are then computed densely)."""
        record = recording.record.get(layer) if recording is not None else None
        B, S, D = x.shape
        q = self.q(x).view(B, S, self.n_heads, D // self.n_heads).transpose(1, 2)
        k, v = kv if kv is not None else self.memory_kv(memory)
        if align is not None and record is None and self.uses_flex(q):  # no dropout on these weights: the block's own remains
            y = flex_prior_attention(q, k, v, memory_mask, align, self.prior_log_w.exp())
            return self.out(y.transpose(1, 2).reshape(B, S, D))
        mask = memory_mask[:, None, None, :]  # [B, 1, 1, L] True = attend
        if self.prior_log_w is not None and align is not None:  # additive log-prior [B, H, S, L]; -inf where masked
            w = self.prior_log_w.exp().to(q.dtype)[None, :, None, None]
            mask = (-w * align.distance().to(q.dtype)).masked_fill(~mask, float("-inf"))
        if record is not None:
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            scores = scores + mask if mask.dtype != torch.bool else scores.masked_fill(~mask, float("-inf"))
            probs = scores.softmax(-1)  # [B, H, S, L]
            recording.kept[layer] = record(probs.detach())
            return self.out((probs @ v).transpose(1, 2).reshape(B, S, D))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, S, D))
