"""How songs are sampled: the settings `generate`, `eval`, the demo, the studio and bench/sing.py
share, and their defaults (chosen by bench/sing.py, bench/RESULTS.md "Singing"). No torch here, so
the command lines read the defaults without loading it."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from model.config_checks import check_ranges, ranged


@dataclass(kw_only=True)
class SamplingConfig:
    temperature: float = ranged(0.25, low=0)  # 0 = greedy (argmax); low: songs sing their notes (bench/sing.py)
    top_k: int = ranged(250, low=0)
    top_p: float = ranged(0.0, low=0, high=1)  # 0 = off
    guidance: float = ranged(3.0, low=0)  # classifier-free guidance weight (--cfg); 1 = no guidance
    lyric_guidance: float | None = None  # weight of what the lyrics add over the genre alone; None = guidance
    seed: int = ranged(0, low=0)
    context: float = ranged(0.5, low=0, high=0.95)  # past the window: the fraction of a window each new one continues
    compile: bool = False     # decode steps compiled over a static cache (torch.compile; CUDA graphs on a GPU)

    def __post_init__(self):
        check_ranges(self, "sampling")
        if self.lyric_guidance is not None and not (isinstance(self.lyric_guidance, (int, float))
                                                    and 0 <= self.lyric_guidance < float("inf")):
            raise ValueError(f"sampling.lyric_guidance must be a number of at least 0, got {self.lyric_guidance!r}")

    def guidance_terms(self) -> list[tuple[str, float]]:
        """The memories one step is run with and the weight of each one's difference from the last
        (the base): [("cond", 1.0)] unguided; else some of cond, genre_only and null, base last."""
        w = self.guidance
        w_lyrics = w if self.lyric_guidance is None else self.lyric_guidance
        if w == 1.0 and w_lyrics == 1.0:
            return [("cond", 1.0)]
        if w_lyrics == w:  # plain classifier-free guidance
            return [("cond", w), ("null", 0.0)]
        if w == 1.0:  # lyric-only guidance: the genre-only memory is the base
            return [("cond", w_lyrics), ("genre_only", 0.0)]
        return [("cond", w_lyrics), ("genre_only", w - w_lyrics), ("null", 0.0)]

    def to_dict(self) -> dict:
        return asdict(self)


def add_sampling_arguments(parser) -> None:
    """--temperature, --top-k, --top-p, --cfg, --lyric-cfg, --seed on an argparse parser, each
    defaulting to SamplingConfig's field: one set of defaults for every command that samples."""
    from autosong.command_line import real, whole

    d = SamplingConfig()
    parser.add_argument("--temperature", type=real(0), default=d.temperature, help="0 = greedy")
    parser.add_argument("--top-k", type=whole(0), default=d.top_k, help="0 = off")
    parser.add_argument("--top-p", type=real(0, 1), default=d.top_p, help="0 = off")
    parser.add_argument("--cfg", type=real(0), default=d.guidance, help="classifier-free guidance weight (1 = off)")
    parser.add_argument("--lyric-cfg", type=real(0), default=d.lyric_guidance,
                        help="weight of what the lyrics add over the genre alone (default: --cfg's)")
    parser.add_argument("--seed", type=whole(0), default=d.seed)


def sampling_from_args(args, **fields) -> SamplingConfig:
    """The SamplingConfig that add_sampling_arguments' flags ask for (plus `fields`)."""
    return SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, guidance=args.cfg,
                          lyric_guidance=args.lyric_cfg, seed=args.seed, **fields)
