"""A built dataset's songs as typed records: one `SampleRow` per row of the samples manifest."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class SampleRow:
    key: str              # the song folder's name; the WebDataset __key__
    shard: str            # shard file name under OUT/shards/
    source: str           # audio path relative to the corpus
    genre: str
    genre_source: str     # genre.txt | tag | default
    duration_s: float     # encoded audio (after --max-seconds)
    frames: int           # T of codes [C, T]
    text_len: int         # lyric ids (or BERT positions)
    audio_sha256: str
    lyrics_sha256: str
    codes_sha256: str     # of codes.npy's bytes in the shard
    lyrics_encoding: str
    source_rate: int
    channels: int
    bad_packets: int      # damaged packets skipped while decoding
    split: str            # train | val
    line_starts_s: tuple[float, ...] = ()  # lyrics.lrc: when each sung line starts (empty: untimed)
    line_slots: tuple[int, ...] = ()       # each of those lines' first memory slot (-1: words not paired)

    def to_dict(self) -> dict:
        return {**asdict(self), "line_starts_s": list(self.line_starts_s), "line_slots": list(self.line_slots)}

    @classmethod
    def from_dict(cls, row: dict) -> "SampleRow":
        """From a manifest row or a sample's meta.json; fields added since default for older ones."""
        return cls(**{name: row[name] for name in SAMPLE_ROW_FIELDS if name not in DEFAULTS},
                   **{name: tuple(row.get(name) or default) for name, default in DEFAULTS.items()})


SAMPLE_ROW_FIELDS = tuple(f.name for f in fields(SampleRow))
DEFAULTS = {"line_starts_s": (), "line_slots": ()}  # fields older rows and meta.json files lack
META_FIELDS = tuple(f for f in SAMPLE_ROW_FIELDS if f != "shard")  # what each sample's meta.json repeats


def read_sample_rows(out: str | Path, split: str | None = None) -> list[SampleRow]:
    """The current samples of a built dataset (one split, or all), in key order."""
    from manifests import read_manifest

    rows = (SampleRow.from_dict(r) for r in read_manifest(out, "samples"))
    return sorted((r for r in rows if split is None or r.split == split), key=lambda r: r.key)
