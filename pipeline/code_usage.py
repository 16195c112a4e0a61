"""How many of the codec's codes a dataset's songs use, per codebook. A collapsed codec turns all
music into a handful of codes; a model trained on them reaches a low loss that means nothing, so
`pipeline build` and `pipeline inspect` say how many are used and warn when it is degenerate."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from autosong.manifests.shard_reader import read_samples

DEGENERATE_BELOW = 32  # distinct codes in a codebook over all songs seen: fewer is a collapsed codec
INSPECT_SONGS = 256    # songs `inspect` reads (from the first shards) to count


class CodeUsage:
    """Distinct codes per codebook, over all songs added and per song."""

    def __init__(self, num_codebooks: int, codebook_size: int):
        self.size = codebook_size
        self.seen = np.zeros((num_codebooks, codebook_size), dtype=bool)
        self.per_song: list[list[int]] = []

    def add(self, codes: np.ndarray) -> None:
        """codes [C, T] of one song."""
        distinct = []
        for q, row in enumerate(np.asarray(codes)):
            values = np.unique(row)
            self.seen[q, values[(values >= 0) & (values < self.size)]] = True
            distinct.append(len(values))
        self.per_song.append(distinct)

    def add_npy(self, npy: bytes) -> None:
        self.add(np.load(io.BytesIO(npy), allow_pickle=False))

    def line(self) -> str:
        """'codes used  q0 612/1024 (91 per song)  q1 ...  (over 640 songs)'."""
        per_song = np.mean(self.per_song, axis=0) if self.per_song else np.zeros(len(self.seen))
        parts = [f"q{q} {int(self.seen[q].sum())}/{self.size} ({per_song[q]:.0f} per song)" for q in range(len(self.seen))]
        return f"codes used  {'  '.join(parts)}  (over {len(self.per_song)} songs)"

    def warning(self) -> str | None:
        low = [q for q in range(len(self.seen)) if self.seen[q].sum() < DEGENERATE_BELOW]
        if not self.per_song or not low:
            return None
        return (f"warning: codebook(s) {', '.join(f'q{q}' for q in low)} use fewer than {DEGENERATE_BELOW} of "
                f"{self.size} codes over {len(self.per_song)} songs: the codec has collapsed (a model trained on "
                f"these codes learns nothing); use another --codec, or train the codec longer")


def dataset_code_usage(out: str | Path, samples: list[dict], num_codebooks: int, codebook_size: int,
                       limit: int = INSPECT_SONGS) -> CodeUsage:
    """Code usage of up to `limit` songs of a built dataset (its shards in order)."""
    usage = CodeUsage(num_codebooks, codebook_size)
    by_shard: dict[str, set[str]] = {}
    for row in samples:
        by_shard.setdefault(row["shard"], set()).add(row["key"])
    for shard in sorted(by_shard):
        if len(usage.per_song) >= limit:
            break
        path = Path(out) / "shards" / shard
        if not path.is_file():
            continue
        for files in read_samples(path, by_shard[shard]).values():
            if len(usage.per_song) < limit and "codes.npy" in files:
                usage.add_npy(files["codes.npy"])
    return usage
