"""A built dataset's songs as typed records: one `SampleRow` per row of the samples manifest.

`SampleRow` is the only declaration of a row: the samples manifest's Parquet schema, the columns
older manifests may lack, and what each sample's meta.json repeats all come from its fields.
"""
from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields

import pyarrow as pa


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
    codes_sha256: str     # of codes.npy's bytes in the shard, for verify
    lyrics_encoding: str
    source_rate: int
    channels: int = field(metadata={"arrow": pa.int16()})
    bad_packets: int      # damaged packets skipped while decoding
    split: str            # train | val
    # Added since the first manifests (older ones lack them): a field with a default is optional.
    line_starts_s: tuple[float, ...] = ()  # lyrics.lrc: when each sung line starts (empty: untimed)
    line_slots: tuple[int, ...] = ()       # each of those lines' first memory slot (-1: words not paired)
    key_signatures: tuple[int, ...] = ()   # heard in the audio: the key signatures (0-11, by major tonic) that fit
                                           # it best, best first (model/song_key.py); empty: unknown
    key_shift: int = 0                     # semitones the audio was moved before encoding (pipeline build
                                           # --key-normalise: to C major / A minor, model/key_shift.py); 0: as heard

    def to_dict(self) -> dict:
        return {**asdict(self), **{name: list(getattr(self, name)) for name, default in DEFAULTS.items()
                                   if isinstance(default, tuple)}}  # Parquet and JSON take lists

    def meta(self) -> dict:
        """What a sample's meta.json repeats of its row: all but the shard it lies in."""
        return {name: value for name, value in self.to_dict().items() if name != "shard"}

    @classmethod
    def from_dict(cls, row: dict) -> "SampleRow":
        """From a manifest row or a sample's meta.json (any other keys ignored); optional fields
        default where an older row lacks them."""
        return cls(**{name: row[name] for name in SAMPLE_ROW_FIELDS if name not in DEFAULTS},
                   **{name: _optional(row.get(name), default) for name, default in DEFAULTS.items()})


def _optional(value, default):
    """An optional field's value from a row that may lack it (None there: the default)."""
    if value is None:
        return default
    return tuple(value) if isinstance(default, tuple) else type(default)(value)


# How an annotation is stored in Parquet (a field's metadata "arrow" says otherwise).
_ARROW = {"str": pa.string(), "float": pa.float64(), "int": pa.int32(),
          "tuple[float, ...]": pa.list_(pa.float64()), "tuple[int, ...]": pa.list_(pa.int32())}

SAMPLE_ROW_FIELDS = tuple(f.name for f in fields(SampleRow))
DEFAULTS = {f.name: f.default for f in fields(SampleRow) if f.default is not MISSING}  # optional columns
META_FIELDS = tuple(f for f in SAMPLE_ROW_FIELDS if f != "shard")  # what each sample's meta.json repeats
SAMPLE_SCHEMA = pa.schema([(f.name, f.metadata.get("arrow") or _ARROW[f.type]) for f in fields(SampleRow)])
