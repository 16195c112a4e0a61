"""Find the songs of a corpus and what identifies their content, without decoding any audio.

A song is `DATASET/song_*/` with `lyrics.txt`, one `audio.{flac,wav,mp3,ogg}` and an optional
`genre.txt`. Scanning is cheap (hashes and headers only) so a rebuild can decide what to skip
before any heavy work is scheduled.
"""
from __future__ import annotations

import hashlib
import os
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from autosong.manifests import file_sha256
from autosong.manifests.errors import AutoSongError, os_error_words
from autosong.model.lyrics import normalize_genre
from autosong.model.text_encoding import decode_text

MAX_GENRE_CHARS = 64  # a genre is a name, not a paragraph: longer genre.txt lines are cut

# When a folder holds several audio files, lossless wins.
AUDIO_PREFERENCE = (".flac", ".wav", ".mp3", ".ogg")


@dataclass
class SongSource:
    key: str                 # the folder name, e.g. song_001
    folder: str
    audio: str | None
    lyrics: str | None
    genre: str               # normalised
    genre_source: str        # genre.txt | tag | default
    audio_sha256: str = ""
    lyrics_sha256: str = ""  # of lyrics.txt, or of lyrics.lrc, or of both
    lrc: str | None = None   # lyrics.lrc (timed lyrics), when the folder has one

    @property
    def content_sha256(self) -> str:
        """Everything that decides this song's sample: a change here means re-encode."""
        return hashlib.sha256(f"{self.audio_sha256}:{self.lyrics_sha256}:{self.genre}".encode()).hexdigest()


@dataclass
class ScanReject:
    key: str
    source: str
    reason: str


class StatCache:
    """(path, size, mtime_ns) -> (sha256, genre tag): a rebuild of an unchanged corpus reads no
    audio bytes. A file whose size or mtime changed is hashed again; one rewritten in place with
    the same size and mtime (rare: tools that restore mtimes) needs `--rehash`. Safe for the
    scan's threads (each path is looked up once; dict stores are atomic)."""

    def __init__(self, rows: list[dict] | None = None):
        self._old = {r["path"]: r for r in rows or []}
        self.rows: dict[str, dict] = {}
        self.hashed = 0  # files read in full by this scan
        self._lock = threading.Lock()

    def lookup(self, path: Path, tag: bool) -> tuple[str, str | None]:
        st = path.stat()
        row = self._old.get(str(path))
        if row is None or (row["size"], row["mtime_ns"]) != (st.st_size, st.st_mtime_ns) or (tag and not row["tagged"]):
            row = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(path),
                   "tag": tag_genre(path) if tag else None, "tagged": tag}
            with self._lock:
                self.hashed += 1
        self.rows[str(path)] = row
        return row["sha256"], row["tag"]


def tag_genre(audio: Path) -> str | None:
    """The genre tag of an mp3 (ID3 TCON), flac/ogg (Vorbis GENRE) or wav (ID3), if any."""
    import mutagen

    try:
        tags = mutagen.File(str(audio), easy=True)
    except (mutagen.MutagenError, OSError, ValueError):
        return None
    values = (tags or {}).get("genre") if tags is not None else None
    return values[0] if values else None


def find_audio(folder: Path) -> Path | None:
    for suffix in AUDIO_PREFERENCE:
        path = folder / f"audio{suffix}"
        if path.is_file():
            return path
    return None


def read_genre_file(path: Path) -> str | None:
    """The start of genre.txt as text (its encoding detected as lyrics' is), or None when it is
    not text: undecodable, or holding control characters other than line breaks and tabs."""
    decoded = decode_text(path.read_bytes()[:65536])
    if decoded is None:
        return None
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\r\t" for ch in decoded.text):
        return None
    return decoded.text


def scan_song(folder: Path, cache: StatCache | None = None) -> SongSource | ScanReject:
    """The song in `folder`, or a reject row saying why not (an unreadable file included)."""
    key = folder.name
    try:
        return _scan_song(folder, cache or StatCache())
    except OSError as err:
        return ScanReject(key, str(folder), os_error_words(err))


def _scan_song(folder: Path, cache: StatCache) -> SongSource | ScanReject:
    key = folder.name
    if "." in key:  # WebDataset keys end at the first dot
        return ScanReject(key, str(folder), "the folder name contains '.', which shard keys cannot hold: rename it")
    os.listdir(folder)  # an unlistable folder is refused by name, not mistaken for an empty one
    audio, lyrics, lrc = find_audio(folder), folder / "lyrics.txt", folder / "lyrics.lrc"
    for name in (lyrics, lrc):
        if name.is_dir():
            return ScanReject(key, str(name), f"{name.name} is a folder, not a file")
    if not lyrics.is_file() and not lrc.is_file():
        return ScanReject(key, str(folder), "no lyrics.txt (or timed lyrics.lrc) in the song folder")
    if audio is None:
        folders = [f"audio{s}" for s in AUDIO_PREFERENCE if (folder / f"audio{s}").is_dir()]
        if folders:
            return ScanReject(key, str(folder / folders[0]), f"{folders[0]} is a folder, not an audio file")
        links = [f"audio{s}" for s in AUDIO_PREFERENCE if (folder / f"audio{s}").is_symlink()]
        if links:  # is_file() follows it: a loop or a dangling link looks like no file at all
            return ScanReject(key, str(folder / links[0]), f"{links[0]} is a broken symlink or a symlink loop: "
                              "point it at an audio file")
        names = ", ".join(f"audio{s}" for s in AUDIO_PREFERENCE)
        return ScanReject(key, str(folder), f"no audio file (expected one of {names})")
    genre_file = folder / "genre.txt"
    genre_text = read_genre_file(genre_file) if genre_file.is_file() else ""
    if genre_text is None:
        return ScanReject(key, str(genre_file), "genre.txt is not text (binary or control bytes): write the genre "
                          "as one line of text, or delete the file to use the audio file's genre tag")
    audio_sha256, tagged = cache.lookup(audio, tag=not genre_text.strip())
    if genre_text.strip():
        genre, source = normalize_genre(genre_text), "genre.txt"
    elif tagged:
        genre, source = normalize_genre(tagged), "tag"
    else:
        genre, source = normalize_genre(None), "default"
    texts = [f for f in (lyrics, lrc) if f.is_file()]
    lyrics_sha256 = file_sha256(texts[0]) if len(texts) == 1 else \
        hashlib.sha256(":".join(file_sha256(f) for f in texts).encode()).hexdigest()
    return SongSource(key, str(folder), str(audio), str(lyrics) if lyrics.is_file() else None,
                      genre[:MAX_GENRE_CHARS], source, audio_sha256=audio_sha256, lyrics_sha256=lyrics_sha256,
                      lrc=str(lrc) if lrc.is_file() else None)


def scan_corpus(dataset: str | Path, cache: StatCache | None = None,
                workers: int | None = None) -> tuple[list[SongSource], list[ScanReject]]:
    """All `song_*` folders of `dataset`, sorted by key; other entries are ignored. A `song_*`
    entry that is a broken symlink or a symlink loop is a reject, not silently skipped. Folders
    are scanned by a thread pool (hashing and stat calls release the GIL); `cache` skips the
    hashing of unchanged audio files."""
    from concurrent.futures import ThreadPoolExecutor

    dataset = Path(dataset)
    if not dataset.is_dir():
        raise AutoSongError(f"dataset {dataset} is not a directory (expected DATASET/song_*/)")
    try:
        entries = sorted(p for p in dataset.iterdir() if p.name.startswith("song_"))
    except OSError as err:
        raise AutoSongError(f"{os_error_words(err, 'list')}: the dataset folder must be readable") from None
    cache = cache or StatCache()

    def scan(entry: Path) -> SongSource | ScanReject | None:
        if entry.is_dir():
            return scan_song(entry, cache)
        if entry.is_symlink():
            return ScanReject(entry.name, str(entry), "a broken symlink or a symlink loop: point it at a song folder")
        return None

    songs, rejects = [], []
    with ThreadPoolExecutor(max_workers=workers or min(16, 2 * (os.cpu_count() or 1))) as pool:
        for found in pool.map(scan, entries):  # in key order
            if found is not None:
                (songs if isinstance(found, SongSource) else rejects).append(found)
    if not songs and not rejects:
        raise AutoSongError(f"no song_* folders in {dataset}: each song is DATASET/song_NAME/ with lyrics.txt and audio.mp3|flac")
    return songs, rejects
