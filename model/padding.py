"""Rows of different lengths as one padded batch: the lyric ids, BERT states and timed lines that training,
eval and generation all hand to the model the same way, and `SongBatch`, what one training step reads."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from autosong.model.song_key import KEY_SIGNATURES


@dataclass
class SongBatch:
    """B song windows as the model reads them in training (train/data.py collates them)."""

    codes: torch.Tensor          # [B, C, T] long: each window's codes, zero-padded past its length
    lengths: torch.Tensor        # [B]: real frames of each window
    frame_offset: torch.Tensor   # [B]: the song frame each window starts at (absolute positions)
    song_frames: torch.Tensor    # [B]: frames of each whole song (the alignment prior's T)
    text_ids: torch.Tensor       # [B, L]: lyric ids, genre token first (text_inputs)
    text_mask: torch.Tensor      # [B, L] bool
    line_frames: torch.Tensor    # [B, N] float: timed lines' start frames (line_inputs)
    line_slots: torch.Tensor     # [B, N]: each line's first memory slot; -1 pads and marks untimed songs
    keys: list[str]              # the songs' keys, for logs and tests
    song_keys: torch.Tensor      # [B, 12] bool: the key signatures each song's audio fits best (none: unknown)
    bert: torch.Tensor | None = None       # [B, Lb, d] fp16: BERT states, in a BERT dataset
    bert_mask: torch.Tensor | None = None  # [B, Lb] bool

    def to(self, device) -> "SongBatch":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if torch.is_tensor(getattr(self, f.name))})


def pad_rows(rows: list, dtype: torch.dtype, min_length: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Arrays or tensors [L_i, ...] -> (zeros-padded [B, max(L_i, min_length), ...], mask [B, that])."""
    rows = [torch.as_tensor(np.asarray(r)) if not torch.is_tensor(r) else r for r in rows]
    L = max(min_length, max(len(r) for r in rows))
    padded = torch.zeros(len(rows), L, *rows[0].shape[1:], dtype=dtype)
    mask = torch.zeros(len(rows), L, dtype=torch.bool)
    for i, r in enumerate(rows):
        padded[i, : len(r)], mask[i, : len(r)] = r.to(dtype), True
    return padded, mask


def text_inputs(ids: list, bert: list | None = None) -> dict:
    """The model's text inputs for B songs: text_ids/text_mask [B, L] from lyric id rows (genre
    token first), and bert/bert_mask [B, Lb, d] (fp16) when BERT states are given. A song may
    have no BERT states (the empty-lyrics condition): its row is fully masked."""
    text_ids, text_mask = pad_rows(ids, torch.long)
    out = {"text_ids": text_ids, "text_mask": text_mask}
    if bert is not None:
        out["bert"], out["bert_mask"] = pad_rows(bert, torch.float16, min_length=1)
    return out


def line_inputs(lines: list) -> dict:
    """Timed lines (Sample.line_timing) of B songs -> line_frames [B, N] (float, frames of the song)
    and line_slots [B, N] (memory slot of each line's first word; -1 pads, and marks an untimed
    song's row). An entry None is an untimed song."""
    empty = (np.zeros(0, np.float32), np.zeros(0, np.int64))
    frames, slots = zip(*(pair if pair is not None else empty for pair in lines))
    line_frames, mask = pad_rows(frames, torch.float32)
    line_slots, _ = pad_rows(slots, torch.long)
    return {"line_frames": line_frames, "line_slots": line_slots.masked_fill(~mask, -1)}


def key_sets(heard: list) -> torch.Tensor:
    """The key signatures each of B songs fits (Sample.key_signatures) -> [B, 12] bool."""
    out = torch.zeros(len(heard), KEY_SIGNATURES, dtype=torch.bool)
    for i, keys in enumerate(heard):
        out[i, list(keys)] = True
    return out
