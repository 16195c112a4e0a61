"""The index of a built dataset: Parquet manifests and dataset.json, their schemas and versions.

Only this module writes or reads these files, so every stage agrees on one contract. Metadata
is readable without touching audio or shards. Files are written atomically (temp + rename):
a manifest exists under its final name only when complete. Imports nothing else of AutoSong.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from autosong.manifests.codec_identity import CodecIdentity
from autosong.manifests.errors import ManifestError  # noqa: F401  (raised here; importers take it from manifests too)
from autosong.manifests.sample_rows import DEFAULTS, SAMPLE_SCHEMA

SCHEMA_VERSION = 2  # manifests as folders of parts (1: one file per manifest, still read)
CARD_VERSION = 1

OPTIONAL_COLUMNS = {"samples": set(DEFAULTS)}  # added since: older manifests lack them
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
SCHEMAS = {"samples": SAMPLE_SCHEMA,  # from SampleRow's fields (manifests/sample_rows.py)
           "rejects": REJECTS, "shards": SHARDS, "stat_cache": STAT_CACHE}


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
    except OSError as err:
        if err.filename is None:  # a failed write() names no file: name it
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    finally:
        tmp.unlink(missing_ok=True)  # only left when the write failed (disk full, ...)


# Each manifest is a folder of Parquet parts, OUT/manifests/KIND.parquet/ (the Spark/Dask layout:
# pyarrow, pandas and duckdb read the folder as one table). A build writes a small `part-N` per
# committed shard (cost flat in the dataset's size) and rewrites the whole as one `base-N` only at
# its start and end (compaction); the current table is the newest base plus the parts after it,
# the last row of a key winning. A crash between writing a base and deleting what it replaces can
# leave older files beside it: read_manifest ignores them and the next write removes them.
_PART = re.compile(r"^(base|part)-(\d{8})\.parquet$")
_KEYS = {"samples": "key", "rejects": "key", "shards": "path", "stat_cache": "path"}


def manifest_path(out: str | Path, kind: str) -> Path:
    return Path(out) / "manifests" / f"{kind}.parquet"


def _parts(folder: Path) -> list[tuple[int, str, Path]]:
    """(sequence, base|part, path) of a manifest folder's files, oldest first."""
    found = []
    for path in folder.iterdir():
        m = _PART.match(path.name)
        if m:
            found.append((int(m.group(2)), m.group(1), path))
    return sorted(found)


def _current(folder: Path) -> list[tuple[int, str, Path]]:
    parts = _parts(folder)
    bases = [i for i, (_, kind, _) in enumerate(parts) if kind == "base"]
    return parts[bases[-1]:] if bases else parts


def _table_bytes(kind: str, rows: list[dict]) -> bytes:
    schema = SCHEMAS[kind]
    for row in rows:
        if set(row) != set(schema.names):
            missing, extra = set(schema.names) - set(row), set(row) - set(schema.names)
            raise ManifestError(f"{kind} row {row.get('key')!r}: missing {sorted(missing)}, extra {sorted(extra)}")
    table = pa.Table.from_pylist(rows, schema=schema).replace_schema_metadata(
        {"autosong_schema_version": str(SCHEMA_VERSION)})
    buf = pa.BufferOutputStream()  # in memory, so that a failed write is a plain OSError naming the path
    pq.write_table(table, buf)
    return buf.getvalue().to_pybytes()


def _next_sequence(folder: Path) -> int:
    parts = _parts(folder)
    return parts[-1][0] + 1 if parts else 0


def _as_folder(path: Path) -> Path:
    if path.is_file():  # the single-file layout of schema 1: replaced by the folder
        path.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_manifest(out: str | Path, kind: str, rows: list[dict]) -> Path:
    """The whole manifest KIND as `rows` (dicts with exactly the schema's columns): a new base,
    then every older file of the folder removed. O(rows): for the start and end of a build."""
    folder = _as_folder(manifest_path(out, kind))
    data = _table_bytes(kind, rows)
    base = folder / f"base-{_next_sequence(folder):08d}.parquet"
    atomic_write_bytes(base, data)
    for _, _, path in _parts(folder):
        if path != base:
            path.unlink(missing_ok=True)
    return folder


def append_manifest(out: str | Path, kind: str, rows: list[dict]) -> Path | None:
    """Add `rows` to manifest KIND as one new part (a row whose key is already there replaces
    it). O(len(rows)), whatever the manifest's size: for every committed shard."""
    if not rows:
        return None
    folder = _as_folder(manifest_path(out, kind))
    part = folder / f"part-{_next_sequence(folder):08d}.parquet"
    atomic_write_bytes(part, _table_bytes(kind, rows))
    return part


def _read_table(path: Path, kind: str, accept: tuple[str, ...]) -> list[dict]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise ManifestError(f"{path} is damaged ({type(err).__name__}: {err}): run `autosong pipeline build` "
                            "again to rebuild the index from the shards") from err
    version = (table.schema.metadata or {}).get(b"autosong_schema_version", b"?").decode()
    if version not in accept:
        raise ManifestError(f"{path} has schema version {version}, this AutoSong reads {SCHEMA_VERSION}: rebuild it")
    names, known = set(table.schema.names), set(SCHEMAS[kind].names)
    if not (known - OPTIONAL_COLUMNS.get(kind, set()) <= names <= known):
        raise ManifestError(f"{path}: columns {table.schema.names} differ from the {kind} schema")
    return table.to_pylist()


def read_manifest(out: str | Path, kind: str, missing_ok: bool = False) -> list[dict]:
    """The current rows of manifest KIND (the newest base, then its parts; a key's last row wins)."""
    path = manifest_path(out, kind)
    if path.is_file():  # schema 1: one file, rewritten whole
        return _read_table(path, kind, accept=("1",))
    parts = _current(path) if path.is_dir() else []
    if not parts:
        if missing_ok:
            return []
        raise ManifestError(f"{path} does not exist: is {out} the --out of a finished `autosong pipeline build`?")
    rows: dict[str, dict] = {}
    for _, _, part in parts:
        for row in _read_table(part, kind, accept=(str(SCHEMA_VERSION),)):
            rows[row[_KEYS[kind]]] = row
    return list(rows.values())


UNUSED_SLOT = "<unused slot {}>"  # a slot whose genre no surviving shard names


def changed_genre_slots(trained: list[str], current: list[str]) -> list[tuple[int, str, str]]:
    """(slot, trained genre, current genre) for each slot a model learned whose meaning changed;
    slots added since, and slots that held no genre, are not changes."""
    return [(i, old, current[i] if i < len(current) else "(none)") for i, old in enumerate(trained)
            if old != UNUSED_SLOT.format(i) and (i >= len(current) or current[i] != old)]


def require_same_genre_slots(trained: list[str], current: list[str], data: str, model: str, fix: str) -> None:
    """One line when `data`'s genre slots give a slot that `model` learned another meaning."""
    changed = changed_genre_slots(trained, current)
    if changed:
        slot, old, new = changed[0]
        raise ManifestError(f"{data}'s genre slot {slot} is {new!r}, but {model} learned it as {old!r} "
                            f"({len(changed)} slot(s) changed): {fix}")


def require_same_keys(trained: bool, card: "DatasetCard", data: str, model: str) -> None:
    """One line when `model` learned songs moved to C (pipeline build --key-normalise) and `data`'s
    are in their own keys, or the other way round: its codes would mean other notes."""
    if bool(trained) != card.key_normalised:
        moved = "songs moved to C (--key-normalise)"
        raise ManifestError(f"{model} learned {moved if trained else 'songs in their own keys'} and {data} holds "
                            f"{moved if card.key_normalised else 'songs in their own keys'}: build the data "
                            f"{'with' if trained else 'without'} --key-normalise")


def recorded_genres(path: str | Path) -> list[str]:
    """The genre slots a dataset card, a run or an export recorded: `path` is OUT/dataset.json,
    RUN/run_config.json, RUN/export/config.json, or a folder holding one of them."""
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in ("dataset.json", "run_config.json", "export/config.json", "config.json")
                 if (path / n).is_file()]
        if not found:
            raise ManifestError(f"--genres {path}: holds no dataset.json, run_config.json or export/config.json")
        path = found[0]
    try:
        genres = json.loads(path.read_text())["genres"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ManifestError(f"--genres {path}: no genre list to read ({type(err).__name__}: {err})") from None
    if not (isinstance(genres, list) and genres and all(isinstance(g, str) for g in genres)):
        raise ManifestError(f"--genres {path}: 'genres' is not a list of genre names")
    return genres


def _holds_song_folders(folder: Path) -> bool:
    """Whether `folder` looks like a corpus: sub-folders holding lyrics.txt or lyrics.lrc."""
    try:
        return any((d / "lyrics.txt").is_file() or (d / "lyrics.lrc").is_file()
                   for d in list(folder.iterdir())[:200] if d.is_dir())
    except OSError:
        return False


@dataclass
class DatasetCard:
    """dataset.json: what the shards were built with, and what they hold."""

    codec: CodecIdentity               # stored as its JSON object
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
    synth: str | None = None           # the rule of `pipeline synth` that wrote the corpus: eval can then
                                       # score whether generated songs sing their lyrics' notes
    key_normalised: bool = False       # every song moved to C major / A minor before encoding (its row's
                                       # key_shift): its models sing in C, and generate moves songs back
    schema_version: int = CARD_VERSION

    def __post_init__(self):
        self.codec = CodecIdentity.of(self.codec)

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
            if _holds_song_folders(Path(out)):
                raise ManifestError(f"{out} is a folder of songs, not a built dataset: build it with `autosong "
                                    f"pipeline build {out} --out DATA` and pass DATA")
            raise ManifestError(f"{path} does not exist: build the dataset with `autosong pipeline build SONGS "
                                f"--out {out}` (SONGS: your folder of song folders)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not an object")
        except (ValueError, OSError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ManifestError(f"{path} is damaged ({err}): run `autosong pipeline build` again to rebuild "
                                "it from the shards") from err
        if data.get("schema_version") != CARD_VERSION:
            raise ManifestError(f"{path} has schema version {data.get('schema_version')}, expected {CARD_VERSION}: rebuild it")
        try:
            return cls(**data)
        except (TypeError, KeyError) as err:
            raise ManifestError(f"{path} is not a valid dataset card: {err}") from err
