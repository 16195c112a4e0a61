"""`pipeline build`: corpus -> WebDataset shards + Parquet manifests, encoded by Ray actors.

Two steps. The plan (pipeline/plan.py: the index, a scan with a stat cache, genre slots, the
songs to encode as jobs) while the driver's codec loads in a thread and, as soon as there are
jobs, the encoder actors start (pipeline/encoder_pool.py). Then the commit: results streamed in
corpus key order into atomic shards, one manifest part appended per shard (pipeline/index.py),
the manifests compacted at the start and the end. A build killed at any point and run again
finishes the job: finished shards are kept (or adopted from their meta.json), temporaries are
dropped, and only songs not yet in a shard are encoded.
"""
from __future__ import annotations

import errno
import os
import signal
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from autosong.manifests import DatasetCard
from autosong.manifests.codec_identity import require_same_codec
from autosong.manifests.errors import AutoSongError, os_error_words
from autosong.manifests.folder_lock import folder_lock
from autosong.manifests.progress import progress
from autosong.manifests.shard_reader import read_samples
from autosong.model.bert_text import BertLyrics
from autosong.model.codec import Codec
from autosong.model.lyrics import default_tokenizer
from autosong.pipeline.code_usage import CodeUsage
from autosong.pipeline.encode import CodecFacts, EncodedSong, SongJob
from autosong.pipeline.encoder_pool import EncoderPool
from autosong.pipeline.index import DatasetIndex
from autosong.pipeline.plan import plan_build
from autosong.pipeline.shards import ShardCommitter, ShardSink, final_shards
from autosong.pipeline.synth import corpus_rule


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
    key_normalise: bool = False       # move every song to C major / A minor before encoding (model/key_shift.py)

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

    bert = BertLyrics(text.split(":", 1)[1])
    return {**ident, "frontend": "bert", **bert.identity()}, bert


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


def in_key_order(results, keys: list[str]):
    """`results` (anything with a `key`, in any order) yielded in the order of `keys`. Actors finish in
    whatever order the machine allows; writing shards in the corpus's key order instead means two
    builds of one corpus hold the same songs in the same shards, so they train alike, and a killed
    build's re-run ends with the layout an uninterrupted one has. Early arrivals wait in memory
    (a song's codes and text: kilobytes)."""
    waiting, order = {}, iter(keys)
    want = next(order, None)
    for result in results:
        waiting[result.key] = result
        while want in waiting:
            yield waiting.pop(want)
            want = next(order, None)
    if want is not None or waiting:
        raise RuntimeError(f"the encoders returned no result for {want} ({len(waiting)} others left waiting)")


def _progress(total: int):
    return progress(total, "encoding", "song")


def build(cfg: BuildConfig) -> BuildResult:
    """Build (or update) the dataset in cfg.out. A problem with the output (unwritable, disk full)
    ends it with one AutoSongError naming the path; what was committed before stays intact."""
    out = Path(cfg.out)
    new = not out.exists()
    try:
        return _locked_build(cfg, out)
    except BaseException:
        if new and not final_shards(out / "shards"):  # a first build that made nothing leaves nothing
            shutil.rmtree(out, ignore_errors=True)
        raise


def _locked_build(cfg: BuildConfig, out: Path) -> BuildResult:
    try:
        out.joinpath("shards").mkdir(parents=True, exist_ok=True)
        with folder_lock(out, ".build.lock", "a build"):
            return _build(cfg, out)
    except OSError as err:
        verb = "write" if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT) else "use"
        raise AutoSongError(f"{os_error_words(err, verb, out)}. {out} still holds every shard finished before this: "
                            "run the same build again once fixed, and it finishes the job") from err


class _DriverCodec:
    """The codec in the driver, loaded on first use only: the plan needs it to recover a lost
    dataset.json, and a build with nothing to encode to check OUT's codec. Otherwise the
    encoder actors load it, and the driver takes its facts from them."""

    def __init__(self, source: str):
        self.source, self._codec = source, None

    def at_hand(self) -> bool:
        """Whether the actors can load the codec without the driver's help: a name shipped with
        AutoSong, a directory, or a hub id already in the local cache. Otherwise (a file, a typo,
        a hub id still to download) the driver loads it first: a bad --codec fails in one line
        before Ray starts, and the download happens once, not once per actor."""
        if self.source in ("tiny", "test") or Path(self.source).expanduser().is_dir():  # model/codec.py's names
            # (importing it here would load torch in the driver)
            return True
        from huggingface_hub import try_to_load_from_cache

        try:
            return isinstance(try_to_load_from_cache(self.source, "config.json"), str)
        except ValueError:  # not a valid hub id either
            return False

    def __call__(self):
        if self._codec is None:
            self._codec = Codec.load(self.source)
        return self._codec


def _build(cfg: BuildConfig, out: Path) -> BuildResult:
    started = time.perf_counter()
    codec = _DriverCodec(cfg.codec)
    text, _ = text_identity(cfg.text)
    plan = plan_build(cfg, out, text, codec)
    kept = len(plan.samples)
    if plan.jobs and not codec.at_hand():
        codec()
    pool = EncoderPool(cfg, len(plan.jobs)) if plan.jobs else None  # its actors load while the driver goes on
    try:
        c = (pool and pool.codec_facts()) or CodecFacts.of(codec())
        if plan.old_card:  # before anything in OUT changes
            require_same_codec(plan.old_card.codec, c.identity, f"the songs in {cfg.out} and this build's --codec "
                               f"{cfg.codec}", f"build into a new --out, or pass --codec {plan.old_card.codec.source}")
        card = DatasetCard(codec=c.identity, codec_frame_rate=c.frame_rate, num_codebooks=c.num_codebooks,
                           codebook_size=c.codebook_size, text=text, genres=plan.genres, val_fraction=cfg.val_fraction,
                           max_seconds=cfg.max_seconds, limits=cfg.limits(), synth=corpus_rule(cfg.dataset),
                           key_normalised=cfg.key_normalise)
        note = codec_note(cfg.codec, card.synth is not None, cfg.dataset)
        if note and plan.jobs:
            print(f"note: {note}", file=sys.stderr)
        _compact_stale_shards(out / "shards", plan.samples, plan.shard_rows)
        index = DatasetIndex(out, card, plan.samples, plan.rejects, plan.shard_rows)
        if plan.jobs:  # the index exact before new parts are appended to it (removed and replaced songs gone)
            index.compact()
        for key, row in plan.rejects.items():  # the scan's
            if key not in plan.old_rejects:
                print(f"rejected {key} (scan): {row['reason']}", file=sys.stderr)
        progress = _BuildProgress(started, c.num_codebooks, c.codebook_size)
        if pool is not None:
            _encode_and_commit(plan.jobs, pool, index, progress, cfg, out)
    finally:
        if pool is not None:
            pool.close()
    index.compact()
    new_rejects = sum(1 for key in plan.rejects if key not in plan.old_rejects)
    return BuildResult(progress.built, kept, len(plan.rejects), new_rejects, card,
                       plan.hashed, progress.decode_s, progress.encode_s, audio_s=progress.audio_s,
                       first_built=tuple(progress.first_built), last_built_s=progress.last_built_s,
                       code_usage=progress.usage)


def codec_note(codec: str, synth: bool, dataset: str) -> str | None:
    """What the offline codecs are for, said when a build uses one on a corpus it does not suit."""
    if codec == "test":
        return ("--codec test has random weights: its codes train a model, but every song decodes to a hum "
                "(for tests and smoke runs)")
    if codec == "tiny" and not synth:
        return (f"--codec tiny was trained on synth songs only: on real music it comes out quieter and loses the "
                f"upper bands (measure it: `autosong codec check {dataset} --codec tiny`); for real songs offline, "
                f"train one on them: `autosong codec train --data {dataset} --out codecs/mine`, then --codec codecs/mine")
    return None


@dataclass
class _BuildProgress:
    """What this run built, and when (BuildResult's figures)."""

    started: float
    num_codebooks: int
    codebook_size: int
    built: int = 0
    audio_s: float = 0.0
    decode_s: float = 0.0
    encode_s: float = 0.0
    last_built_s: float = 0.0

    def __post_init__(self):
        self.first_built: list[tuple[float, float]] = []
        self.usage = CodeUsage(self.num_codebooks, self.codebook_size)

    def add(self, song: EncodedSong) -> None:
        self.decode_s, self.encode_s = self.decode_s + song.decode_s, self.encode_s + song.encode_s
        if not song.ok:
            return
        self.usage.add_npy(song.codes)
        self.last_built_s = time.perf_counter() - self.started
        if len(self.first_built) < 64:
            self.first_built.append((self.last_built_s, song.meta["duration_s"]))
        self.audio_s += song.meta["duration_s"]
        self.built += 1


def _encode_and_commit(jobs: list[SongJob], pool: EncoderPool, index: DatasetIndex, progress: _BuildProgress,
                       cfg: BuildConfig, out: Path) -> None:
    """Every job through the encoders, each result written in corpus key order: a sample into the
    shard being written (each finished shard indexed at once), a failure as a reject row."""
    committed = 0

    def on_shard(info, rows) -> None:
        nonlocal committed
        index.add_shard(info, rows)
        committed += 1
        _stop_if_asked(committed)

    sink = ShardSink(out / "shards", cfg.shard_samples)
    committer = ShardCommitter(sink, on_shard)
    by_key, t0 = {job.key: job for job in jobs}, time.time()
    # Any way out (an error, Ctrl-C) deletes the half-written shard; the caller stops the actors.
    with _progress(len(jobs)) as bar, sink.aborting():
        for song in in_key_order(pool.encode(jobs), list(by_key)):
            job = by_key[song.key]
            bar.update(1)
            progress.add(song)
            if not song.ok:
                index.reject({"key": job.key, "source": job.source, "stage": song.stage, "reason": song.reason,
                              "content_sha256": job.content_sha256})
                bar.write(f"rejected {job.key} ({song.stage}): {song.reason}", file=sys.stderr)
                continue
            if song.warning:
                bar.write(f"warning: {job.key}: {song.warning}", file=sys.stderr)
            index.unreject(job.key)
            bar.set_postfix(hours=f"{progress.audio_s / 3600:.2f}",
                            songs_per_min=f"{60 * progress.built / (time.time() - t0):.1f}")
            committer.add(song.sample(), song.row())
        committer.finish()
