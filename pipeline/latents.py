"""`pipeline encode-latents OUT --ae RUN`: every song's EnCodec codes -> the autoencoder's latent
codes, written as a dataset of its own under OUT/latents/NAME (shards, manifests, dataset.json
with the same keys, lyrics and split), so stage 2 streams precomputed latents with the same
loader, trainer and eval as stage 1. dataset.json's `parent` names the autoencoder run and the
EnCodec identity, so generation can decode latents back to audio.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from autosong.manifests import DatasetCard, write_manifest
from autosong.manifests.codec_identity import require_same_codec
from autosong.manifests.dataset import read_sample_rows
from autosong.manifests.errors import AutoSongError
from autosong.manifests.progress import progress
from autosong.manifests.sample_rows import META_FIELDS
from autosong.manifests.shard_reader import read_rows
from autosong.model.bundle import ae_identity, load_bundle
from autosong.model.stages import stage_named
from autosong.pipeline.encode import npy_bytes
from autosong.pipeline.shards import ShardCommitter, ShardSink


def encode_latents(out: str | Path, ae_run: str | Path, name: str | None = None, shard_samples: int = 64) -> Path:
    out = Path(out)
    card = DatasetCard.load(out)
    if card.parent is not None:
        raise AutoSongError(f"{out} already holds latents; pass the EnCodec dataset {card.parent['data']}")
    bundle = load_bundle(ae_run)
    if not stage_named(bundle.stage).is_autoencoder:
        raise AutoSongError(f"{ae_run} is a {bundle.stage} run, not an autoencoder (train one with --stage vqvae "
                            f"or --stage gumbel_ae)")
    require_same_codec(bundle.codec, card.codec, f"the autoencoder {ae_run}'s training codes and {out}'s codes",
                       "encode latents of data built with the autoencoder's codec")
    ae = bundle.model.eval()
    target = out / "latents" / (name or Path(ae_run).resolve().name)
    if target.exists():
        shutil.rmtree(target)  # latents are derived data: rebuilt whole, then named
    (target / "shards").mkdir(parents=True)
    identity = ae_identity(bundle)
    rows = sorted(read_sample_rows(out), key=lambda r: (r.shard, r.key))  # shard by shard
    latent_rows, shard_rows = [], []

    def collect(info, rows):
        latent_rows.extend(rows)
        shard_rows.append(info.row())

    committer = ShardCommitter(ShardSink(target / "shards", shard_samples), collect)

    bar = progress(len(rows), "encoding latents", "song")
    for row, files in read_rows(out, rows):
        codes = np.load(io.BytesIO(files["codes.npy"]), allow_pickle=False)
        with torch.no_grad():
            latents = ae.encode(torch.from_numpy(codes.astype(np.int64))[None])[0].numpy().astype(np.int16)
        latent_npy = npy_bytes(latents)
        meta = json.loads(files["meta.json"])
        meta.update(codec=identity.to_dict(), frames=int(latents.shape[1]), codes_sha256=hashlib.sha256(latent_npy).hexdigest())
        sample = {"__key__": row.key, "codes.npy": latent_npy, "meta.json": json.dumps(meta, ensure_ascii=False),
                  **{name: files[name] for name in ("text.npy", "lyrics.txt", "bert.npy") if name in files}}
        committer.add(sample, {f: meta.get(f, getattr(row, f)) for f in META_FIELDS})
        bar.update(1)
    committer.finish()
    bar.close()
    write_manifest(target, "samples", sorted(latent_rows, key=lambda r: r["key"]))
    write_manifest(target, "rejects", [])
    write_manifest(target, "shards", shard_rows)
    cfg = ae.cfg
    latent_card = DatasetCard(
        codec=identity, codec_frame_rate=card.codec_frame_rate / cfg.stride, num_codebooks=cfg.latent_channels,
        codebook_size=cfg.latent_vocab, text=card.text, genres=card.genres, val_fraction=card.val_fraction,
        max_seconds=card.max_seconds, key_normalised=card.key_normalised, counts={**card.counts, "shards": len(shard_rows),
                                              "frames": int(sum(r["frames"] for r in latent_rows))},
        hours=card.hours, parent={"data": str(out.resolve()), "ae_run": str(bundle.path.resolve()), "ae_kind": bundle.stage,
                                  "stride": cfg.stride, "audio_codec": card.codec.to_dict()})
    latent_card.save(target)
    return target
