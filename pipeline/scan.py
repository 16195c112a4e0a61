"""Find the songs of a corpus and what identifies their content, without decoding any audio.

A song is `DATASET/song_*/` with `lyrics.txt`, one `audio.{flac,wav,mp3,ogg}` and an optional
`genre.txt`. Scanning is cheap (hashes and headers only) so a rebuild can decide what to skip
before any heavy work is scheduled.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from manifests import file_sha256
from model.errors import os_error_words
from model.lyrics import normalize_genre

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
    lyrics_sha256: str = ""

    @property
    def content_sha256(self) -> str:
        """Everything that decides this song's sample: a change here means re-encode."""
        return hashlib.sha256(f"{self.audio_sha256}:{self.lyrics_sha256}:{self.genre}".encode()).hexdigest()


@dataclass
class ScanReject:
    key: str
    source: str
    reason: str


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


def scan_song(folder: Path) -> SongSource | ScanReject:
    """The song in `folder`, or a reject row saying why not (an unreadable file included)."""
    key = folder.name
    try:
        return _scan_song(folder)
    except OSError as err:
        return ScanReject(key, str(folder), os_error_words(err))


def _scan_song(folder: Path) -> SongSource | ScanReject:
    key = folder.name
    if "." in key:  # WebDataset keys end at the first dot
        return ScanReject(key, str(folder), "the folder name contains '.', which shard keys cannot hold: rename it")
    os.listdir(folder)  # an unlistable folder is refused by name, not mistaken for an empty one
    audio, lyrics = find_audio(folder), folder / "lyrics.txt"
    if not lyrics.is_file():
        return ScanReject(key, str(folder), "no lyrics.txt in the song folder")
    if audio is None:
        names = ", ".join(f"audio{s}" for s in AUDIO_PREFERENCE)
        return ScanReject(key, str(folder), f"no audio file (expected one of {names})")
    genre_file = folder / "genre.txt"
    genre_text = genre_file.read_text(encoding="utf-8", errors="replace")[:1000] if genre_file.is_file() else ""
    if genre_text.strip():
        genre, source = normalize_genre(genre_text), "genre.txt"
    elif (tagged := tag_genre(audio)):
        genre, source = normalize_genre(tagged), "tag"
    else:
        genre, source = normalize_genre(None), "default"
    return SongSource(key, str(folder), str(audio), str(lyrics), genre[:MAX_GENRE_CHARS], source,
                      audio_sha256=file_sha256(audio), lyrics_sha256=file_sha256(lyrics))


def scan_corpus(dataset: str | Path) -> tuple[list[SongSource], list[ScanReject]]:
    """All `song_*` folders of `dataset`, sorted by key; other entries are ignored. A `song_*`
    entry that is a broken symlink or a symlink loop is a reject, not silently skipped."""
    from model.errors import AutoSongError

    dataset = Path(dataset)
    if not dataset.is_dir():
        raise AutoSongError(f"dataset {dataset} is not a directory (expected DATASET/song_*/)")
    try:
        entries = sorted(p for p in dataset.iterdir() if p.name.startswith("song_"))
    except OSError as err:
        raise AutoSongError(f"{os_error_words(err, 'list')}: the dataset folder must be readable") from None
    songs, rejects = [], []
    for entry in entries:
        if entry.is_dir():
            found = scan_song(entry)
        elif entry.is_symlink():
            found = ScanReject(entry.name, str(entry), "a broken symlink or a symlink loop: point it at a song folder")
        else:
            continue
        (songs if isinstance(found, SongSource) else rejects).append(found)
    if not songs and not rejects:
        raise AutoSongError(f"no song_* folders in {dataset}: each song is DATASET/song_NAME/ with lyrics.txt and audio.mp3|flac")
    return songs, rejects
