"""`pipeline build`: corpus -> WebDataset shards + Parquet manifests, as a Ray Data job.

scan (driver, hashes only, a stat cache) -> decide what is new -> Ray actors decode + encode each
new song -> the driver streams results into atomic shards, appending one manifest part per shard
(pipeline/index.py) and compacting the manifests at the start and the end. A build
killed at any point and run again finishes the job: finished shards are kept (or adopted from
their meta.json), temporaries are dropped, and only songs not yet in a shard are encoded.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import sys
import tarfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from manifests import (DatasetCard, ManifestError, file_sha256, read_manifest, recorded_genres, split_for_key,
                       write_manifest)
from manifests.codec_identity import require_same_codec
from model.errors import AutoSongError, os_error_words
from model.lyrics import default_tokenizer
from pipeline.code_usage import CodeUsage
from manifests.sample_rows import META_FIELDS
from pipeline.genres import assign_genres, recover_genres, with_recorded_slots
from pipeline.index import DatasetIndex
from pipeline.scan import StatCache, scan_corpus
from pipeline.shards import ShardSink, final_shards, read_samples, read_shard_meta, remove_partial_shards
from pipeline.synth import corpus_rule


STOP_HOOK = "AUTOSONG_FAULT_STOP_AFTER_SHARDS"  # =N: the build stops itself (SIGSTOP) once it committed its
                                               # N-th shard, so a test can kill it at a point it knows


def _stop_if_asked(committed: int) -> None:
    if os.environ.get(STOP_HOOK) == str(committed):
        os.kill(os.getpid(), signal.SIGSTOP)


@dataclass
class BuildConfig:
    dataset: str
    out: str
    codec: str = "facebook/encodec_24khz"
    text: str = "pinyin"  # pinyin | bert:SRC
    max_seconds: float | None = None
    shard_samples: int = 64
    workers: int = 0  # 0: one per CPU of the local Ray
    ray_address: str | None = None
    val_fraction: float = 0.1
    max_song_seconds: float = 1200.0  # longer songs are rejected (unless --max-seconds crops them)
    max_text_len: int = 4096          # lyric ids; the presets' model.max_text_len
    rehash: bool = False              # ignore the stat cache: hash every audio file again
    gpus_per_worker: float = 0.0      # > 0: each encoder actor takes this share of a GPU (Ray num_gpus)
    songs_per_batch: int = 0          # songs per encoder call, equal windows batched; 0: 8 on GPUs, 1 on CPUs
    genres_from: str | None = None    # a card, run or export whose genre slots this build keeps

    def limits(self) -> dict:
        """What a sample may hold, stated in dataset.json and enforced per song."""
        return {"max_song_seconds": self.max_song_seconds, "max_text_len": self.max_text_len,
                "max_lyrics_bytes": 64 * self.max_text_len}


@dataclass
class BuildResult:
    built: int       # songs encoded in this run
    kept: int        # songs reused from earlier builds
    rejected: int    # all rejects in the manifest
    new_rejects: int
    card: DatasetCard
    hashed: int = 0         # audio files the scan read in full (the stat cache spared the rest)
    decode_s: float = 0.0   # actor time spent decoding + resampling (all songs of this run)
    encode_s: float = 0.0   # actor time spent in the codec
    audio_s: float = 0.0    # audio seconds built in this run
    # (seconds since the build started, audio seconds) of the first songs built, up to 64, and when
    # the last one was: a build's fixed start and its steady rate (bench/pipeline.py) come from these
    first_built: tuple = ()
    last_built_s: float = 0.0
    code_usage: CodeUsage | None = None  # of the songs encoded in this run


def text_identity(text: str) -> tuple[dict, object]:
    tok = default_tokenizer()
    ident = {"frontend": "pinyin", "vocab_version": tok.version, "vocab_sha256": tok.sha256}
    if text == "pinyin":
        return ident, None
    if not text.startswith("bert:"):
        raise AutoSongError(f"--text {text!r}: expected pinyin or bert:SRC (a directory, or bert:minilm)")
    from model.bert_text import BertLyrics

    bert = BertLyrics(text.split(":", 1)[1])
    return {**ident, "frontend": "bert", **bert.identity()}, bert


def _check_compatible(card: DatasetCard, codec, text: dict, cfg: BuildConfig) -> None:
    require_same_codec(card.codec, codec.identity, f"the songs in {cfg.out} and this build's --codec {cfg.codec}",
                       f"build into a new --out, or pass --codec {card.codec.source}")
    if card.text != text:
        raise AutoSongError(f"{cfg.out} was built with text front-end {card.text.get('frontend')} "
                            f"({card.text.get('bert_source', card.text.get('vocab_version'))}); this build asks for "
                            f"{cfg.text}: build into a new --out")
    if card.val_fraction != cfg.val_fraction or card.max_seconds != cfg.max_seconds:
        raise AutoSongError(f"{cfg.out} was built with --val-fraction {card.val_fraction} --max-seconds "
                            f"{card.max_seconds}; pass the same values or build into a new --out")


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
    except (tarfile.TarError, EOFError, ValueError, KeyError) as err:  # ValueError: bad JSON
        aside = path.with_name(path.name + ".damaged")
        print(f"warning: {path} is damaged ({type(err).__name__}: {err}); moved to {aside.name}, its songs "
              "are encoded again", file=sys.stderr)
        path.rename(aside)
        return []


def _known_rows(out: Path, shard_dir: Path, trust_manifests: bool = True) -> tuple[dict[str, dict], dict[str, dict]]:
    """Samples already in shards: the manifest's rows, plus rows adopted from shards that a
    killed build finished but never indexed (or whose manifests are damaged or untrusted).
    Returns (rows by key, shard rows by path)."""
    shard_rows = _read_index(out, "shards") if trust_manifests else None
    sample_rows = _read_index(out, "samples") if shard_rows is not None else None
    if sample_rows is None:  # either manifest lost: every shard is adopted from its own meta
        shard_rows = sample_rows = []
    # A deleted shard's songs are encoded again.
    shards = {r["path"]: r for r in shard_rows if (shard_dir / r["path"]).is_file()}
    rows = {r["key"]: r for r in sample_rows if r["shard"] in shards}
    for path in final_shards(shard_dir):
        if path.name in shards:
            continue
        metas = _shard_meta_or_set_aside(path)
        for meta in metas:
            rows[meta["key"]] = {**{f: meta[f] for f in META_FIELDS}, "shard": path.name}
        shards[path.name] = {"path": path.name, "samples": len(metas), "bytes": path.stat().st_size,
                             "sha256": file_sha256(path)}
    return rows, shards


def _compact_stale_shards(shard_dir: Path, samples: dict[str, dict], shard_rows: dict[str, dict]) -> None:
    """A shard that holds both indexed samples and replaced ones is rewritten with only the
    indexed ones (bytes copied, nothing re-encoded), so plain readers never see a stale copy.
    The old shard, then unreferenced, is deleted at the next commit."""
    live: dict[str, set[str]] = {}
    for row in samples.values():
        live.setdefault(row["shard"], set()).add(row["key"])
    for name, row in list(shard_rows.items()):
        keys = live.get(name, set())
        if 0 < len(keys) < row["samples"]:
            sink = ShardSink(shard_dir, len(keys))
            info = None
            for key, files in sorted(read_samples(shard_dir / name, keys).items()):
                info = sink.add({"__key__": key, **files})
            shard_rows[info.path] = info.row()
            for key in info.keys:
                samples[key] = {**samples[key], "shard": info.path}


def _start_ray(cfg: BuildConfig) -> tuple[bool, int]:
    import logging

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, private cluster: no token file
    import ray
    import ray.data  # configures its own loggers on import: quieten them after

    started = False
    if not ray.is_initialized():
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if cfg.ray_address:
            ray.init(address=cfg.ray_address, **quiet)
        else:
            # "local": always a private Ray of our own, never a cluster that RAY_ADDRESS or a
            # stale address in Ray's temp folder points at (a dead one fails to connect).
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                     object_store_memory=256 * 2**20, **quiet)
        started = True
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return started, cpus


def in_key_order(results, keys: list[str]):
    """`results` (rows with a "key", in any order) yielded in the order of `keys`. Actors finish in
    whatever order the machine allows; writing shards in the corpus's key order instead means two
    builds of one corpus hold the same songs in the same shards, so they train alike, and a killed
    build's re-run ends with the layout an uninterrupted one has. Early arrivals wait in memory
    (a song's codes and text: kilobytes)."""
    waiting, order = {}, iter(keys)
    want = next(order, None)
    for result in results:
        waiting[result["key"]] = result
        while want in waiting:
            yield waiting.pop(want)
            want = next(order, None)
    if want is not None or waiting:
        raise RuntimeError(f"the encoders returned no result for {want} ({len(waiting)} others left waiting)")


def _encode_with_ray(todo: list[dict], cfg: BuildConfig):
    """Yields one result row per song in `todo`, in completion order."""
    import ray

    from pipeline.encode import SongBatchEncoder, SongEncoder

    started, cpus = _start_ray(cfg)
    gpus = ray.cluster_resources().get("GPU", 0)
    if cfg.gpus_per_worker > 0 and gpus < cfg.gpus_per_worker:
        if started:
            ray.shutdown()
        raise AutoSongError(f"--gpus-per-worker {cfg.gpus_per_worker:g}: the Ray cluster has {gpus:g} GPUs; "
                            "drop the flag to encode on CPUs, or join a cluster with GPUs (--ray-address)")
    if cfg.gpus_per_worker > 0 and not cfg.workers:
        cpus = int(gpus / cfg.gpus_per_worker)  # one actor per GPU share
    workers = max(1, min(cfg.workers or cpus, len(todo)))
    # Whole CPUs per actor would leave none for Ray's own tasks on a small machine (a silent
    # deadlock on 2 CPUs): give each actor a fraction of a CPU.
    cpu_per_actor = min(1.0, max(0.1, (cpus - 0.25) / workers))
    try:
        ds = ray.data.from_items(todo, override_num_blocks=min(len(todo), 2000))
        # max_restarts=0: a song cannot kill its actor (decoding runs in a child process), so an
        # actor that dies anyway (the machine's OOM killer) fails the build instead of being
        # restarted without end; finished shards are kept for the next run. Ray 2.60 has no
        # named parameter for it yet and warns about the generic one.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*is deprecated")
            kwargs = {"codec_source": cfg.codec, "text": cfg.text, "max_seconds": cfg.max_seconds,
                      "limits": cfg.limits(), "device": "cuda" if cfg.gpus_per_worker > 0 else "cpu"}
            actors = dict(compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpu_per_actor,
                          num_gpus=cfg.gpus_per_worker or None, max_restarts=0)
            batch = cfg.songs_per_batch or (8 if cfg.gpus_per_worker > 0 else 1)
            if batch == 1:  # a song per call, a window per forward: codes independent of the batch
                ds = ds.map(SongEncoder, fn_constructor_kwargs=kwargs, **actors)
            else:  # several songs per call, their equal windows through the codec together
                ds = ds.map_batches(SongBatchEncoder, batch_size=batch, batch_format="numpy",
                                    fn_constructor_kwargs={**kwargs, "batch_windows": 4 * batch}, **actors)
        yield from ds.iter_rows()
    finally:
        if started:
            ray.shutdown()


def _progress(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="song", desc="encoding", disable=None, dynamic_ncols=True)


def build(cfg: BuildConfig) -> BuildResult:
    """Build (or update) the dataset in cfg.out. A problem with the output (unwritable, disk full)
    ends it with one AutoSongError naming the path; what was committed before stays intact."""
    out = Path(cfg.out)
    try:
        out.joinpath("shards").mkdir(parents=True, exist_ok=True)
        with open(out / ".build.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(lock.fileno()).st_ino != os.stat(out / ".build.lock").st_ino:
                    raise BlockingIOError  # a build that just ended removed it: another one may hold the new one
            except (BlockingIOError, FileNotFoundError):
                raise AutoSongError(f"another build is writing {out} (lock {out / '.build.lock'})") from None
            try:
                return _build(cfg, out)
            finally:  # removed while still held: no build is left waiting on a dead file
                (out / ".build.lock").unlink(missing_ok=True)
    except OSError as err:
        verb = "write" if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT) else "use"
        raise AutoSongError(f"{os_error_words(err, verb)}. {out} still holds every shard finished before this: "
                            "run the same build again once fixed, and it finishes the job") from err


def _build(cfg: BuildConfig, out: Path) -> BuildResult:
    from model.codec import Codec

    shard_dir = out / "shards"
    started = time.perf_counter()

    codec = Codec.load(cfg.codec)  # fails fast, before Ray starts, on a bad --codec
    text, _ = text_identity(cfg.text)
    old_card = None
    if (out / "dataset.json").exists():
        try:
            old_card = DatasetCard.load(out)
        except ManifestError as err:
            print(f"warning: {err}; recovering it from the shards' meta", file=sys.stderr)
    if old_card:
        _check_compatible(old_card, codec, text, cfg)
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
    todo = []
    for song in songs:
        row = known.get(song.key)
        if row and (row["audio_sha256"], row["lyrics_sha256"], row["genre"]) == (
                song.audio_sha256, song.lyrics_sha256, song.genre) and row["text_len"] <= cfg.max_text_len and (
                cfg.max_seconds is not None or row["duration_s"] <= cfg.max_song_seconds):
            samples[song.key] = row
        elif (song.key in old_rejects and old_rejects[song.key]["content_sha256"] == song.content_sha256
              and old_card and old_card.limits == cfg.limits()):
            rejects[song.key] = old_rejects[song.key]  # unchanged and still bad: do not retry
        else:
            todo.append({"key": song.key, "source": os.path.relpath(song.audio, cfg.dataset),
                         "audio": song.audio, "lyrics": song.lyrics, "genre": song.genre,
                         "genre_slot": slots.get(song.genre, 0), "genre_source": song.genre_source,
                         "audio_sha256": song.audio_sha256, "lyrics_sha256": song.lyrics_sha256,
                         "content_sha256": song.content_sha256, "split": split_for_key(song.key, cfg.val_fraction)})
    kept = len(samples)
    card = DatasetCard(codec=codec.identity, codec_frame_rate=codec.frame_rate,
                       num_codebooks=codec.num_codebooks, codebook_size=codec.codebook_size, text=text,
                       genres=genres, val_fraction=cfg.val_fraction, max_seconds=cfg.max_seconds, limits=cfg.limits(),
                       synth=corpus_rule(cfg.dataset))

    _compact_stale_shards(shard_dir, samples, shard_rows)
    index = DatasetIndex(out, card, samples, rejects, shard_rows)
    if todo:  # the index exact before new parts are appended to it (removed and replaced songs gone)
        index.compact()
    for key, row in rejects.items():  # the scan's
        if key not in old_rejects:
            print(f"rejected {key} (scan): {row['reason']}", file=sys.stderr)
    built, committed, pending = 0, 0, {}
    usage = CodeUsage(codec.num_codebooks, codec.codebook_size)  # of the songs this run encodes
    decode_s = encode_s = 0.0
    t0, seconds_done = time.time(), 0.0
    first_built, last_built = [], 0.0
    if todo:
        sink = ShardSink(shard_dir, cfg.shard_samples)
        by_key = {s["key"]: s for s in todo}
        # Any way out (an error, Ctrl-C) stops Ray and deletes the half-written shard.
        with _progress(len(todo)) as bar, contextlib.closing(_encode_with_ray(todo, cfg)) as results, sink.aborting():
            for result in in_key_order(results, [song["key"] for song in todo]):
                song = by_key[result["key"]]
                bar.update(1)
                decode_s, encode_s = decode_s + result["decode_s"], encode_s + result["encode_s"]
                if not result["ok"]:
                    index.reject({"key": song["key"], "source": song["source"], "stage": result["stage"],
                                  "reason": result["reason"], "content_sha256": song["content_sha256"]})
                    bar.write(f"rejected {song['key']} ({result['stage']}): {result['reason']}", file=sys.stderr)
                    continue
                if result["warning"]:
                    bar.write(f"warning: {song['key']}: {result['warning']}", file=sys.stderr)
                meta = json.loads(result["meta"])
                usage.add_npy(result["codes"])
                sample = {"__key__": song["key"], "codes.npy": result["codes"], "text.npy": result["text"],
                          "lyrics.txt": result["lyrics"], "meta.json": result["meta"]}
                if result["bert"]:
                    sample["bert.npy"] = result["bert"]
                pending[song["key"]] = {f: meta[f] for f in META_FIELDS}
                index.unreject(song["key"])
                last_built = time.perf_counter() - started
                if len(first_built) < 64:
                    first_built.append((last_built, meta["duration_s"]))
                seconds_done += meta["duration_s"]
                built += 1
                bar.set_postfix(hours=f"{seconds_done / 3600:.2f}", songs_per_min=f"{60 * built / (time.time() - t0):.1f}")
                shard = sink.add(sample)
                if shard:
                    index.add_shard(shard, [{**pending.pop(key), "shard": shard.path} for key in shard.keys])
                    committed += 1
                    _stop_if_asked(committed)
            shard = sink.finish()
            if shard:
                index.add_shard(shard, [{**pending.pop(key), "shard": shard.path} for key in shard.keys])
    index.compact()
    new_rejects = sum(1 for key in rejects if key not in old_rejects)
    return BuildResult(built, kept, len(rejects), new_rejects, card, cache.hashed, decode_s, encode_s,
                       audio_s=seconds_done, first_built=tuple(first_built), last_built_s=last_built,
                       code_usage=usage)
