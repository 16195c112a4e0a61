import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from autosong.pipeline.synth import synth_corpus

GOOD = ["song_000", "song_001", "song_002", "song_003", "song_latin1", "song_tagged", "song_garbled"]
BAD = {  # key -> (stage, words the reason must contain)
    "song_truncated": ("decode", "truncated"),
    "song_empty": ("decode", "empty"),
    "song_random": ("decode", "not a readable audio file"),
    "song_nolyrics": ("scan", "no lyrics.txt"),
    "song_noaudio": ("scan", "no audio file"),
}


def make_mixed_corpus(root: Path, seconds: float = 3.0) -> Path:
    """Good mp3/flac songs plus every kind of damage a real corpus has."""
    synth_corpus(root, songs=4, seconds=seconds, seed=11)  # song_000..003, mp3 and flac
    src_mp3 = root / "song_000" / "audio.mp3"
    data = src_mp3.read_bytes()
    rng = np.random.default_rng(0)

    def song(key, lyrics="[verse]\n我爱你 hello\n", audio_name=None, audio_bytes=None, genre="pop"):
        d = root / key
        d.mkdir()
        if lyrics is not None:
            (d / "lyrics.txt").write_bytes(lyrics.encode() if isinstance(lyrics, str) else lyrics)
        if audio_name:
            (d / audio_name).write_bytes(audio_bytes)
        if genre:
            (d / "genre.txt").write_text(genre)
        return d

    song("song_truncated", audio_name="audio.mp3", audio_bytes=data[: len(data) // 2])
    song("song_empty", audio_name="audio.mp3", audio_bytes=b"")
    song("song_random", audio_name="audio.flac", audio_bytes=rng.bytes(30_000))
    song("song_nolyrics", lyrics=None, audio_name="audio.mp3", audio_bytes=data)
    song("song_noaudio")
    song("song_latin1", lyrics="[verse]\nCafé résumé, déjà vu\n".encode("latin-1"), audio_name="audio.mp3",
         audio_bytes=data, genre="chanson")
    garbled = bytearray(data)
    garbled[len(data) // 3 : len(data) // 3 + 3000] = rng.bytes(3000)
    song("song_garbled", audio_name="audio.mp3", audio_bytes=bytes(garbled), genre="rock")
    tagged = song("song_tagged", genre=None)
    wav, sr = sf.read(root / "song_001" / "audio.flac")
    sf.write(tagged / "audio.flac", wav, sr, format="FLAC")
    import mutagen.flac

    f = mutagen.flac.FLAC(tagged / "audio.flac")
    f["genre"] = "Reggaeton, Latin"
    f.save()
    (root / "README.txt").write_text("not a song")
    (root / "notes").mkdir()
    return root


@pytest.fixture(scope="session")
def mixed_corpus(tmp_path_factory):
    return make_mixed_corpus(tmp_path_factory.mktemp("corpus") / "dataset")


@pytest.fixture(scope="session")
def built(mixed_corpus, tmp_path_factory, ray_local):
    from autosong.pipeline.build import BuildConfig, build

    out = tmp_path_factory.mktemp("built") / "out"
    result = build(BuildConfig(str(mixed_corpus), str(out), codec="test", shard_samples=3))
    return out, result


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
