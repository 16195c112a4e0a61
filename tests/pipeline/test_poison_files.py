"""A corpus of odd but real files, run through `autosong pipeline build` as a user runs it: every
song is built or rejected with a reason, one that crashes the decoder included, unreadable files
(as a user without root's permission bypass) too, and the build exits 0 in bounded time."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from autosong.pipeline.decode_worker import CRASH_HOOK
from autosong.pipeline.synth import synth_corpus
from autosong.pipeline.verify import verify


def unprivileged(cmd: list[str]) -> list[str] | None:
    """`cmd` run without the power to bypass file permissions: root drops CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH (setpriv), so mode-000 files really are unreadable; others run it as is."""
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", *cmd]


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "autosong_cli", *args]


def _song(root: Path, key: str, lyrics="[verse]\nla la la\n", genre="pop") -> Path:
    folder = root / key
    folder.mkdir()
    if lyrics is not None:
        (folder / "lyrics.txt").write_bytes(lyrics if isinstance(lyrics, bytes) else lyrics.encode())
    if genre is not None:
        (folder / "genre.txt").write_text(genre, encoding="utf-8")
    return folder


def _zeroed(data: bytearray, start: float, end: float) -> bytes:
    """`data` with the stretch from `start` to `end` (shares of its length) zeroed, as bit rot leaves it."""
    out = bytearray(data)
    a, b = int(start * len(out)), int(end * len(out))
    out[a:b] = bytes(b - a)
    return bytes(out)


def _tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.repeat((0.3 * np.sin(2 * np.pi * 330 * t))[:, None], channels, axis=1).astype(np.float32)


def make_fuzz_corpus(root: Path, outside: Path, permissions: bool) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Returns (built: key -> what to check, rejected: key -> (stage, words in the reason))."""
    synth_corpus(root, songs=2, seconds=2, seed=5)  # song_000 (mp3), song_001 (flac)
    mp3 = (root / "song_000" / "audio.mp3").read_bytes()
    flac = (root / "song_001" / "audio.flac").read_bytes()
    built = {"song_000": "", "song_001": ""}
    rejected = {}

    nan = _tone(2, 24000, 2)
    nan[1000:1010, 0] = np.nan
    sf.write(_song(root, "song_nan") / "audio.wav", nan, 24000, subtype="FLOAT")
    rejected["song_nan"] = ("decode", "NaN or infinite")
    sf.write(_song(root, "song_all_nan") / "audio.wav", np.full((48000, 2), np.nan, np.float32), 24000, subtype="FLOAT")
    rejected["song_all_nan"] = ("decode", "(100 % of the audio)")
    (_song(root, "song_audio_folder") / "audio.flac").mkdir()
    rejected["song_audio_folder"] = ("scan", "audio.flac is a folder")
    lyrics_folder = _song(root, "song_lyrics_folder", lyrics=None)
    (lyrics_folder / "lyrics.txt").mkdir()
    (lyrics_folder / "audio.mp3").write_bytes(b"")
    rejected["song_lyrics_folder"] = ("scan", "lyrics.txt is a folder")
    inf = _tone(2, 24000)
    inf[:] = np.inf
    sf.write(_song(root, "song_inf") / "audio.wav", inf, 24000, subtype="FLOAT")
    rejected["song_inf"] = ("decode", "NaN or infinite")
    sf.write(_song(root, "song_8ch_96k") / "audio.wav", _tone(2, 96000, 8), 96000, subtype="FLOAT")
    built["song_8ch_96k"] = "8 channels at 96 kHz"  # FFmpeg's own resampler segfaulted on this file
    sf.write(_song(root, "song_8k_mono") / "audio.flac", _tone(2, 8000), 8000)
    built["song_8k_mono"] = ""
    sf.write(_song(root, "song_blip") / "audio.flac", _tone(0.05, 24000), 24000)
    rejected["song_blip"] = ("decode", "too short")
    sf.write(_song(root, "song_long_silence") / "audio.flac", np.zeros(600 * 8000, np.float32), 8000)
    rejected["song_long_silence"] = ("decode", "too long")  # 10 min against --max-song-seconds 300
    (_song(root, "song_mp3_named_flac") / "audio.flac").write_bytes(mp3)
    built["song_mp3_named_flac"] = ""
    (_song(root, "song_flac_named_mp3") / "audio.mp3").write_bytes(flac)
    built["song_flac_named_mp3"] = ""
    two = _song(root, "song_two_audio")
    (two / "audio.mp3").write_bytes(mp3)
    (two / "audio.flac").write_bytes(flac)
    built["song_two_audio"] = "audio.flac"  # lossless wins
    for key in ("song_with spaces", "song_ünïcode_歌"):
        (_song(root, key) / "audio.mp3").write_bytes(mp3)
        built[key] = ""
    (_song(root, "song_v1.2") / "audio.mp3").write_bytes(mp3)
    rejected["song_v1.2"] = ("scan", "contains '.'")
    target = _song(outside, "elsewhere")
    (target / "audio.mp3").write_bytes(mp3)
    (root / "song_symlinked").symlink_to(target, target_is_directory=True)
    built["song_symlinked"] = ""
    (root / "song_loop").symlink_to(root / "song_loop")
    rejected["song_loop"] = ("scan", "symlink loop")
    (_song(root, "song_huge_lyrics", lyrics="la " * 1_700_000) / "audio.mp3").write_bytes(mp3)  # 5 MB
    rejected["song_huge_lyrics"] = ("lyrics", "MB")
    (_song(root, "song_long_lyrics", lyrics="la\n" * 3000) / "audio.mp3").write_bytes(mp3)  # ids > 4096
    rejected["song_long_lyrics"] = ("text", "above the limit of 4096")
    (_song(root, "song_blank_lyrics", lyrics=" \n\t\n \u3000\n") / "audio.mp3").write_bytes(mp3)
    rejected["song_blank_lyrics"] = ("lyrics", "empty")
    (_song(root, "song_only_tags", lyrics="[verse]\n[chorus]\n") / "audio.mp3").write_bytes(mp3)
    built["song_only_tags"] = ""  # tags are lyrics tokens: a song of sections with no words
    scripts = "🎵🎶 la\nمرحبا بالعالم\nかなカナ\n한국어 노래\nzero\u200bwidth\u200d\n\u202eRTL\u202c text\n"
    (_song(root, "song_scripts", lyrics=scripts) / "audio.mp3").write_bytes(mp3)
    built["song_scripts"] = ""
    sf.write(_song(root, "song_mp3_hole") / "audio.mp3", _tone(10, 24000), 24000)
    whole = bytearray((root / "song_mp3_hole" / "audio.mp3").read_bytes())
    (_song(root, "song_mp3_scratch") / "audio.mp3").write_bytes(_zeroed(whole, 0.50, 0.53))
    built["song_mp3_scratch"] = "a 3 % hole: built, the rest kept"
    (root / "song_mp3_hole" / "audio.mp3").write_bytes(_zeroed(whole, 0.40, 0.60))
    rejected["song_mp3_hole"] = ("decode", "undecodable region at 3.")  # 4-6 s of a whole file, not "truncated"
    french = "[verse]\nCafé crème, très bien, déjà vu\nà la française, garçon\n"
    (_song(root, "song_latin1", lyrics=french.encode("latin-1")) / "audio.mp3").write_bytes(mp3)
    built["song_latin1"] = "cp1252"  # a general detector read it as cp1257: "crčme"
    (_song(root, "song_weak_encoding", lyrics="あなたが好き".encode("euc_jp")) / "audio.mp3").write_bytes(mp3)
    built["song_weak_encoding"] = "a warning line"  # 12 bytes decide little
    (_song(root, "song_long_genre", genre="../" * 100) / "audio.mp3").write_bytes(mp3)
    built["song_long_genre"] = "genre cut"
    binary_genre = _song(root, "song_binary_genre", genre=None)
    (binary_genre / "genre.txt").write_bytes(bytes(range(32)) * 4)
    (binary_genre / "audio.mp3").write_bytes(mp3)
    rejected["song_binary_genre"] = ("scan", "genre.txt is not text")
    (_song(root, "song_audio_loop") / "audio.mp3").symlink_to("audio.mp3")  # a link to itself
    rejected["song_audio_loop"] = ("scan", "audio.mp3 is a broken symlink or a symlink loop")
    (_song(root, "song_crash") / "audio.mp3").write_bytes(mp3)
    rejected["song_crash"] = ("decode", "crashed on this file (signal 11, SIGSEGV")
    if permissions:
        for key, name in (("song_noread_audio", "audio.mp3"), ("song_noread_lyrics", "lyrics.txt"),
                          ("song_noread_genre", "genre.txt")):
            folder = _song(root, key)
            (folder / "audio.mp3").write_bytes(mp3)
            (folder / name).chmod(0)
            rejected[key] = ("scan", f"{name}: permission denied")
        folder = _song(root, "song_unlistable")
        (folder / "audio.mp3").write_bytes(mp3)
        folder.chmod(0)
        rejected["song_unlistable"] = ("scan", "song_unlistable: permission denied")
    return built, rejected


@pytest.fixture(scope="module")
def fuzz_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    build_cmd = cli("pipeline", "build", str(root / "dataset"), "--out", str(root / "out"), "--codec", "test",
                    "--max-song-seconds", "300", "--shard-samples", "4")
    cmd = unprivileged(build_cmd)
    (root / "dataset").mkdir()
    (root / "outside").mkdir()
    built, rejected = make_fuzz_corpus(root / "dataset", root / "outside", permissions=cmd is not None)
    if cmd is None:
        cmd = build_cmd  # root without setpriv: the permission cases are left out
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, CRASH_HOOK: "song_crash"})
    yield root / "out", built, rejected, done, time.time() - t0
    for folder in (root / "dataset").iterdir():  # let pytest clean up what was made unreadable
        if folder.is_dir() and not folder.is_symlink():
            folder.chmod(0o755)
            for f in folder.iterdir():
                if not f.is_symlink():  # a link (a loop among them) has no mode of its own to restore
                    f.chmod(0o644)


def test_every_fuzz_case_is_built_or_rejected_with_its_reason(fuzz_build):
    out, built, rejected, done, seconds = fuzz_build
    assert done.returncode == 0, done.stderr[-3000:]
    assert seconds < 300
    samples = {r["key"]: r for r in pq.read_table(out / "manifests/samples.parquet").to_pylist()}
    rejects = {r["key"]: r for r in pq.read_table(out / "manifests/rejects.parquet").to_pylist()}
    assert sorted(samples) == sorted(built)
    assert sorted(rejects) == sorted(rejected)
    for key, (stage, words) in rejected.items():
        assert rejects[key]["stage"] == stage and words in rejects[key]["reason"], rejects[key]
    assert (samples["song_8ch_96k"]["channels"], samples["song_8ch_96k"]["source_rate"]) == (8, 96000)
    assert samples["song_two_audio"]["source"].endswith("audio.flac")
    assert len(samples["song_long_genre"]["genre"]) <= 64
    assert samples["song_latin1"]["lyrics_encoding"] == "cp1252"
    assert samples["song_mp3_scratch"]["bad_packets"] >= 1 and samples["song_mp3_scratch"]["duration_s"] > 9


def test_the_fuzz_build_states_its_limits_keeps_them_and_verifies(fuzz_build):
    out, built, _, done, _ = fuzz_build
    card = json.loads((out / "dataset.json").read_text())
    assert card["limits"]["max_text_len"] == 4096 and card["limits"]["max_song_seconds"] == 300
    rows = pq.read_table(out / "manifests/samples.parquet").to_pylist()
    assert max(r["text_len"] for r in rows) <= 4096 and max(r["duration_s"] for r in rows) <= 300
    assert verify(out) == (len(built), [])


def test_the_fuzz_build_prints_one_line_per_reject_and_no_tracebacks(fuzz_build):
    _, _, rejected, done, _ = fuzz_build
    lines = done.stderr.strip().splitlines()  # no Ray log lines, no worker-crash spam, no traceback
    lines = [line for line in lines if not line.startswith("encoding: ")]  # plain progress (stderr is a file)
    notes = [line for line in lines if line.startswith("note: ")]
    assert len(notes) == 1 and "--codec test has random weights" in notes[0], notes  # what the codec is for
    lines = [line for line in lines if line not in notes]
    assert all("songs (" in line for line in done.stderr.splitlines() if line.startswith("encoding: "))
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(warnings) == 1 and "song_weak_encoding: lyrics.txt: read as" in warnings[0], warnings
    assert "a weak guess" in warnings[0] and "save the file as UTF-8" in warnings[0]
    rejects = [line for line in lines if line not in warnings]
    assert sorted(line.split()[1] for line in rejects) == sorted(rejected), lines
    assert all(line.startswith("rejected ") for line in rejects)
    assert f"rejected {len(rejected)} ({len(rejected)} new)" in done.stdout


def test_an_unwritable_out_is_one_line_naming_it(tmp_path):
    synth_corpus(tmp_path / "dataset", songs=1, seconds=1, seed=2)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    cmd = unprivileged(cli("pipeline", "build", str(tmp_path / "dataset"), "--out", str(locked / "out"),
                           "--codec", "test"))
    if cmd is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("autosong: error: cannot write ") and str(locked / "out") in line
    assert "permission denied" in line


def _tiny_disk(path: Path) -> bool:
    """A 1 MiB tmpfs at `path` where the machine lets us mount one (root in most containers)."""
    path.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_ends_the_build_in_one_line_and_the_next_build_finishes(tmp_path, ray_local, monkeypatch):
    from autosong.manifests import read_manifest
    from autosong.manifests.errors import AutoSongError
    from autosong.pipeline.build import BuildConfig, build

    corpus = tmp_path / "dataset"
    synth_corpus(corpus, songs=2, seconds=1, seed=4)
    disk = tmp_path / "disk"
    real = _tiny_disk(disk)
    try:
        out = disk / "out"
        build(BuildConfig(str(corpus), str(out), codec="test", shard_samples=1))
        def index():
            return {kind: sorted(map(str, read_manifest(out, kind))) for kind in ("samples", "rejects", "shards")}

        before = index()
        shutil.copytree(corpus / "song_000", corpus / "song_new")
        (corpus / "song_new" / "lyrics.txt").write_text("[verse]\nnew words here\n")
        (corpus / "song_new" / "lyrics.lrc").unlink(missing_ok=True)  # its timed lyrics said the old words
        if real:
            filler = _fill(disk)
        else:  # no tmpfs to fill: the shard writer meets the error a full disk gives
            import webdataset

            def no_space(self, obj):
                raise OSError(28, os.strerror(28))

            monkeypatch.setattr(webdataset.TarWriter, "write", no_space)
        with pytest.raises(AutoSongError) as err:
            build(BuildConfig(str(corpus), str(out), codec="test", shard_samples=1))
        message = str(err.value)
        assert message.startswith(f"cannot write {out}") and "no space left on the device" in message
        assert "run the same build again" in message
        assert index() == before  # as it was
        assert verify(out) == (2, []) and not list((out / "shards").glob(".shard-*"))

        if real:
            filler.unlink()
        else:
            monkeypatch.undo()
        again = build(BuildConfig(str(corpus), str(out), codec="test", shard_samples=1))
        assert (again.built, again.kept) == (1, 2) and verify(out) == (3, [])
    finally:
        if real:
            subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize("case,stage,words", [
    ("lyrics vanished", "lyrics", "does not exist"), ("audio vanished", "decode", "does not exist"),
    ("audio is a directory", "decode", "is a directory"),
])
def test_a_song_whose_files_change_after_the_scan_is_a_reject_row(case, stage, words, tmp_path):
    from autosong.pipeline.build import BuildConfig
    from autosong.pipeline.encode import SongEncoder, SongJob

    synth_corpus(tmp_path / "c", songs=1, seconds=1, seed=1)
    folder = tmp_path / "c" / "song_000"
    audio, lyrics = next(folder.glob("audio.*")), folder / "lyrics.txt"
    if case == "lyrics vanished":
        lyrics.unlink()
    elif case == "audio vanished":
        audio.unlink()
    else:
        audio.unlink()
        audio.mkdir()
    encoder = SongEncoder("test", "pinyin", None, BuildConfig("c", "o").limits())
    [row] = encoder.encode_songs([SongJob("song_000", "song_000", str(audio), str(lyrics), "pop", 1, "genre.txt",
                                          "", "", "", "train")])
    assert not row.ok and row.stage == stage and words in row.reason and str(folder) in row.reason, row


def test_a_first_build_that_fails_leaves_no_out_folder(tmp_path):
    from autosong.manifests.errors import AutoSongError
    from autosong.pipeline.build import BuildConfig, build

    (tmp_path / "dataset" / "not_a_song").mkdir(parents=True)  # no song_* folder: refused at the scan
    with pytest.raises(AutoSongError, match="no song_\\* folders"):
        build(BuildConfig(str(tmp_path / "dataset"), str(tmp_path / "out"), codec="test"))
    assert not (tmp_path / "out").exists()  # no empty shards/ and stat cache left to puzzle over
