"""A dataset's genre slots: the index of each genre in `dataset.json`'s list is the slot its
songs' text ids encode (`<genre:slot>`), so a slot, once given, never changes meaning. New genres
take the next slots; a lost `dataset.json` is recovered from the shards' own meta; a run's or an
earlier card's recorded slots can be kept (`pipeline build --genres`)."""
from __future__ import annotations

import sys
from pathlib import Path

from autosong.manifests import UNUSED_SLOT, changed_genre_slots
from autosong.manifests.errors import AutoSongError
from autosong.model.lyrics import MAX_GENRES, UNKNOWN_GENRE
from autosong.pipeline.scan import SongSource


def assign_genres(songs: list[SongSource], genres: list[str]) -> dict[str, int]:
    """Append-only genre vocabulary: existing slots never move; new genres take the next slots."""
    for song in songs:
        if song.genre not in genres:
            if len(genres) >= MAX_GENRES:
                print(f"warning: more than {MAX_GENRES} genres; {song.genre!r} ({song.key}) counts as unknown",
                      file=sys.stderr)
                continue
            genres.append(song.genre)
    return {g: i for i, g in enumerate(genres)}


def recover_genres(metas, codec, text: dict, out: Path, shard_dir: Path) -> list[str]:
    """The genre vocabulary of shards whose dataset.json is lost, from their samples' meta
    (`metas`: (shard name, meta) pairs; each sample records its genre and the slot its text ids
    hold; `codec()`: this build's codec, asked for only when there is a sample). The shards must agree with
    each other and with this build's codec and text front-end, or the build refuses: reusing a
    sample under a vocabulary that is not provably its own would silently change its genre."""
    slots: dict[int, str] = {0: UNKNOWN_GENRE}
    fix = f"build into a new --out, or delete {shard_dir} to encode every song again"
    for shard, meta in metas:
        where = f"{shard}:{meta.get('key')}"
        if not codec().identity.same_model(meta["codec"]):
            raise AutoSongError(f"{out}/dataset.json is missing and {where} was encoded with codec "
                                f"{meta['codec'].get('source')!r}, not this build's: {fix}")
        if (meta.get("bert_len", 0) > 0) != (text["frontend"] == "bert"):
            raise AutoSongError(f"{out}/dataset.json is missing and {where} was built with another text "
                                f"front-end than {text['frontend']}: {fix}")
        slot, genre = int(meta["genre_slot"]), meta["genre"]
        if slot == 0:  # unknown, or a genre past MAX_GENRES
            continue
        if slots.setdefault(slot, genre) != genre:
            raise AutoSongError(f"{out}/dataset.json is missing and the shards disagree on genre slot {slot} "
                                f"({slots[slot]!r} vs {genre!r} in {where}): {fix}")
    names = list(slots.values())
    if len(set(names)) != len(names):
        raise AutoSongError(f"{out}/dataset.json is missing and the shards give one genre two slots: {fix}")
    return [slots.get(i, UNUSED_SLOT.format(i)) for i in range(max(slots) + 1)]


def with_recorded_slots(genres: list[str], recorded: list[str], source: str) -> list[str]:
    """This build's genre slots with those a run or an earlier card recorded filled in (a
    recovery that lost a genre's every shard gets its old slot back); refuses a conflict."""
    merged = list(genres) + [UNUSED_SLOT.format(i) for i in range(len(genres), len(recorded))]
    for slot, old, new in changed_genre_slots(recorded, merged):
        if new != UNUSED_SLOT.format(slot):
            raise AutoSongError(f"--genres {source}: slot {slot} is {old!r} there but {new!r} in this dataset's "
                                f"shards; build into a new --out to use the recorded slots")
        merged[slot] = old
    for name in set(merged) - {UNUSED_SLOT.format(i) for i in range(len(merged))}:
        if merged.count(name) > 1:
            raise AutoSongError(f"--genres {source}: {name!r} would hold two slots; build into a new --out")
    return merged
