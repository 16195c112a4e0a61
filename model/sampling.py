"""How songs are sampled: the settings `generate`, `eval`, the demo, the studio and bench/sing.py
share, and their defaults (chosen by bench/sing.py, bench/RESULTS.md "Singing"). No torch here, so
the command lines (autosong/command_line.py's sampling flags) read the defaults without loading it."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from autosong.model.config_checks import check_ranges, ranged


@dataclass(kw_only=True)
class SamplingConfig:
    temperature: float = ranged(0.25, low=0)  # 0 = greedy (argmax); low: songs sing their notes (bench/sing.py)
    top_k: int = ranged(250, low=0)
    top_p: float = ranged(0.0, low=0, high=1)  # 0 = off
    note_hold: float = ranged(4.0, low=0)  # nats a note just begun is held by (model/code_notes.py); 0 = off
    note_fade: float = ranged(0.25, low=0)  # seconds over which that hold fades to none
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
