"""Sampling with a KV cache: lyrics (+ genre) -> codes [B, C, frames], in either codebook pattern.

The self-attention cache is preallocated for the whole song and the cross-attention keys/values
are computed once. Classifier-free guidance runs the conditional and null-memory passes as one
batch of 2B: logits = uncond + w * (cond - uncond). A prompt's codes are fed in one prefill call
and then forced wherever the pattern asks for a prompt frame.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from model import patterns
from model.transformer import SoundTransformer


@dataclass
class SamplingConfig:
    temperature: float = 1.0  # 0 = greedy (argmax)
    top_k: int = 250
    top_p: float = 0.0        # 0 = off
    cfg: float = 3.0          # classifier-free guidance weight; 1 = no guidance
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _pick(logits: torch.Tensor, s: SamplingConfig, gen: torch.Generator) -> torch.Tensor:
    """logits [..., V] -> ids [...]."""
    if s.temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float() / s.temperature
    if s.top_k:
        kth = logits.topk(min(s.top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if s.top_p:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > s.top_p  # keep the smallest set reaching top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = logits.softmax(-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat.cpu(), 1, generator=gen).view(probs.shape[:-1]).to(logits.device)


class Sampler:
    """`recompute=True` re-runs the whole prefix at every step instead of reusing the cache: the
    same math, O(n^2); the baseline that bench/generate.py measures the cache against."""

    def __init__(self, model: SoundTransformer, recompute: bool = False):
        self.model = model.eval()
        self.cfg = model.cfg
        self.recompute = recompute

    def _slots(self, step: int, frames: int):
        """Which (codebook, frame) each prediction of `step` fills: list over P of (c, t) or None."""
        C = self.cfg.num_codebooks
        if self.cfg.pattern == "flatten":
            return [(step % C, step // C)]
        return [(c, step - c) if 0 <= step - c < frames else None for c in range(C)]

    def _step_inputs(self, step: int, codes: torch.Tensor, frames: int):
        """Inputs of `step` (the previous step's tokens) as [B, 1, K] ids, codebook [1], position [B, 1]."""
        C, V1, B = self.cfg.num_codebooks, self.cfg.codebook_size + 1, codes.shape[0]
        EMPTY, dev = self.cfg.codebook_size, codes.device
        if self.cfg.pattern == "flatten":
            if step == 0:
                ids = torch.full((B,), (C - 1) * V1 + EMPTY, device=dev)
            else:
                c, t = (step - 1) % C, (step - 1) // C
                ids = codes[:, c, t] + c * V1
            cb = torch.tensor([step % C], device=dev)
            return ids[:, None, None], cb, torch.full((B, 1), step // C, device=dev)
        cols = []
        for c in range(C):
            t = step - 1 - c
            tok = codes[:, c, t] if 0 <= t < frames else torch.full((B,), EMPTY, device=dev)
            cols.append(tok + c * V1)
        return torch.stack(cols, -1)[:, None, :], torch.zeros(1, dtype=torch.long, device=dev), \
            torch.full((B, 1), step, device=dev)

    @torch.inference_mode()
    def generate(self, text_ids, text_mask, frames: int, settings: SamplingConfig, prompt=None,
                 bert=None, bert_mask=None, progress=None) -> torch.Tensor:
        """Args: text_ids/text_mask [B, L] (genre token first), frames to produce, prompt codes
        [B, C, P] (optional). Returns codes [B, C, frames] (the prompt included)."""
        model, C = self.model, self.cfg.num_codebooks
        B, dev = text_ids.shape[0], text_ids.device
        if frames + C > self.cfg.max_frames or frames > self.cfg.window_frames:
            raise ValueError(f"{frames} frames exceed the trained context of {self.cfg.window_frames} frames")
        guided = settings.cfg != 1.0
        memory, mask = model.text(text_ids, text_mask, bert, bert_mask)
        if guided:
            null_mem, null_mask = model.text(text_ids, text_mask, bert, bert_mask, drop=torch.ones(B, dtype=torch.bool, device=dev))
            memory, mask = torch.cat([memory, null_mem]), torch.cat([mask, null_mask])
        total = patterns.steps_for_frames(self.cfg.pattern, frames, C)
        song_frames = torch.full((memory.shape[0],), frames, device=dev)  # the song is as long as asked
        cache = model.new_cache(memory.shape[0], total)
        codes = torch.zeros(B, C, frames, dtype=torch.long, device=dev)
        known = torch.zeros(C, frames, dtype=torch.bool, device=dev)
        if prompt is not None:
            P = prompt.shape[-1]
            codes[..., :P], known[:, :P] = prompt.to(dev).long(), True
        gen = torch.Generator().manual_seed(settings.seed)
        # Prefill every step whose inputs the prompt alone decides; then one step at a time.
        first = 0
        while first < total and all(slot is None or bool(known[slot]) for slot in self._slots(first, frames)):
            first += 1
        started = time.perf_counter()
        step = 0
        while step < total:
            n = max(1, first) if step == 0 else 1
            lo = step
            if self.recompute:
                cache, lo = model.new_cache(memory.shape[0], total), 0
            parts = [self._step_inputs(s, codes, frames) for s in range(lo, step + n)]
            ids = torch.cat([p[0] for p in parts], 1)
            cb = torch.cat([p[1] for p in parts])
            pos = torch.cat([p[2] for p in parts], 1)
            if guided:
                ids, pos = torch.cat([ids, ids]), torch.cat([pos, pos])
            logits = model.step(ids, cb, pos, memory, mask, cache, song_frames)[:, -1]  # [B(x2), P, V]
            if guided:
                cond, uncond = logits[:B], logits[B:]
                logits = uncond + settings.cfg * (cond - uncond)
            step += n
            last = step - 1
            picked = _pick(logits, settings, gen)  # [B, P]
            for p, slot in enumerate(self._slots(last, frames)):
                if slot is not None and not known[slot]:
                    codes[:, slot[0], slot[1]] = picked[:, p]
            if progress is not None:
                progress(step, total, time.perf_counter() - started)
        return codes
