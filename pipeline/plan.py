"""A build's plan: what OUT already holds and what the corpus holds now, so what to keep, what to
encode and what stays rejected, decided before any song is encoded and before OUT changes.

The plan reads the index (or, when it is lost or damaged, every shard's own meta), scans the
corpus with the stat cache, gives each genre its slot, and turns each new or changed song into a
`SongJob`. It needs the codec only to recover a lost dataset.json (to check the shards' codec).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from autosong.manifests import (DatasetCard, ManifestError, file_sha256, read_manifest, recorded_genres, split_for_key,
                                write_manifest)
from autosong.manifests.errors import AutoSongError
from autosong.manifests.sample_rows import DEFAULTS, META_FIELDS
from autosong.manifests.shard_reader import DamagedShard, read_shard_meta
from autosong.model.key_shift import shift_to_c
from autosong.pipeline.encode import SongJob
from autosong.pipeline.genres import assign_genres, recover_genres, with_recorded_slots
from autosong.pipeline.scan import StatCache, scan_corpus
from autosong.pipeline.shards import final_shards, remove_partial_shards


@dataclass
class BuildPlan:
    old_card: DatasetCard | None      # OUT's dataset.json, if readable
    genres: list[str]                 # the genre slots this build writes
    samples: dict[str, dict]          # manifest rows of the songs kept, by key
    shard_rows: dict[str, dict]       # OUT's shards, by path
    rejects: dict[str, dict]          # this scan's rejects and the unchanged old ones, by key
    old_rejects: dict[str, dict]      # the rejects OUT held before
    jobs: list[SongJob]               # the songs to encode, in key order
    hashed: int                       # audio files the scan read in full (the stat cache spared the rest)


def check_settings(card: DatasetCard, text: dict, cfg) -> None:
    """What an existing OUT fixes, besides its codec: the text front-end, the split, the crop, the keys."""
    if card.text != text:
        raise AutoSongError(f"{cfg.out} was built with text front-end {card.text.get('frontend')} "
                            f"({card.text.get('bert_source', card.text.get('vocab_version'))}); this build asks for "
                            f"{cfg.text}: build into a new --out")
    if card.val_fraction != cfg.val_fraction or card.max_seconds != cfg.max_seconds:
        raise AutoSongError(f"{cfg.out} was built with --val-fraction {card.val_fraction} --max-seconds "
                            f"{card.max_seconds}; pass the same values or build into a new --out")
    if card.key_normalised != cfg.key_normalise:
        raise AutoSongError(f"{cfg.out} was built {'with' if card.key_normalised else 'without'} --key-normalise; "
                            f"pass the same, or build into a new --out")


def plan_build(cfg, out: Path, text: dict, codec) -> BuildPlan:
    """`cfg`: the BuildConfig; `text`: this build's text identity; `codec()`: the loaded codec
    (called only when dataset.json is lost)."""
    shard_dir = out / "shards"
    old_card = None
    if (out / "dataset.json").exists():
        try:
            old_card = DatasetCard.load(out)
        except ManifestError as err:
            print(f"warning: {err}; recovering it from the shards' meta", file=sys.stderr)
    if old_card:
        check_settings(old_card, text, cfg)
    remove_partial_shards(shard_dir)
    # Without a readable dataset.json the manifests cannot be trusted either: every row is
    # re-read from the shards' own meta, and the genre vocabulary recovered from it.
    if old_card:
        genres = list(old_card.genres)
    else:
        metas = ((path.name, meta) for path in final_shards(shard_dir) for meta in _shard_meta_or_set_aside(path))
        genres = recover_genres(metas, codec, text, out, shard_dir)
    if cfg.genres_from:
        genres = with_recorded_slots(genres, recorded_genres(cfg.genres_from), cfg.genres_from)
    known, shard_rows = _known_rows(out, shard_dir, trust_manifests=old_card is not None)
    if not old_card:
        known = {k: {**r, "split": split_for_key(k, cfg.val_fraction)} for k, r in known.items()}
    old_rejects = {r["key"]: r for r in _read_index(out, "rejects") or []}

    cache = StatCache(None if cfg.rehash else _read_index(out, "stat_cache"))
    songs, scan_rejects = scan_corpus(cfg.dataset, cache)
    write_manifest(out, "stat_cache", sorted(cache.rows.values(), key=lambda r: r["path"]))
    slots = assign_genres(songs, genres)

    samples: dict[str, dict] = {}
    rejects: dict[str, dict] = {r.key: {"key": r.key, "source": r.source, "stage": "scan", "reason": r.reason,
                                        "content_sha256": ""} for r in scan_rejects}
    jobs = []
    for song in songs:
        row = known.get(song.key)
        if row and (row["audio_sha256"], row["lyrics_sha256"], row["genre"]) == (
                song.audio_sha256, song.lyrics_sha256, song.genre) and row["text_len"] <= cfg.max_text_len and (
                cfg.max_seconds is not None or row["duration_s"] <= cfg.max_song_seconds) and (
                len(row.get("line_slots") or ()) == len(row.get("line_starts_s") or ())  # built before line_slots
                and row.get("key_signatures") is not None  # built before keys were heard: encode again
                # moved otherwise (dataset.json lost, and the other --key-normalise given): encode again
                and (row.get("key_shift") or 0) == (shift_to_c(row["key_signatures"]) if cfg.key_normalise else 0)):
            samples[song.key] = row
        elif (song.key in old_rejects and old_rejects[song.key]["content_sha256"] == song.content_sha256
              and old_card and old_card.limits == cfg.limits()):
            rejects[song.key] = old_rejects[song.key]  # unchanged and still bad: do not retry
        else:
            jobs.append(SongJob(song.key, os.path.relpath(song.audio, cfg.dataset), str(song.audio), song.lyrics,
                                song.genre, slots.get(song.genre, 0), song.genre_source, song.audio_sha256,
                                song.lyrics_sha256, song.content_sha256, split_for_key(song.key, cfg.val_fraction),
                                song.lrc))
    return BuildPlan(old_card, genres, samples, shard_rows, rejects, old_rejects, jobs, cache.hashed)


def _read_index(out: Path, kind: str) -> list[dict] | None:
    """A manifest's rows ([] if absent); None if it is damaged (the shards' meta rebuilds it)."""
    try:
        return read_manifest(out, kind, missing_ok=True)
    except ManifestError:
        print(f"warning: {out}/manifests/{kind}.parquet is damaged; rebuilding it from the shards' meta",
              file=sys.stderr)
        return None


def _shard_meta_or_set_aside(path: Path) -> list[dict]:
    """The meta of an unindexed shard; a damaged one is renamed to *.damaged (its songs are
    encoded again) so that no reader of shards/*.tar meets it."""
    try:
        return read_shard_meta(path)
    except (DamagedShard, ValueError, KeyError) as err:  # ValueError: bad JSON
        set_aside(path, f"{type(err.__cause__ or err).__name__}: {err.__cause__ or err}")
        return []


def set_aside(path: Path, why: str) -> None:
    """Rename a damaged shard to *.damaged, so no reader of shards/*.tar meets it; its songs are
    encoded again."""
    aside = path.with_name(path.name + ".damaged")
    print(f"warning: {path} is damaged ({why}); moved to {aside.name}, its songs are encoded again", file=sys.stderr)
    path.rename(aside)


def _known_rows(out: Path, shard_dir: Path, trust_manifests: bool = True) -> tuple[dict[str, dict], dict[str, dict]]:
    """Samples already in shards: the manifest's rows, plus rows adopted from shards that a
    killed build finished but never indexed (or whose manifests are damaged or untrusted).
    Returns (rows by key, shard rows by path)."""
    shard_rows = _read_index(out, "shards") if trust_manifests else None
    sample_rows = _read_index(out, "samples") if shard_rows is not None else None
    if sample_rows is None:  # either manifest lost: every shard is adopted from its own meta
        shard_rows = sample_rows = []
    # A deleted shard's songs are encoded again, and so are those of a shard whose bytes are not
    # the ones recorded (truncated, a flipped byte): it is set aside first.
    shards = {}
    for r in shard_rows:
        path = shard_dir / r["path"]
        if not path.is_file():
            continue
        if path.stat().st_size != r["bytes"] or file_sha256(path) != r["sha256"]:
            set_aside(path, "its size or sha256 is not the one shards.parquet recorded")
            continue
        shards[r["path"]] = r
    rows = {r["key"]: r for r in sample_rows if r["shard"] in shards}
    for path in final_shards(shard_dir):
        if path.name in shards:
            continue
        metas = _shard_meta_or_set_aside(path)
        for meta in metas:
            rows[meta["key"]] = {**{f: meta.get(f, DEFAULTS[f]) if f in DEFAULTS else meta[f] for f in META_FIELDS},
                                 "shard": path.name}
        shards[path.name] = {"path": path.name, "samples": len(metas), "bytes": path.stat().st_size,
                             "sha256": file_sha256(path)}
    return rows, shards
