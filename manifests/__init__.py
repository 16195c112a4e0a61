"""The index of a built dataset: Parquet manifests and dataset.json, their schemas and versions.

Only this module writes or reads these files, so every stage agrees on one contract. Metadata
is readable without touching audio or shards. Files are written atomically (temp + rename):
a manifest exists under its final name only when complete. Imports nothing else of AutoSong.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = 1
SPLITS = ("train", "val")

SAMPLES = pa.schema([
    ("key", pa.string()),            # the song folder's name; the WebDataset __key__
    ("shard", pa.string()),          # shard file name under OUT/shards/
    ("source", pa.string()),         # audio path relative to the corpus
    ("genre", pa.string()),
    ("genre_source", pa.string()),   # genre.txt | tag | default
    ("duration_s", pa.float64()),    # encoded audio (after --max-seconds)
    ("frames", pa.int32()),          # T of codes [C, T]
    ("text_len", pa.int32()),        # lyric ids (or BERT positions)
    ("audio_sha256", pa.string()),
    ("lyrics_sha256", pa.string()),
    ("codes_sha256", pa.string()),   # of codes.npy's bytes in the shard, for verify
    ("lyrics_encoding", pa.string()),
    ("source_rate", pa.int32()),
    ("channels", pa.int16()),
    ("bad_packets", pa.int32()),     # damaged packets skipped while decoding
    ("split", pa.string()),
])
REJECTS = pa.schema([
    ("key", pa.string()),
    ("source", pa.string()),         # the song folder or file at fault
    ("stage", pa.string()),          # scan | lyrics | decode | encode | text
    ("reason", pa.string()),         # in words, for a person
    ("content_sha256", pa.string()), # so a rebuild does not retry an unchanged bad song
])
SHARDS = pa.schema([
    ("path", pa.string()),           # relative to OUT/shards
    ("samples", pa.int32()),
    ("bytes", pa.int64()),
    ("sha256", pa.string()),
])
STAT_CACHE = pa.schema([             # the scan's memo of audio hashes, so a rebuild reads no audio
    ("path", pa.string()),
    ("size", pa.int64()),
    ("mtime_ns", pa.int64()),
    ("sha256", pa.string()),
    ("tag", pa.string()),            # the file's genre tag, if it was read
    ("tagged", pa.bool_()),          # whether the tag was read
])
SCHEMAS = {"samples": SAMPLES, "rejects": REJECTS, "shards": SHARDS, "stat_cache": STAT_CACHE}


class ManifestError(Exception):
    """A dataset directory whose manifests are missing, of another version, or inconsistent."""


def split_for_key(key: str, val_fraction: float) -> str:
    """train/val as a function of the key alone: adding songs never moves an existing one."""
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "val" if u < val_fraction else "train"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (audio, lyrics and shards alike)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left when the write failed (disk full, ...)


def manifest_path(out: str | Path, kind: str) -> Path:
    return Path(out) / "manifests" / f"{kind}.parquet"


def write_manifest(out: str | Path, kind: str, rows: list[dict]) -> Path:
    """Write `rows` (dicts with exactly the schema's columns) as OUT/manifests/KIND.parquet."""
    schema = SCHEMAS[kind]
    for row in rows:
        if set(row) != set(schema.names):
            missing, extra = set(schema.names) - set(row), set(row) - set(schema.names)
            raise ManifestError(f"{kind} row {row.get('key')!r}: missing {sorted(missing)}, extra {sorted(extra)}")
    table = pa.Table.from_pylist(rows, schema=schema).replace_schema_metadata(
        {"autosong_schema_version": str(SCHEMA_VERSION)})
    path = manifest_path(out, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = pa.BufferOutputStream()  # in memory, so that a failed write is a plain OSError naming the path
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue().to_pybytes())
    return path


def read_manifest(out: str | Path, kind: str, missing_ok: bool = False) -> list[dict]:
    path = manifest_path(out, kind)
    if not path.exists():
        if missing_ok:
            return []
        raise ManifestError(f"{path} does not exist: is {out} the --out of a finished `autosong pipeline build`?")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise ManifestError(f"{path} is damaged ({type(err).__name__}: {err}): run `autosong pipeline build` "
                            "again to rebuild the index from the shards") from err
    version = (table.schema.metadata or {}).get(b"autosong_schema_version", b"?").decode()
    if version != str(SCHEMA_VERSION):
        raise ManifestError(f"{path} has schema version {version}, this AutoSong reads {SCHEMA_VERSION}: rebuild it")
    if set(table.schema.names) != set(SCHEMAS[kind].names):
        raise ManifestError(f"{path}: columns {table.schema.names} differ from the {kind} schema")
    return table.to_pylist()


@dataclass
class DatasetCard:
    """dataset.json: what the shards were built with, and what they hold."""

    codec: dict                        # CodecIdentity.to_dict()
    codec_frame_rate: int
    num_codebooks: int
    codebook_size: int
    text: dict                         # {"frontend": "pinyin"|"bert", "vocab_version", "vocab_sha256", ...}
    genres: list[str]                  # genre vocabulary; index = genre slot; 0 = unknown
    val_fraction: float
    max_seconds: float | None = None
    limits: dict = field(default_factory=dict)  # max_song_seconds, max_text_len, max_lyrics_bytes
    counts: dict = field(default_factory=dict)  # songs, train, val, rejects, shards, frames
    hours: float = 0.0
    parent: dict | None = None         # a latent dataset: {data, ae_run, ae_kind, stride, audio_codec}
    schema_version: int = SCHEMA_VERSION

    def genre_slot(self, genre: str) -> int:
        try:
            return self.genres.index(genre)
        except ValueError:
            raise ManifestError(f"unknown genre {genre!r}; known: {', '.join(self.genres)}") from None

    def save(self, out: str | Path) -> Path:
        path = Path(out) / "dataset.json"
        atomic_write_bytes(path, (json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n").encode())
        return path

    @classmethod
    def load(cls, out: str | Path) -> "DatasetCard":
        path = Path(out) / "dataset.json"
        if not path.exists():
            raise ManifestError(f"{path} does not exist: build the dataset with `autosong pipeline build DATASET --out {out}`")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not an object")
        except (ValueError, OSError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ManifestError(f"{path} is damaged ({err}): run `autosong pipeline build` again to rebuild "
                                "it from the shards") from err
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ManifestError(f"{path} has schema version {data.get('schema_version')}, expected {SCHEMA_VERSION}: rebuild it")
        try:
            return cls(**data)
        except TypeError as err:
            raise ManifestError(f"{path} is not a valid dataset card: {err}") from err
