"""`pipeline verify OUT`: every shard against its manifest row, every sample against its row."""
from __future__ import annotations

import hashlib
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from autosong.manifests import DatasetCard, ManifestError, file_sha256, read_manifest
from autosong.manifests.dataset import read_sample_rows
from autosong.manifests.sample_rows import SampleRow
from autosong.manifests.shard_reader import DamagedShard, read_samples
from autosong.model.lyrics import default_tokenizer


def _check_sample(key: str, files: dict[str, bytes], row: SampleRow, card: DatasetCard, genre_id) -> list[str]:
    where = f"{row.shard}:{key}"
    missing = {"codes.npy", "text.npy", "meta.json", "lyrics.txt"} - set(files)
    if missing:
        return [f"{where}: missing {sorted(missing)}"]
    problems = []
    if hashlib.sha256(files["codes.npy"]).hexdigest() != row.codes_sha256:
        problems.append(f"{where}: codes.npy differs from its manifest hash")
    try:
        codes = np.load(io.BytesIO(files["codes.npy"]), allow_pickle=False)
        text = np.load(io.BytesIO(files["text.npy"]), allow_pickle=False)
        meta = json.loads(files["meta.json"])
    except (ValueError, OSError, json.JSONDecodeError) as err:
        return problems + [f"{where}: unreadable member ({err})"]
    if codes.dtype != np.int16 or codes.shape != (card.num_codebooks, row.frames):
        problems.append(f"{where}: codes {codes.dtype}{list(codes.shape)}, manifest says int16"
                        f"[{card.num_codebooks}, {row.frames}]")
    elif codes.size and (codes.min() < 0 or codes.max() >= card.codebook_size):
        problems.append(f"{where}: codes outside [0, {card.codebook_size})")
    if len(text) != row.text_len:
        problems.append(f"{where}: text.npy has {len(text)} ids, manifest says {row.text_len}")
    if not card.codec.same_model(meta["codec"]):
        problems.append(f"{where}: encoded with codec {meta['codec'].get('source')!r}, not dataset.json's "
                        f"{card.codec.words()}")
    slot = card.genres.index(row.genre) if row.genre in card.genres else 0
    if meta.get("genre_slot") != slot or not len(text) or int(text[0]) != genre_id(slot):
        problems.append(f"{where}: genre {row.genre!r} is slot {slot} in dataset.json, but the sample holds "
                        f"slot {meta.get('genre_slot')} (run `autosong pipeline build` again to re-encode it)")
    if card.text["frontend"] == "bert" and "bert.npy" not in files:
        problems.append(f"{where}: no bert.npy in a BERT dataset")
    return problems


def verify(out: str | Path) -> tuple[int, list[str]]:
    """Returns (samples checked, problems). No problems means every byte is as indexed."""
    out = Path(out)
    if not (out / "dataset.json").exists():  # not a dataset at all: a usage error, not damage
        raise ManifestError(f"{out}/dataset.json does not exist: is {out} the --out of `autosong pipeline build`?")
    try:  # a damaged index is damage to report, like a damaged shard
        card = DatasetCard.load(out)
        samples = read_sample_rows(out)
        shards = {r["path"]: r for r in read_manifest(out, "shards")}
    except ManifestError as err:
        return 0, [str(err)]
    genre_id = default_tokenizer().genre_id
    by_shard: dict[str, dict[str, SampleRow]] = defaultdict(dict)
    for row in samples:
        by_shard[row.shard][row.key] = row
    problems, checked = [], 0
    for name in sorted(set(by_shard) - set(shards)):
        problems.append(f"{name}: holds {len(by_shard[name])} indexed samples but is not in shards.parquet")
    for name, shard in sorted(shards.items()):
        path = out / "shards" / name
        if not path.exists():
            problems.append(f"{name}: missing (listed in shards.parquet)")
            continue
        if path.stat().st_size != shard["bytes"] or file_sha256(path) != shard["sha256"]:
            problems.append(f"{name}: contents changed since the build (sha256 mismatch)")
        try:
            members = read_samples(path)
        except (DamagedShard, OSError) as err:
            problems.append(f"{name}: not a readable tar ({err.__cause__ or err})")
            continue
        for key, row in sorted(by_shard.get(name, {}).items()):
            checked += 1
            if key not in members:
                problems.append(f"{name}:{key}: indexed but not in the shard")
                continue
            problems += _check_sample(key, members[key], row, card, genre_id)
    return checked, problems
