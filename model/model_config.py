"""ModelConfig: the SoundTransformer's shape and its options, each field range-checked, in a module
of its own so that the attention, the transformer, the stages and the trainer's config read it
without importing one another."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from autosong.model import patterns
from autosong.model.config_checks import check_ranges, ranged

CROSS_ALIGN = ("none", "prior")
ALIGN_UNITS = ("tokens", "syllables", "learned")
ALIGN_SOURCES = ("uniform", "timed")
PRIOR_KERNELS = ("auto", "dense", "flex")
FRAME_POSITIONS = ("learned", "rotary")


@dataclass
class ModelConfig:
    num_codebooks: int = ranged(2, low=1)
    codebook_size: int = ranged(1024, low=2)
    d_model: int = ranged(256, low=1)
    n_layers: int = ranged(4, low=1)
    n_heads: int = ranged(4, low=1)
    d_ff: int = ranged(1024, low=1)
    dropout: float = ranged(0.0, low=0, high=0.95)
    max_frames: int = ranged(27_000, low=1)  # absolute frame positions (6 min at 75 frames/s)
    frame_positions: str = "learned"   # learned (an embedding per absolute frame, the design's PosEmb) |
                                       # rotary (self-attention sees frames apart only; attention.Rotation)
    max_tokens: int = ranged(18_000, low=1)  # training window, in audio tokens (frames x codebooks)
    text_vocab_size: int = ranged(2808, low=1)
    max_text_len: int = ranged(4096, low=1)
    freeze_text_embedding: bool = True # the design's frozen phoneme table (projection is learned)
    bert_dim: int = ranged(0, low=0)  # > 0: memory from stored BERT states of this width
    lora_rank: int = ranged(8, low=0)
    norm: str = "post"                 # post (the design) | pre
    pattern: str = "flatten"           # flatten (the design) | delay (MusicGen)
    frames_per_step: int = ranged(1, low=1)  # delay only: frames each step reads and predicts (model/patterns.py)
    cond_dropout: float = ranged(0.1, low=0, high=0.95)
    lyric_dropout: float = ranged(0.0, low=0, high=0.95)  # the genre token alone (lyrics masked): what
                                       # lyric-only guidance (SamplingConfig.lyric_guidance) contrasts
    lyric_context: int = ranged(0, low=0)  # > 0: each lyric slot also reads its neighbours this many slots
                                       # either side (a residual convolution), so a letter knows its word
    song_key: bool = False             # every memory slot also carries the song's key signature (heard by the
                                       # build, model/song_key.py); a head learns it from lyrics and genre, and
                                       # generation uses that head's key unless one is given
    key_weight: float = ranged(0.1, low=0)  # that head's loss against the next-token loss
    key_rate: float = ranged(10.0, low=0)  # a gain on that head's codes of the ids and genre, so Adam moves
                                       # them this many times faster than other weights (as model.unit_rate)
    cross_align: str = "none"          # none | prior (lyric position l/L near song progress t/T)
    align_units: str = "tokens"        # the prior's lyric coordinate: tokens (slots) | syllables (sung time;
                                       # a BERT memory has no ids to weigh, so it counts slots) | learned
                                       # (syllables to start, each id's length then learned with the model)
    unit_rate: float = ranged(1.0, low=0)  # align_units learned: a gain on each id's log length, so Adam
                                       # moves the lengths this many times faster than other weights
    tag_units: float = ranged(0.0, low=0)  # what a section tag ([verse], [chorus]) counts in a prior over
                                       # syllables: 0 silent; > 0 the intro or break before its lines gets
                                       # prior time (learned from there under align_units learned)
    align_source: str = "uniform"      # the prior's song coordinate: uniform (t/T) | timed (a song with
                                       # lyrics.lrc: piecewise through its lines' starts; others uniform)
    prior_kernel: str = "auto"         # where the prior is added: auto (FlexAttention on CUDA, dense on
                                       # CPU) | dense (a [B, H, S, L] bias) | flex
    future_frames: tuple[int, ...] = ranged((), low=1, each=True)  # frames ahead at which an auxiliary head
                                       # predicts codebook 0 in training (multi-token prediction; unused when sampling)
    future_weight: float = ranged(0.5, low=0)  # that loss's weight against the next-token loss
    codebook_weights: tuple[float, ...] = ranged((), low=0, each=True)  # the next-token loss's weight per
                                       # codebook (empty: all equal); codebook 0 carries the notes
    future_stride: int = ranged(1, low=1)  # predicted from every n-th step only (neighbours' targets overlap)
    activation_checkpointing: bool = False
    recompute_every: int = ranged(1, low=1)  # with activation_checkpointing: recompute every k-th layer only

    def __post_init__(self):
        check_ranges(self, "model")
        self.future_frames = tuple(self.future_frames)
        self.codebook_weights = tuple(self.codebook_weights)
        if self.codebook_weights and len(self.codebook_weights) != self.num_codebooks:
            raise ValueError(f"model.codebook_weights has {len(self.codebook_weights)} weights for "
                             f"{self.num_codebooks} codebooks")
        if self.codebook_weights and not any(self.codebook_weights):
            raise ValueError("model.codebook_weights are all 0: the next-token loss would weigh nothing")
        if self.max_tokens < self.num_codebooks:
            raise ValueError(f"model.max_tokens {self.max_tokens} holds not one frame of {self.num_codebooks} codebooks")
        if self.frame_positions not in FRAME_POSITIONS:
            raise ValueError(f"model.frame_positions {self.frame_positions!r}: expected one of {FRAME_POSITIONS}")
        if self.frame_positions == "rotary" and (self.d_model // self.n_heads) % 2:
            raise ValueError(f"model.frame_positions rotary turns channel pairs: d_model / n_heads "
                             f"({self.d_model // self.n_heads}) must be even")
        if self.norm not in ("post", "pre"):
            raise ValueError(f"model.norm {self.norm!r}: expected post or pre")
        if self.pattern not in patterns.PATTERNS:
            raise ValueError(f"model.pattern {self.pattern!r}: expected one of {tuple(patterns.PATTERNS)}")
        if self.frames_per_step > 1 and self.pattern != "delay":
            raise ValueError(f"model.frames_per_step {self.frames_per_step} needs model.pattern delay")
        if self.cross_align not in CROSS_ALIGN:
            raise ValueError(f"model.cross_align {self.cross_align!r}: expected one of {CROSS_ALIGN}")
        if self.align_units not in ALIGN_UNITS:
            raise ValueError(f"model.align_units {self.align_units!r}: expected one of {ALIGN_UNITS}")
        if self.align_source not in ALIGN_SOURCES:
            raise ValueError(f"model.align_source {self.align_source!r}: expected one of {ALIGN_SOURCES}")
        if self.align_source == "timed" and (self.cross_align != "prior" or self.bert_dim):
            raise ValueError("model.align_source timed moves the alignment prior: it needs model.cross_align prior "
                             "and lyric ids as the memory (model.bert_dim 0)")
        if self.prior_kernel not in PRIOR_KERNELS:
            raise ValueError(f"model.prior_kernel {self.prior_kernel!r}: expected one of {PRIOR_KERNELS}")
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def window_frames(self) -> int:
        return self.max_tokens // self.num_codebooks
