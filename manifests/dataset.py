"""A built dataset, opened once: its card (dataset.json) and its current rows (the samples
manifest), read together and passed as one object to the trainer, its loader, the memory check
and the eval, which never open the path again. Its songs are read from the shards on demand."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autosong.manifests import DatasetCard, ManifestError, read_manifest
from autosong.manifests.errors import AutoSongError
from autosong.manifests.sample_rows import SampleRow
from autosong.manifests.shard_reader import Sample, load_samples


def read_sample_rows(out: str | Path, split: str | None = None) -> list[SampleRow]:
    """The current samples of a built dataset (one split, or all), in key order."""
    rows = (SampleRow.from_dict(r) for r in read_manifest(out, "samples"))
    return sorted((r for r in rows if split is None or r.split == split), key=lambda r: r.key)


@dataclass(frozen=True)
class Dataset:
    path: Path
    card: DatasetCard = field(repr=False)
    rows: tuple[SampleRow, ...] = field(repr=False)  # every current sample, in key order
    # each split's songs decoded so far (a prefix in key order): the eval's parts read them once
    _decoded: dict[str, list[Sample]] = field(default_factory=dict, repr=False, compare=False)

    def __str__(self) -> str:  # messages name a dataset by its folder
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    @classmethod
    def open(cls, out: str | Path) -> "Dataset":
        """Read OUT/dataset.json and the samples manifest (a missing or foreign one is refused in
        one line that says how to build it)."""
        return cls(Path(out), DatasetCard.load(out), tuple(read_sample_rows(out)))

    @classmethod
    def of(cls, data: "str | Path | Dataset") -> "Dataset":
        """`data` itself when it is already open, else the dataset at that path, opened."""
        return data if isinstance(data, Dataset) else cls.open(data)

    def split(self, name: str) -> list[SampleRow]:
        """The rows of one split ('train' or 'val'), in key order."""
        return [r for r in self.rows if r.split == name]

    def samples(self, split: str, max_songs: int | None = None) -> list[Sample]:
        """The songs of a split (the first `max_songs` in key order), decoded from their shards once
        per Dataset (each shard read once; callers get a new list and must not change the songs in
        it); refused in one line when the split is empty or a shard it needs is gone."""
        rows = self.split(split)[: max_songs or None]
        if not rows:
            raise AutoSongError(f"{self.path} has no {split!r} songs (see `autosong pipeline inspect {self.path}`)")
        if len(self._decoded.get(split, ())) < len(rows):
            self.refuse_missing_shards(sorted({r.shard for r in rows}), split)
            self._decoded[split] = load_samples(self.path, rows)
        return self._decoded[split][: len(rows)]

    def max_text_len(self) -> int:
        """The longest lyrics (ids, or BERT positions) of any sample: what a model must read."""
        return max((r.text_len for r in self.rows), default=1)

    def refuse_missing_shards(self, shards: list[str], split: str) -> None:
        """Before training or eval reads a split, one line when shards its manifest lists are gone."""
        shard_dir = self.path / "shards"
        missing = [s for s in shards if not (shard_dir / s).is_file()]
        if missing:
            raise ManifestError(f"{len(missing)} of {len(shards)} {split} shard(s) listed in the manifest are missing "
                                f"from {shard_dir} (first: {missing[0]}): run `autosong pipeline verify {self.path}` "
                                f"to see the damage, then `autosong pipeline build` again to rebuild them")

    def refuse_texts_longer_than(self, limit: int) -> None:
        """Before a run starts, one line naming a sample whose lyric ids exceed what the model reads
        (data built with a larger --max-text-len than this model's max_text_len), not a crash mid-run."""
        rows = [r for r in self.rows if r.text_len > limit]
        if rows:
            first = max(rows, key=lambda r: r.text_len)
            raise ManifestError(f"{len(rows)} sample(s) of {self.path} hold lyrics longer than model.max_text_len "
                                f"{limit} (longest: {first.key}, {first.text_len} ids): raise --model.max_text_len, "
                                f"or rebuild the data with `autosong pipeline build --max-text-len {limit}`")
