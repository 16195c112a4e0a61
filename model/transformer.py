"""SoundTransformer: the design's decoder over EnCodec tokens with the lyrics as memory.

x = Embed(token) + CodebookEmb(c) + PosEmb(t), t the absolute frame in the song (or, with
`frame_positions: rotary`, t turns self-attention's queries and keys instead); L decoder
layers (causal self-attention, cross-attention to the lyric memory, GELU MLP; post-LN as in
the design, or pre-LN); logits = H W_shared^T + (H U_c) V_c^T per codebook c (LoRA, rank 0 =
off). Memory M = Linear(PhonemeEmbed(ids) + PosEmb_text), or Linear(BERT states) after the
genre token; with probability `cond_dropout` it is a learned null memory instead, which is what
classifier-free guidance contrasts at generation time.

Attention, the KV cache and the alignment prior (`cross_align: prior`): model/attention.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from autosong.model import patterns
from autosong.model.attention import (Alignment, CrossAttention, KVCache, Recording, Rotation, SelfAttention,
                                      lyric_progress, per_frame)
from autosong.model.lyrics import default_tokenizer, sung_units
from autosong.model.model_config import ModelConfig
from autosong.model.song_key import KEY_SIGNATURES, NO_KEY

@dataclass
class FuturePrediction:
    """The auxiliary multi-token prediction: codebook 0 some frames ahead of each step."""

    logits: torch.Tensor   # [B, S, F, V]
    targets: torch.Tensor  # [B, S, F]
    valid: torch.Tensor    # [B, S, F] bool: the frame lies inside the window's real frames


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc, self.proj, self.drop = nn.Linear(cfg.d_model, cfg.d_ff), nn.Linear(cfg.d_ff, cfg.d_model), nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pre = cfg.norm == "pre"
        self.self_attn, self.cross_attn, self.mlp = SelfAttention(cfg), CrossAttention(cfg), MLP(cfg)
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, memory, memory_mask, cache: KVCache | None = None, layer: int = 0, align: Alignment | None = None,
                recording: Recording | None = None, rotation: Rotation | None = None):
        cross_kv = cache.cross[layer] if cache is not None else None
        if cache is not None and cross_kv is None:
            cross_kv = cache.cross[layer] = self.cross_attn.memory_kv(memory)
        blocks = (lambda h: self.self_attn(h, cache, layer, rotation),
                  lambda h: self.cross_attn(h, memory, memory_mask, cross_kv, align, recording, layer),
                  self.mlp)
        for norm, block in zip(self.norms, blocks):
            if self.pre:   # x + f(LN(x))
                x = x + self.drop(block(norm(x)))
            else:          # LN(x + f(x)), the design's
                x = norm(x + self.drop(block(x)))
        return x


class SongKey(nn.Module):
    """The song's key signature (model/song_key.py) added to every memory slot, so that every frame
    reads the song's key and not only its word's script: the key given, or the one a small head
    of its own predicts from the genre and the lyric ids. Added to every slot alike, it moves no
    attention weight (each score gains the same q.k) and adds the same value to every frame's
    cross-attention output (on the genre slot alone the songs gained half as much). The head pools
    a 4-wide code of each id and reads it beside the genre's through a small MLP: a summary that
    narrow must be shared by the ids, so it learns what the lyrics hold in the large (an MLP on the
    mean of the memory learned each training song's key instead, and named held-out songs' less often)."""

    def __init__(self, vocab: int, d_model: int, rate: float = 1.0):
        super().__init__()
        self.embed = nn.Embedding(KEY_SIGNATURES + 1, d_model)  # the last row: unknown (NO_KEY)
        self.words, self.genre = nn.Embedding(vocab, 4), nn.Embedding(vocab, 8)
        self.head = nn.Sequential(nn.Linear(12, 32), nn.GELU(), nn.Linear(32, KEY_SIGNATURES))
        self.rate = rate  # a gain on the codes: Adam moves them this many times faster than other weights

    def logits(self, text_ids, text_mask):
        """text_ids/text_mask [B, L] (genre token first) -> [B, KEY_SIGNATURES]."""
        lyric = text_mask[:, 1:, None].to(self.words.weight.dtype)
        words = (self.words(text_ids[:, 1:]) * lyric).sum(1) / lyric.sum(1).clamp(min=1)
        return self.head(torch.cat([self.genre(text_ids[:, 0]), words], dim=-1) * self.rate)

    @staticmethod
    def sung(logits, heard):
        """[B] the key a song heard in any of `heard` [B, 12] bool is sung in: of those, the one the
        head (logits [B, 12]) likes best, as training reads it; NO_KEY where none was heard."""
        choice = logits.detach().masked_fill(~heard, float("-inf")).argmax(-1)
        return torch.where(heard.any(-1), choice, NO_KEY)

    def on_every_slot(self, memory, key):
        """memory with key [B] (NO_KEY: unknown) added to each of its slots."""
        row = torch.where(key < 0, KEY_SIGNATURES, key)
        return memory + self.embed(row)[:, None].to(memory.dtype)


class TextMemory(nn.Module):
    """Lyric ids [B, L] (genre token first) or BERT states -> memory [B, L', D] and its mask."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.text_vocab_size, cfg.d_model)
        self.embed.weight.requires_grad_(not cfg.freeze_text_embedding)
        self.pos = nn.Embedding(cfg.max_text_len, cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.bert_proj = nn.Linear(cfg.bert_dim, cfg.d_model) if cfg.bert_dim else None
        self.null = nn.Parameter(torch.randn(1, 1, cfg.d_model) * 0.02)
        k = cfg.lyric_context
        self.context = nn.Sequential(nn.Conv1d(cfg.d_model, cfg.d_model, 2 * k + 1, padding=k), nn.GELU(),
                                     nn.Linear(cfg.d_model, cfg.d_model)) if k else None
        self.key = SongKey(cfg.text_vocab_size, cfg.d_model, cfg.key_rate) if cfg.song_key else None

    def forward(self, text_ids, text_mask, bert=None, bert_mask=None, drop=None, drop_lyrics=None, key=None):
        """drop [B] bool: these samples get the null memory (conditioning dropout, or the
        unconditional half of classifier-free guidance); drop_lyrics [B] bool: these keep only
        their genre token (lyric dropout, or the lyric-free term of lyric-only guidance); key [B]:
        the songs' key signatures (model.song_key; NO_KEY unknown), None: the head's likeliest."""
        if self.key is not None and key is None:
            key = self.key.logits(text_ids, text_mask).argmax(-1)
        memory, mask = self.lyric_memory(text_ids, text_mask, bert, bert_mask, key)
        if drop_lyrics is not None:
            mask = mask & ~(drop_lyrics[:, None] & (torch.arange(mask.shape[1], device=mask.device) > 0))
        if drop is not None:  # always through torch.where: the null memory gets a gradient (zero when unused) on
            # every rank, so ZeRO's buckets match when ranks draw different dropouts, and no host sync
            null_mask = torch.zeros_like(mask)
            null_mask[:, 0] = True
            memory = torch.where(drop[:, None, None], self.null.to(memory.dtype).expand_as(memory), memory)
            mask = torch.where(drop[:, None], null_mask, mask)
        return memory, mask

    def key_logits(self, text_ids, text_mask):
        """[B, KEY_SIGNATURES]: the key signature the lyrics and genre call for (model.song_key)."""
        return self.key.logits(text_ids, text_mask)

    def heard_key(self, text_ids, text_mask, heard):
        """[B]: the key songs whose audio fits `heard` [B, 12] bool are sung in, read as training reads
        it (SongKey.sung), for a teacher-forced pass over real audio; None for a model without keys."""
        return None if self.key is None else SongKey.sung(self.key.logits(text_ids, text_mask), heard)

    def lyric_memory(self, text_ids, text_mask, bert=None, bert_mask=None, key=None):
        """The memory [B, L', D] and its mask as the lyrics, genre and key [B] (model.song_key) give
        it, nothing dropped."""
        L = text_ids.shape[1]
        if L > self.cfg.max_text_len:
            raise ValueError(f"lyrics of {L} ids exceed model.max_text_len {self.cfg.max_text_len}")
        pos = torch.arange(L, device=text_ids.device)
        memory = self.proj(self.embed(text_ids) + self.pos(pos))  # [B, L, D]
        mask = text_mask
        if self.context is not None:
            memory = self.in_context(memory, mask)
        if self.bert_proj is not None:
            if bert is None:
                raise ValueError("this model reads BERT states (model.bert_dim > 0) but the batch has none")
            memory = torch.cat([memory[:, :1], self.bert_proj(bert.to(memory.dtype))], dim=1)  # genre + BERT
            mask = torch.cat([text_mask[:, :1], bert_mask], dim=1)
        return (memory if self.key is None else self.key.on_every_slot(memory, key)), mask

    def in_context(self, memory, mask):
        """Each lyric slot plus what a convolution reads of its neighbours (padding read as zeros,
        the genre slot neither read nor changed)."""
        if memory.shape[1] == 1:  # the genre alone (no lyrics): nothing to read
            return memory
        lyric = memory[:, 1:] * mask[:, 1:, None].to(memory.dtype)
        conv, act, out = self.context
        near = out(act(conv(lyric.transpose(1, 2)).transpose(1, 2)))
        return torch.cat([memory[:, :1], memory[:, 1:] + near], dim=1)


class SoundTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        C, V, D = cfg.num_codebooks, cfg.codebook_size, cfg.d_model
        self.pattern = patterns.get(cfg.pattern, C, V, cfg.frames_per_step)  # the codebook layout (model/patterns.py)
        self.token_embed = nn.Embedding(self.pattern.input_blocks * (V + 1), D)  # blocks; id V of a block = EMPTY
        self.codebook_embed = nn.Embedding(self.pattern.prediction_kinds, D)
        self.position_limit = cfg.max_frames + C * cfg.frames_per_step  # a delayed codebook's last frame included
        learned = cfg.frame_positions == "learned"
        self.pos_embed = nn.Embedding(self.position_limit, D) if learned else None
        self.text = TextMemory(cfg)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(D) if cfg.norm == "pre" else nn.Identity()
        self.out_shared = nn.Linear(D, V, bias=False)
        r = cfg.lora_rank
        self.lora_u = nn.Parameter(torch.randn(C, D, r) * D**-0.5) if r else None
        self.lora_v = nn.Parameter(torch.zeros(C, V, r)) if r else None  # LoRA: starts as a no-op
        # which future frame an auxiliary prediction is for, added to the state before the shared head
        self.future_embed = nn.Embedding(len(cfg.future_frames), D) if cfg.future_frames else None
        self.apply(self._init)
        if self._counts_syllables:  # fixed by the vocabulary, not saved

            units = sung_units(default_tokenizer(), cfg.tag_units)
            if len(units) != cfg.text_vocab_size:
                raise ValueError(f"model.align_units syllables needs the lyrics vocabulary ({len(units)} ids), "
                                 f"not model.text_vocab_size {cfg.text_vocab_size}")
            self.register_buffer("sung_units", torch.tensor(units), persistent=False)
            if cfg.align_units == "learned":  # log of each id's length relative to its syllable count
                self.unit_log_scale = nn.Parameter(torch.zeros(len(units)))
        if cfg.freeze_text_embedding:  # a fixed random code must be unit-scale for the projection to read it
            nn.init.normal_(self.text.embed.weight, std=1.0)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    # ---- pieces shared by training and incremental decoding ----------------------------------
    def embed_steps(self, inputs, codebook, positions):
        """inputs [B, S, K] ids, codebook [S] or [B, S], positions [B, S] -> x [B, S, D]."""
        limit = self.position_limit
        if positions.is_cuda or torch.compiler.is_compiling():  # checked on the device: no host sync, no graph break
            torch._assert_async(positions.max() < limit, f"a frame position is beyond model.max_frames {self.cfg.max_frames}")
        elif positions.max() >= limit:
            raise ValueError(f"frame position {int(positions.max())} beyond model.max_frames {self.cfg.max_frames}")
        x = self.token_embed(inputs).sum(dim=2)
        if self.pos_embed is not None:
            x = x + self.pos_embed(positions)
        return self.pattern.embed_inputs(x, codebook, self.codebook_embed)

    def logits(self, h, codebook):
        """h [B, S, D] -> [B, S, P, V]: one codebook per step (flatten), or all C (delay)."""
        cb = self.pattern.target_codebooks(codebook, h.shape[0], h.shape[1])  # [B, S, P]
        h = self.pattern.prediction_states(h, self.codebook_embed)  # [B, S, P, D]
        out = self.out_shared(h)
        if self.lora_u is not None:  # per-codebook low-rank heads (the gathered form held ~1 GB at base)
            out = out + self.pattern.low_rank_logits(h, cb, self.lora_u, self.lora_v)
        return out

    def decode(self, x, positions, memory, memory_mask, cache: KVCache | None = None, align: Alignment | None = None,
               recording: Recording | None = None):
        """x [B, S, D] the embedded steps, positions [B, S] their absolute frames -> states [B, S, D]."""
        rotation = None
        if self.cfg.frame_positions == "rotary":
            rotation = Rotation.of(positions, self.cfg.d_model // self.cfg.n_heads)
        for i, layer in enumerate(self.layers):
            if self._recomputes(i) and cache is None:
                x = checkpoint(layer, x, memory, memory_mask, None, i, align, recording, rotation, use_reentrant=False)
            else:
                x = layer(x, memory, memory_mask, cache, i, align, recording, rotation)
        if cache is not None and cache.static_step is None:  # a static step's index is the caller's
            cache.length += x.shape[1]
        return self.final_norm(x)

    def _recomputes(self, layer: int) -> bool:
        """Activation checkpointing, selective: layers 0, k, 2k, ... keep only their input and are
        recomputed in backward (k = recompute_every; 1 = every layer)."""
        c = self.cfg
        return c.activation_checkpointing and self.training and layer % c.recompute_every == 0

    # ---- incremental decoding (the sampler drives these) ---------------------------------------
    def new_cache(self, batch: int, max_steps: int) -> KVCache:
        p = next(self.parameters())
        return KVCache(self.cfg, batch, max_steps, p.device, p.dtype)

    def step(self, inputs, codebook, positions, memory, memory_mask, cache: KVCache, song_frames=None, lyric=None,
             lines=None):
        """Run S new steps (S > 1 for a prompt) on top of `cache`. inputs [B, S, K] ids,
        codebook [S] or [B, S], positions [B, S], song_frames [B] (the song's whole length,
        for the alignment prior), lyric [B, L] (self.lyric_progress of the lyrics; needed when
        the prior counts syllables), lines (line_frames, line_slots) [B, N]: where lines are
        known to start (an edit's kept lines and its cut), which the prior then passes through
        whatever align_source trained it, or their coordinate per frame (a sampler's, computed
        once: attention.pinned_progress_table). Returns logits [B, S, P, V]."""
        x = self.embed_steps(inputs, codebook, positions)
        h = self.decode(x, positions, memory, memory_mask, cache,
                        self._align(positions, song_frames, memory_mask, lyric, lines))
        return self.logits(h, codebook)

    def lyric_progress(self, text_ids, text_mask):
        """[B, L] where each lyric slot sits in the song's lyrics (0..1) for the alignment prior,
        or None when the prior counts slots (the default coordinate needs no ids)."""
        if not self._counts_syllables:
            return None
        return lyric_progress(text_mask, self.lyric_units(text_ids))

    def lyric_units(self, text_ids):
        """[B, L] how long each slot is sung, in the units the alignment prior counts: sung
        syllables (scaled by what training learned of each id, align_units learned), or one per
        slot when the prior counts slots. Slot 0 (the genre) is counted by lyric_progress as nothing."""
        if not self._counts_syllables:
            return torch.ones(text_ids.shape, device=text_ids.device)
        units = self.sung_units[text_ids]
        if self.cfg.align_units == "learned":
            units = units * (self.unit_log_scale * self.cfg.unit_rate).clamp(-3, 3).exp()[text_ids]
        return units

    @property
    def _counts_syllables(self) -> bool:
        c = self.cfg
        return c.cross_align == "prior" and c.align_units in ("syllables", "learned") and not c.bert_dim

    def _align(self, positions, song_frames, memory_mask, lyric=None, lines=None):
        """What cross-attention's prior needs (an Alignment), or None when it has none. lines:
        (line_frames, line_slots) [B, N] (model/padding.line_inputs) or None (uniform t/T)."""
        if self.cfg.cross_align == "none":
            return None
        if song_frames is None:
            raise ValueError("this model's cross-attention prior needs song_frames (the song's length in frames)")
        if lyric is None and self._counts_syllables:
            raise ValueError("this model's alignment prior counts sung syllables: pass lyric=model.lyric_progress(ids, mask)")
        return Alignment.of(positions, song_frames, memory_mask, lyric, lines)

    # ---- training ---------------------------------------------------------------------------
    def forward(self, codes, lengths, frame_offset, text_ids, text_mask, bert=None, bert_mask=None,
                cond_drop=None, song_frames=None, line_frames=None, line_slots=None, with_future: bool = False,
                recording: Recording | None = None, song_key=None):
        """Args: codes [B, C, T], lengths [B], frame_offset [B], text_ids/text_mask [B, L],
        bert [B, Lb, d_bert] (optional), song_frames [B] (the whole song's frames; default: the
        window ends the song), line_frames/line_slots [B, N] (timed lines, model/padding.line_inputs;
        read under align_source timed), recording: cross-attention weights to keep (and whether the
        prior is on), song_key [B]: the songs' key signatures (model.song_key; None: predicted).
        Returns: logits [B, S, P, V], the PatternBatch; with `with_future` (and model.future_frames)
        also the auxiliary FuturePrediction."""
        batch = self.pattern.build(codes.long(), lengths, frame_offset)
        if cond_drop is None and self.training and self.cfg.cond_dropout > 0:
            cond_drop = torch.rand(codes.shape[0], device=codes.device) < self.cfg.cond_dropout
        lyric_drop = None
        if self.training and self.cfg.lyric_dropout > 0:
            lyric_drop = torch.rand(codes.shape[0], device=codes.device) < self.cfg.lyric_dropout
        memory, memory_mask = self.text(text_ids, text_mask, bert, bert_mask, cond_drop, lyric_drop, song_key)
        if song_frames is None:
            song_frames = frame_offset + lengths
        x = self.embed_steps(batch.inputs, batch.codebook, batch.positions)
        lyric = self.lyric_progress(text_ids, text_mask)
        # a timed prior trains on the lines' times; a readout (recording) takes pinned lines on any model,
        # as the sampler does (an edit's kept lines and its cut)
        timed = line_slots is not None and (self.cfg.align_source == "timed" or recording is not None)
        lines = (line_frames, line_slots) if timed else None
        prior = recording is None or recording.prior
        align = self._align(batch.positions, song_frames, memory_mask, lyric, lines) if prior else None
        h = self.decode(x, batch.positions, memory, memory_mask, align=align, recording=recording)
        if with_future and self.future_embed is not None:
            return self.logits(h, batch.codebook), batch, self.future(h, batch, codes, lengths, frame_offset)
        return self.logits(h, batch.codebook), batch

    def future(self, h, batch, codes, lengths, frame_offset) -> "FuturePrediction":
        """Codebook 0 at each of model.future_frames frames past the frame a step predicts, from
        the state h [B, S, D] of every model.future_stride-th step: what the next notes will be,
        which the lyrics say long before the audio does."""
        ahead = torch.tensor(self.cfg.future_frames, device=h.device)  # [F]
        every = self.cfg.future_stride
        h, positions = h[:, ::every], batch.positions[:, ::every]
        frame = (positions - frame_offset[:, None])[..., None] + ahead  # [B, S', F] frame in the window
        valid = frame < lengths[:, None, None]
        targets = codes[:, 0].long().gather(1, frame.clamp(max=codes.shape[-1] - 1).flatten(1)).view(frame.shape)
        states = h[:, :, None, :] + self.future_embed.weight[None, None]  # [B, S, F, D]
        logits = self.out_shared(states)
        if self.lora_u is not None:  # codebook 0's low-rank head
            logits = logits + (states @ self.lora_u[0]) @ self.lora_v[0].T
        return FuturePrediction(logits, targets, valid)

    @torch.no_grad()
    def cross_attention_map(self, codes, text_ids, text_mask, song_frames=None, bert=None, bert_mask=None,
                            prior: bool = True, heads=None, lines=None, song_key=None):
        """Teacher-forced cross-attention weights per frame, averaged over heads: all heads of all
        layers, or `heads` [(layer, head) ...] (the bundle's alignment heads). codes [B, C, T] ->
        [B, T, L] (each frame's steps averaged). `prior=False`: as if the alignment prior were off
        (to show what it contributes). lines: timed lines (line_frames, line_slots) for a timed prior.
        song_key [B]: the songs' keys (model.song_key; None: the head's, as generation reads them)."""
        H = self.cfg.n_heads
        chosen = heads or [(layer, h) for layer in range(self.cfg.n_layers) for h in range(H)]
        by_layer = {layer: [h for l2, h in chosen if l2 == layer] for layer, _ in chosen}
        recorders = {layer: (lambda probs, hs=hs: probs[:, hs].sum(1)) for layer, hs in by_layer.items()}
        steps, pb = self.recorded_attention(recorders, codes, text_ids, text_mask, song_frames, bert, bert_mask,
                                            prior, lines, song_key)
        return per_frame(sum(steps.values()) / len(chosen), pb.positions[0], codes.shape[-1])

    @torch.no_grad()
    def recorded_attention(self, recorders: dict, codes, text_ids, text_mask, song_frames=None, bert=None,
                           bert_mask=None, prior: bool = True, lines=None, song_key=None):
        """One teacher-forced pass over whole songs (codes [B, C, T]) that keeps, for each layer in
        `recorders`, recorders[layer](its cross-attention weights [B, H, S, L]): (those values by
        layer, the PatternBatch). Computing each value as the layer runs keeps one layer's
        weights in memory at a time."""
        B, C, T = codes.shape
        recording = Recording(recorders, prior)
        zero = torch.zeros(B, dtype=torch.long, device=codes.device)
        line_frames, line_slots = lines if lines is not None else (None, None)
        _, pb = self(codes, torch.full_like(zero, T), zero, text_ids, text_mask, bert, bert_mask,
                     cond_drop=torch.zeros(B, dtype=torch.bool, device=codes.device), song_frames=song_frames,
                     line_frames=line_frames, line_slots=line_slots, recording=recording, song_key=song_key)
        return recording.kept, pb
