"""Codebook patterns: how codes [B, C, T] become the model's sequence of steps, and back.

One object per layout owns everything that depends on it: the training batch (`build`), its
inverse (`to_frames`), the number of steps, which (codebook, frame) slots a step predicts
(`slots`) and what a sampler feeds at a step (`step_inputs`). The model, the sampler and the
eval only talk to this object (the model also asks it how its predictions are told apart), so a
third pattern is one new class in `PATTERNS`.

- flatten (the design's): one step per token, frame-major: (t0,c0), (t0,c1), (t1,c0) ... so
  T*C steps, each predicting one token. Step i's input is the previous token; its codebook and
  frame embeddings describe the slot being predicted.
- delay (MusicGen's): one step per frame, codebook c delayed by c frames, so T + C - 1 steps,
  each predicting all C codebooks at once; a later codebook still sees its frame's earlier
  codebooks, one step late. With `frames_per_step` k > 1 a step is k frames: codebook c delayed
  by c steps, ceil(T / k) + C - 1 steps each predicting C x k tokens, and each step reads the k
  frames of the step before. A k-th of the steps, and a next step that must say k frames ahead,
  which the lyrics decide and the frame before does not.

Token ids are offset per codebook (id + c * (V + 1)); id V of each block is EMPTY (start of
sequence, or the delay pattern's padding), so the input embedding knows each token's codebook.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PatternBatch:
    inputs: torch.Tensor     # [B, S, K] embedding ids summed per step (K = 1 flatten, C delay)
    codebook: torch.Tensor   # [S] or [B, S] codebook being predicted (flatten), unused for delay
    positions: torch.Tensor  # [B, S] absolute frame index of each step
    targets: torch.Tensor    # [B, S, P] code ids (P = 1 flatten, C delay)
    valid: torch.Tensor      # [B, S, P] bool: a real target (not padding or delay fill)


Slot = tuple[int, int] | None  # (codebook, frame) a prediction fills, or None (delay fill)


class Pattern(ABC):
    """The interface; `num_codebooks` C and `codebook_size` V fix the id blocks."""

    name = ""

    frames_per_step = 1

    def __init__(self, num_codebooks: int, codebook_size: int = 1024):
        self.C, self.V = num_codebooks, codebook_size
        self.EMPTY = codebook_size  # the id of "no token" in each codebook's block

    @property
    def input_blocks(self) -> int:
        """Blocks of V + 1 input ids the token embedding holds (one per codebook by default)."""
        return self.C

    @property
    def prediction_kinds(self) -> int:
        """Rows of the embedding that tells a step's predictions apart (one per codebook by default)."""
        return self.C

    @abstractmethod
    def steps(self, frames: int) -> int:
        """Model steps for `frames` frames."""

    @abstractmethod
    def build(self, codes: torch.Tensor, lengths: torch.Tensor, frame_offset: torch.Tensor) -> PatternBatch:
        """codes [B, C, T] long (padding anything), lengths [B] valid frames, frame_offset [B]
        absolute frame index of codes[..., 0]."""

    @abstractmethod
    def to_frames(self, per_step: torch.Tensor, frames: int) -> torch.Tensor:
        """Inverse of the layout for anything per target: [B, S, P, ...] -> [B, C, T, ...]."""

    @abstractmethod
    def slots(self, step: int, frames: int) -> list[Slot]:
        """The (codebook, frame) each of step `step`'s P predictions fills, None for delay fill."""

    @abstractmethod
    def step_inputs(self, step: int, codes: torch.Tensor, frames: int):
        """What step `step` reads (the previous step's tokens), for a sampler: ids [B, 1, K],
        codebook [1], frame [B, 1] (relative to codes[..., 0])."""

    @abstractmethod
    def target_codebooks(self, codebook: torch.Tensor, batch: int, steps: int) -> torch.Tensor:
        """The codebook of every prediction, [B, S, P] (from PatternBatch.codebook)."""

    # How the model tells its predictions apart. Default: one prediction per step, whose
    # codebook the step's input embedding carries.
    def embed_inputs(self, x: torch.Tensor, codebook: torch.Tensor, codebook_embed: torch.nn.Embedding) -> torch.Tensor:
        """x [B, S, D] (token + frame embeddings) -> with what the input says about its codebook."""
        return x + codebook_embed(codebook)

    def prediction_states(self, h: torch.Tensor, codebook_embed: torch.nn.Embedding) -> torch.Tensor:
        """The decoder's output h [B, S, D] -> one state per prediction [B, S, P, D]."""
        return h[:, :, None, :]

    def low_rank_logits(self, h: torch.Tensor, cb: torch.Tensor, lora_u: torch.Tensor, lora_v: torch.Tensor):
        """(h U_c) V_c^T [B, S, P, V] for each prediction's codebook c = cb [B, S, P], as plain
        matmuls: h @ U_all [D, C*r] with the other codebooks' columns zeroed, @ V_all; nothing
        of size V x r is copied per position."""
        C, V, r = lora_v.shape
        low = h @ lora_u.permute(1, 0, 2).reshape(-1, C * r)  # [B, S, P, C*r]
        own = F.one_hot(cb, C).to(h.dtype).repeat_interleave(r, dim=-1)
        return (low * own) @ lora_v.permute(0, 2, 1).reshape(C * r, V)


class Flatten(Pattern):
    name = "flatten"

    def steps(self, frames):
        return frames * self.C

    def build(self, codes, lengths, frame_offset):
        B, C, T = codes.shape
        dev, V1 = codes.device, self.V + 1
        frame_valid = torch.arange(T, device=dev)[None, :] < lengths[:, None]  # [B, T]
        targets = codes.transpose(1, 2).reshape(B, T * C)  # [B, T*C] frame-major
        step_cb = torch.arange(C, device=dev).repeat(T)  # [T*C]
        ids = targets + step_cb * V1
        start = torch.full((B, 1), (C - 1) * V1 + self.EMPTY, device=dev, dtype=codes.dtype)
        inputs = torch.cat([start, ids[:, :-1]], dim=1)[..., None]  # [B, S, 1]
        frame = torch.arange(T, device=dev).repeat_interleave(C)  # [T*C]
        positions = frame_offset[:, None] + frame[None, :]
        valid = frame_valid.repeat_interleave(C, dim=1)[..., None]
        return PatternBatch(inputs, step_cb, positions, targets[..., None], valid)

    def to_frames(self, per_step, frames):
        B = per_step.shape[0]
        return per_step.reshape(B, frames, self.C, *per_step.shape[3:]).transpose(1, 2)

    def slots(self, step, frames):
        return [(step % self.C, step // self.C)]

    def step_inputs(self, step, codes, frames):
        B, dev, V1 = codes.shape[0], codes.device, self.V + 1
        if step == 0:
            ids = torch.full((B,), (self.C - 1) * V1 + self.EMPTY, device=dev)
        else:
            c, t = (step - 1) % self.C, (step - 1) // self.C
            ids = codes[:, c, t] + c * V1
        cb = torch.full((1,), step % self.C, device=dev)  # a fill on the device: no copy from the host per step
        return ids[:, None, None], cb, torch.full((B, 1), step // self.C, device=dev)

    def target_codebooks(self, codebook, batch, steps):
        cb = codebook if codebook.dim() == 2 else codebook[None].expand(batch, steps)
        return cb[..., None]


class Delay(Pattern):
    name = "delay"

    def __init__(self, num_codebooks: int, codebook_size: int = 1024, frames_per_step: int = 1):
        super().__init__(num_codebooks, codebook_size)
        if frames_per_step < 1:
            raise ValueError(f"frames_per_step {frames_per_step}: expected at least 1")
        self.k = self.frames_per_step = frames_per_step

    @property
    def input_blocks(self):
        return self.C * self.k  # one block per (codebook, frame within the step)

    @property
    def prediction_kinds(self):
        return self.C * self.k

    def _blocks(self, frames: int) -> int:
        return -(-frames // self.k)  # steps of k frames that cover `frames`

    def steps(self, frames):
        return self._blocks(frames) + self.C - 1

    def build(self, codes, lengths, frame_offset):
        B, C, T = codes.shape
        k, N = self.k, self._blocks(T)
        dev, S = codes.device, N + C - 1
        pad = N * k - T
        frame_valid = torch.arange(N * k, device=dev)[None, :] < lengths[:, None]  # [B, N*k]
        blocks = F.pad(codes, (0, pad)).view(B, C, N, k)
        valid_blocks = frame_valid.view(B, 1, N, k).expand(B, C, N, k)
        delayed = torch.full((B, C, S, k), self.EMPTY, device=dev, dtype=codes.dtype)
        dvalid = torch.zeros((B, C, S, k), device=dev, dtype=torch.bool)
        for c in range(C):
            delayed[:, c, c : c + N] = blocks[:, c]
            dvalid[:, c, c : c + N] = valid_blocks[:, c]
        delayed = delayed.masked_fill(~dvalid, self.EMPTY)
        offsets = (torch.arange(C * k, device=dev) * (self.V + 1)).view(1, C, 1, k)
        shifted = torch.cat([torch.full_like(delayed[:, :, :1], self.EMPTY), delayed[:, :, :-1]], dim=2)
        inputs = (shifted + offsets).permute(0, 2, 1, 3).reshape(B, S, C * k)  # [B, S, C*k]
        positions = frame_offset[:, None] + k * torch.arange(S, device=dev)[None, :]
        codebook = torch.zeros(S, dtype=torch.long, device=dev)
        targets = delayed.permute(0, 2, 1, 3).reshape(B, S, C * k)  # prediction p = c * k + j
        return PatternBatch(inputs, codebook, positions, targets, dvalid.permute(0, 2, 1, 3).reshape(B, S, C * k))

    def to_frames(self, per_step, frames):
        B, k, N = per_step.shape[0], self.k, self._blocks(frames)
        rest = per_step.shape[3:]
        out = [per_step[:, c : c + N, c * k : (c + 1) * k].reshape(B, N * k, *rest)[:, :frames] for c in range(self.C)]
        return torch.stack(out, dim=1)

    def slots(self, step, frames):
        k = self.k
        return [(c, (step - c) * k + j) if step >= c and (step - c) * k + j < frames else None
                for c in range(self.C) for j in range(k)]

    def step_inputs(self, step, codes, frames):
        B, dev, V1, k = codes.shape[0], codes.device, self.V + 1, self.k
        cols = []
        for c in range(self.C):
            for j in range(k):
                t = (step - 1 - c) * k + j
                tok = codes[:, c, t] if step - 1 - c >= 0 and t < frames else torch.full((B,), self.EMPTY, device=dev)
                cols.append(tok + (c * k + j) * V1)
        return torch.stack(cols, -1)[:, None, :], torch.zeros(1, dtype=torch.long, device=dev), \
            torch.full((B, 1), step * k, device=dev)

    def target_codebooks(self, codebook, batch, steps):
        cb = torch.arange(self.C, device=codebook.device).repeat_interleave(self.k)
        return cb[None, None].expand(batch, steps, self.C * self.k)

    # Every codebook (and frame of the step) at every step: prediction p's embedding row says which.
    def embed_inputs(self, x, codebook, codebook_embed):
        return x

    def prediction_states(self, h, codebook_embed):
        return h[:, :, None, :] + codebook_embed.weight[None, None]  # [B, S, C*k, D]

    def low_rank_logits(self, h, cb, lora_u, lora_v):
        u, v = lora_u.repeat_interleave(self.k, 0), lora_v.repeat_interleave(self.k, 0)  # per prediction
        low = torch.einsum("bscd,cdr->bscr", h, u)  # a batched matmul per codebook
        return torch.einsum("bscr,cvr->bscv", low, v)


PATTERNS: dict[str, type[Pattern]] = {"flatten": Flatten, "delay": Delay}


def get(name: str, num_codebooks: int, codebook_size: int = 1024, frames_per_step: int = 1) -> Pattern:
    if name not in PATTERNS:
        raise ValueError(f"pattern {name!r}: expected one of {tuple(PATTERNS)}")
    if frames_per_step == 1:
        return PATTERNS[name](num_codebooks, codebook_size)
    if name != "delay":
        raise ValueError(f"pattern {name!r} takes one frame per step; frames_per_step {frames_per_step} needs delay")
    return Delay(num_codebooks, codebook_size, frames_per_step)

