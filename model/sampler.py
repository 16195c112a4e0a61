"""Sampling with a KV cache: lyrics (+ genre) -> codes [B, C, frames], in any codebook pattern.

The self-attention cache is preallocated for a window and the cross-attention keys/values are
computed once. Classifier-free guidance runs the conditional and null-memory passes as one batch
of 2B: logits = uncond + w * (cond - uncond). Lyric-only guidance adds the genre-only memory (the
lyrics masked, as `model.lyric_dropout` trains) and weighs what the lyrics add on their own:
logits = null + w_l (cond - null) + (w - w_l) (genre_only - null), a batch of 2B or 3B. A prompt's codes are fed in one prefill call and
then forced wherever the pattern asks for a prompt frame. Everything stays on the model's
device: tokens are drawn there (a device generator), nothing is copied to the host per step.

With `compile` (or `static`), decode steps run on a static cache: each writes its step at a
tensor index and attends over the whole preallocated window under a mask, so every step has the
same shapes; `compile` hands that step to torch.compile (CUDA graphs on a GPU, mode
reduce-overhead), which traces it once per window length. The static step gives the same codes
as the growing cache (tested on CPU).

Songs longer than the training window are generated window by window: each new window starts
from the last `context` fraction of the one before (re-encoded in one prefill, as a training
window starts with no history), at the true absolute frame positions, with the whole song's
length given to the alignment prior, so the lyrics keep moving through the song. A window that lies
wholly in the prompt (most of an edit's kept part) is not run at all: nothing in it is drawn, and
the first window that draws re-encodes the context it keeps.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from autosong.model.attention import lyric_progress, pinned_progress_table
from autosong.model.code_notes import NoteHold
from autosong.model.sampling import SamplingConfig
from autosong.model.transformer import SoundTransformer

__all__ = ["Sampler", "SamplingConfig"]


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
    return torch.multinomial(flat, 1, generator=gen).view(probs.shape[:-1])


class Sampler:
    """`recompute=True` re-runs the whole prefix at every step instead of reusing the cache: the
    same math, O(n^2); the baseline that bench/generate.py measures the cache against."""

    def __init__(self, model: SoundTransformer, recompute: bool = False, static: bool = False, code_notes=None,
                 frame_rate: float = 75.0):
        self.model = model.eval()
        self.code_notes = code_notes  # the note each codebook-0 code sounds (model/code_notes.py): for note_hold
        self.frame_rate = frame_rate  # the codes' frames a second: the note hold's fade is in seconds
        self.cfg = model.cfg
        self.pattern = model.pattern
        self.recompute = recompute
        self.static = static  # decode on a static cache (what `compile` compiles), uncompiled

    @torch.inference_mode()
    def generate(self, text_ids, text_mask, frames: int, settings: SamplingConfig, prompt=None,
                 bert=None, bert_mask=None, progress=None, lines=None, song_frames: int | None = None,
                 song_key=None) -> torch.Tensor:
        """Args: text_ids/text_mask [B, L] (genre token first), frames to produce, prompt codes
        [B, C, P] (optional), progress(frames_done, frames, seconds) called as frames complete,
        lines (line_frames, line_slots) [B, N]: line starts the alignment prior must pass through
        (an edit's; model/padding.line_inputs), or None: the uniform t/T. song_frames: the whole
        song's length when only its opening `frames` are drawn (what the alignment prior's T is;
        default `frames`). song_key [B]: the key signature each song is sung in (model.song_key;
        None: the one its lyrics and genre call for, the model's key head's).
        Returns codes [B, C, frames] (the prompt included)."""
        model, C, W = self.model, self.cfg.num_codebooks, self.cfg.window_frames
        B, dev = text_ids.shape[0], text_ids.device
        if frames + C > self.cfg.max_frames:
            raise ValueError(f"{frames} frames exceed model.max_frames {self.cfg.max_frames} (the frame positions "
                             f"it was built with)")
        if not 0 <= settings.context < 1:
            raise ValueError(f"context {settings.context}: the fraction of a window kept must lie in [0, 1)")
        terms = settings.guidance_terms()
        everyone = torch.ones(B, dtype=torch.bool, device=dev)
        made = {"cond": lambda: model.text(text_ids, text_mask, bert, bert_mask, key=song_key),
                "genre_only": lambda: model.text(text_ids, text_mask, bert, bert_mask, drop_lyrics=everyone,
                                                 key=song_key),
                "null": lambda: model.text(text_ids, text_mask, bert, bert_mask, drop=everyone)}
        parts = [made[kind]() for kind, _ in terms]  # [(memory, mask)] per term, base last
        memory, mask = torch.cat([m for m, _ in parts]), torch.cat([k for _, k in parts])
        lyric = model.lyric_progress(text_ids, text_mask)  # None unless the prior counts syllables
        lyric = None if lyric is None else lyric.repeat(len(terms), 1)  # masked slots read nothing
        whole = frames if song_frames is None else max(frames, song_frames)
        song_frames = torch.full((memory.shape[0],), whole, device=dev)  # the song is as long as asked
        if lines is not None:  # the pinned prior's coordinate for every frame a step can stand on, once
            lines = tuple(x.to(dev).repeat(len(terms), 1) for x in lines)
            lines = pinned_progress_table(song_frames, lines, lyric_progress(mask) if lyric is None else lyric,
                                          frames + 1)  # every step past the song's end reads its last entry
        codes = torch.zeros(B, C, frames, dtype=torch.long, device=dev)
        known = torch.zeros(C, frames, dtype=torch.bool)  # on the host: read every step, no sync
        if prompt is not None:
            P = min(prompt.shape[-1], frames)
            codes[..., :P], known[:, :P] = prompt[..., :P].to(dev).long(), True
        gen = torch.Generator(device=dev).manual_seed(settings.seed)
        hold = None  # without a table (a latent model's positions are no codec codes), codes are drawn as codes
        if settings.note_hold > 0 and self.code_notes is not None:
            hold = NoteHold(self.code_notes, settings.note_hold, round(settings.note_fade * self.frame_rate), dev)
        started = time.perf_counter()
        keep = min(W - 1, int(W * settings.context))
        # One cache for every window, the last and shorter one included: a compiled step keeps
        # its shapes and its buffers' addresses, so it is traced (and its CUDA graph recorded) once.
        cache = self.model.new_cache(memory.shape[0], self.pattern.steps(min(W, frames)))
        for start, stop in windows_to_draw(frames, W, keep, known):
            report = None if progress is None else \
                (lambda done, _s=start: progress(_s + done, frames, time.perf_counter() - started))
            window = Window(start, stop - start, codes[..., start:stop], known[:, start:stop], terms)
            self._window(TextMemory(memory, mask, lyric, lines), song_frames, window, Draw(settings, gen, hold),
                         report, cache)
        return codes

    def _window(self, text: "TextMemory", song_frames, window: "Window", draw: "Draw", report, cache):
        """Fill one window's codes (frames already known there are the prompt or the previous
        window's end): one prefill of every step the known frames decide, then one-token decode
        steps, in the song's cache, rewound."""
        B, n, total = window.codes.shape[0], window.n, self.pattern.steps(window.n)
        cache.rewind()
        first = 0
        while first < total and all(slot is None or bool(window.known[slot]) for slot in self.pattern.slots(first, n)):
            first += 1
        step = max(1, first)
        logits = self._prefill(text, song_frames, window, step, cache)
        step_fn = None
        if (draw.settings.compile or self.static) and not self.recompute:
            cache.static_step = cache.step_index
            step_fn = _compiled_step(self.model, cache) if draw.settings.compile else self.model.step
        done = 0
        while True:
            if len(window.terms) > 1:  # mixed in fp32: bf16 loses the differences
                parts = logits.float().split(B)
                mixed = parts[-1]
                for (_, weight), part in zip(window.terms[:-1], parts[:-1]):
                    mixed = mixed + weight * (part - parts[-1])
                logits = mixed
            picked = draw.codes(logits)  # [B, P]
            for p, slot in enumerate(self.pattern.slots(step - 1, n)):
                if slot is not None and not window.known[slot]:
                    if slot[0] == 0 and draw.hold is not None:  # the frames before are known (time order)
                        picked[:, p] = draw.note(logits[:, p], window.codes[:, 0, :slot[1]])
                    window.codes[:, slot[0], slot[1]] = picked[:, p]
                    window.known[slot] = True
            if report is not None:
                while done < n and bool(window.known[:, done].all()):
                    done += 1
                report(done)
            if step == total:
                return
            if self.recompute:  # the whole prefix again, from an empty cache
                cache = self.model.new_cache(text.memory.shape[0], total)
                logits = self._prefill(text, song_frames, window, step + 1, cache)
            else:
                logits = self._decode_step(text, song_frames, window, step, cache, step_fn)
            step += 1

    def _prefill(self, text: "TextMemory", song_frames, window: "Window", steps: int, cache) -> torch.Tensor:
        """Steps 0..steps-1 in one forward into an empty cache; the last step's logits [B(x2), P, V]."""
        return self._forward(text, song_frames, window, 0, steps, cache, self.model.step)

    def _decode_step(self, text: "TextMemory", song_frames, window: "Window", step: int, cache, step_fn=None):
        """One step on top of the cache: eager, or at a tensor index of a static cache (`step_fn`,
        compiled or not), which keeps the step's shapes fixed."""
        if step_fn is None:
            return self._forward(text, song_frames, window, step, step + 1, cache, self.model.step)
        cache.static_step.fill_(step)
        logits = self._forward(text, song_frames, window, step, step + 1, cache, step_fn)
        cache.length = step + 1
        return logits

    def _forward(self, text: "TextMemory", song_frames, window: "Window", lo: int, hi: int, cache, step_fn):
        parts = [self.pattern.step_inputs(s, window.codes, window.n) for s in range(lo, hi)]
        ids = torch.cat([p[0] for p in parts], 1)
        cb = torch.cat([p[1] for p in parts])
        pos = torch.cat([p[2] for p in parts], 1) + window.start  # absolute frames
        if len(window.terms) > 1:  # every guidance term's memory in one batch
            ids, pos = ids.repeat(len(window.terms), 1, 1), pos.repeat(len(window.terms), 1)
        return step_fn(ids, cb, pos, text.memory, text.mask, cache, song_frames, text.lyric, text.lines)[:, -1].clone()


@dataclass
class TextMemory:
    """The lyrics as the decoder reads them (with guidance: each term's memory, base last, stacked)."""

    memory: torch.Tensor               # [B(x2), L, D]
    mask: torch.Tensor                 # [B(x2), L]
    lyric: torch.Tensor | None         # the alignment prior's syllable progress, when it counts them
    lines: torch.Tensor | None = None  # [B(x2), frames]: the prior's song coordinate where line starts are
    # pinned (attention.pinned_progress_table); None: t/T


@dataclass
class Draw:
    """How a step's logits become codes: the settings, the device generator, and the note hold
    codebook 0 is drawn through (None: every codebook drawn as codes)."""

    settings: SamplingConfig
    gen: torch.Generator
    hold: NoteHold | None

    def codes(self, logits: torch.Tensor) -> torch.Tensor:
        """logits [..., V] -> codes [...]."""
        return _pick(logits, self.settings, self.gen)

    def note(self, logits: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
        """Codebook 0 by note: logits [B, V], before [B, F] (that codebook's codes so far) -> codes [B]."""
        return self.hold.pick(logits, before, self.codes, self.settings.temperature, self.gen)


def windows_to_draw(frames: int, width: int, keep: int, known: torch.Tensor):
    """(start, stop) of each window a song of `frames` is drawn in, `width` frames at most, each after
    the first starting `keep` frames before the end of the one before. A window whose frames are all
    `known` ([C, frames]: a prompt's, an edit's kept part) is passed over, since nothing in it is drawn;
    read as the song is drawn, so a window is judged once those before it are filled."""
    start = 0
    while True:
        stop = min(frames, start + width)
        if not known[:, start:stop].all():
            yield start, stop
        if stop == frames:
            return
        start = stop - keep


@dataclass
class Window:
    """Frames start..start+n of the song, sampled in one pass of at most a training window."""

    start: int
    n: int
    codes: torch.Tensor                # [B, C, n], a view: writes land in the song's codes
    known: torch.Tensor                # [C, n] on the host, a view: which frames are decided
    terms: list                        # SamplingConfig.guidance_terms(): the memories, base last


def _compiled_step(model: SoundTransformer, cache):
    """model.step under torch.compile, made once per model (CUDA: CUDA graphs, whose replays
    write the cache in place, so its tensors are marked as fixed addresses)."""
    for t in (*cache.k, *cache.v, cache.slots, cache.static_step):
        torch._dynamo.mark_static_address(t)
    fn = model.__dict__.get("_compiled_step")
    if fn is None:
        mode = "reduce-overhead" if next(model.parameters()).is_cuda else None
        fn = model.__dict__["_compiled_step"] = torch.compile(model.step, mode=mode, dynamic=False)
    return fn
