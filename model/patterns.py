"""Codebook patterns: how codes [B, C, T] become the model's sequence, and back.

- flatten (the design's): one step per token, frame-major: (t0,c0), (t0,c1), (t1,c0) ... so
  T*C steps, each predicting one token. Step i's input is the previous token; its codebook and
  frame embeddings describe the slot being predicted.
- delay (MusicGen's): one step per frame, codebook c delayed by c frames, so T + C - 1 steps,
  each predicting all C codebooks at once; a later codebook still sees its frame's earlier
  codebooks, one step late.

Token ids are offset per codebook (id + c * (V + 1)); id V of each block is EMPTY (start of
sequence, or the delay pattern's padding), so the input embedding knows each token's codebook.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

PATTERNS = ("flatten", "delay")


@dataclass
class PatternBatch:
    inputs: torch.Tensor     # [B, S, K] embedding ids summed per step (K = 1 flatten, C delay)
    codebook: torch.Tensor   # [S] or [B, S] codebook being predicted (flatten), unused for delay
    positions: torch.Tensor  # [B, S] absolute frame index of each step
    targets: torch.Tensor    # [B, S, P] code ids (P = 1 flatten, C delay)
    valid: torch.Tensor      # [B, S, P] bool: a real target (not padding or delay fill)


def steps_for_frames(pattern: str, frames: int, num_codebooks: int) -> int:
    return frames * num_codebooks if pattern == "flatten" else frames + num_codebooks - 1


def build(pattern: str, codes: torch.Tensor, lengths: torch.Tensor, frame_offset: torch.Tensor,
          codebook_size: int) -> PatternBatch:
    """Args: codes [B, C, T] long (padding anything), lengths [B] valid frames,
    frame_offset [B] absolute frame index of codes[..., 0]."""
    B, C, T = codes.shape
    V1 = codebook_size + 1
    EMPTY = codebook_size
    frame_valid = torch.arange(T, device=codes.device)[None, :] < lengths[:, None]  # [B, T]
    if pattern == "flatten":
        targets = codes.transpose(1, 2).reshape(B, T * C)  # [B, T*C] frame-major
        step_cb = torch.arange(C, device=codes.device).repeat(T)  # [T*C]
        ids = targets + step_cb * V1
        start = torch.full((B, 1), (C - 1) * V1 + EMPTY, device=codes.device, dtype=codes.dtype)
        inputs = torch.cat([start, ids[:, :-1]], dim=1)[..., None]  # [B, S, 1]
        frame = torch.arange(T, device=codes.device).repeat_interleave(C)  # [T*C]
        positions = frame_offset[:, None] + frame[None, :]
        valid = frame_valid.repeat_interleave(C, dim=1)[..., None]
        return PatternBatch(inputs, step_cb, positions, targets[..., None], valid)
    if pattern == "delay":
        S = T + C - 1
        delayed = torch.full((B, C, S), EMPTY, device=codes.device, dtype=codes.dtype)
        dvalid = torch.zeros((B, C, S), device=codes.device, dtype=torch.bool)
        for c in range(C):
            delayed[:, c, c : c + T] = codes[:, c]
            dvalid[:, c, c : c + T] = frame_valid
        delayed = delayed.masked_fill(~dvalid, EMPTY)
        offsets = (torch.arange(C, device=codes.device) * V1)[None, :, None]
        shifted = torch.cat([torch.full_like(delayed[..., :1], EMPTY), delayed[..., :-1]], dim=-1)
        inputs = (shifted + offsets).transpose(1, 2)  # [B, S, C]
        positions = frame_offset[:, None] + torch.arange(S, device=codes.device)[None, :]
        codebook = torch.zeros(S, dtype=torch.long, device=codes.device)
        return PatternBatch(inputs, codebook, positions, delayed.transpose(1, 2), dvalid.transpose(1, 2))
    raise ValueError(f"pattern {pattern!r}: expected one of {PATTERNS}")


def to_frames(pattern: str, per_step: torch.Tensor, num_codebooks: int, frames: int) -> torch.Tensor:
    """Inverse of the layout for anything per target ([B, S, P, ...]) -> [B, C, T, ...]."""
    B = per_step.shape[0]
    if pattern == "flatten":
        x = per_step.reshape(B, frames, num_codebooks, *per_step.shape[3:])
        return x.transpose(1, 2)
    out = torch.stack([per_step[:, c : c + frames, c] for c in range(num_codebooks)], dim=1)
    return out  # [B, C, T, ...]
