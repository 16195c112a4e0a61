"""The trainer: DeepSpeed's engine on every path (one CPU process, one GPU, many nodes).

Cosine LR with warm-up, gradient accumulation and clipping (DeepSpeed's), non-finite losses
skipped (all ranks agree) and the run stopped after `max_bad_steps` in a row, checkpoints with
the data position and every rank's RNG so a resumed run repeats the uninterrupted one exactly,
metrics.jsonl + TensorBoard on rank 0, and an inference bundle in RUN/export at the end
(checkpoints and the export: train/checkpoints.py).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from autosong.manifests import DatasetCard, require_same_genre_slots, require_same_keys
from autosong.manifests.codec_identity import require_same_codec
from autosong.manifests.dataset import Dataset
from autosong.manifests.errors import AutoSongError
from autosong.manifests.folder_lock import folder_lock
from autosong.manifests.progress import format_duration
from autosong.model.lyrics import default_tokenizer
from autosong.model.padding import SongBatch
from autosong.model.run_metrics import MetricsLog
from autosong.train.checkpoints import CKPT_DIR, export_bundle, save_checkpoint
from autosong.train.config import RunConfig, preset_path
from autosong.train.data import ShardStream, StreamConfig, make_loader
from autosong.train.distributed import ensure_distributed_env, rank_seed
from autosong.train.finetune import Tuning
from autosong.train.flops import peak_flops, train_flops
from autosong.train.losses import LOSSES
from autosong.train.memory import refuse_if_too_big_for
from autosong.train.resume import load_newest_intact, rank_skip
from autosong.train.step_log import LogWindow, reduce_step, step_row

class TrainingDiverged(AutoSongError):
    """Too many non-finite losses in a row."""


@dataclass
class TrainResult:
    steps: int
    last_loss: float
    run: Path


def lr_at(step: int, cfg) -> float:
    """Linear warm-up to lr_max, then cosine to lr_min at `steps`."""
    if step < cfg.warmup_steps:
        return cfg.lr_max * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr_min + 0.5 * (cfg.lr_max - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def _use_bf16(precision: str) -> bool:
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def deepspeed_config(path: str | Path, cfg: RunConfig) -> dict:
    """The JSON preset with its "auto" fields filled from the run config."""
    path = preset_path(path)
    if not path.is_file():
        raise AutoSongError(f"DeepSpeed config {path} not found (presets: configs/deepspeed/zero1|2|3.json)")
    ds = json.loads(path.read_text())
    t = cfg.train
    filled = {"train_micro_batch_size_per_gpu": t.micro_batch, "gradient_accumulation_steps": t.grad_accum,
              "gradient_clipping": t.grad_clip}
    for key, value in filled.items():
        if ds.get(key, "auto") == "auto":
            ds[key] = value
    if ds.get("bf16", {}).get("enabled") == "auto":
        ds["bf16"]["enabled"] = _use_bf16(t.precision)
    zero = ds.get("zero_optimization", {})
    offload = zero.get("offload_optimizer", {}).get("device") == "cpu"
    if ds.get("bf16", {}).get("enabled") is True and zero.get("stage") == 1 and not offload:
        # bf16 weights, gradients summed over the micro-steps in fp32 (DeepSpeed's BF16 optimizer):
        # sixteen bf16 additions would lose the small ones
        ds.setdefault("data_types", {"grad_accum_dtype": "fp32"})
    if offload and "optimizer" not in ds:  # DeepSpeed's CPU Adam runs the offloaded step
        ds["optimizer"] = {"type": "AdamW", "params": {"lr": t.lr_max, "betas": list(t.betas),
                                                       "weight_decay": t.weight_decay}}
    return ds


def fill_from_dataset(cfg: RunConfig, card: DatasetCard) -> RunConfig:
    """The dataset decides what the model reads: codebooks, code and text vocabularies, BERT width."""
    tok = default_tokenizer()
    if card.text.get("vocab_sha256") != tok.sha256:
        raise AutoSongError(f"the dataset's lyrics vocabulary ({card.text.get('vocab_version')}) differs from "
                            f"this AutoSong's ({tok.version}): rebuild the dataset")
    latent_data = card.parent is not None
    if cfg.stage_kind.on_latents and not latent_data:
        raise AutoSongError(f"--stage {cfg.stage} trains on an autoencoder's codes: pass --data OUT/latents/NAME "
                            "(made by `autosong pipeline encode-latents OUT --ae RUN`)")
    if not cfg.stage_kind.on_latents and latent_data:
        raise AutoSongError(f"this dataset holds autoencoder latents ({card.parent['ae_kind']}): train it with "
                            f"--stage latent, or pass the EnCodec dataset {card.parent['data']}")
    m = cfg.model
    m.num_codebooks, m.codebook_size, m.text_vocab_size = card.num_codebooks, card.codebook_size, tok.vocab_size
    m.bert_dim = int(card.text.get("bert_dim", 0)) if card.text["frontend"] == "bert" else 0
    cfg.ae.num_codebooks, cfg.ae.codebook_size = card.num_codebooks, card.codebook_size
    return cfg


class TrainStep(torch.nn.Module):
    """What DeepSpeed wraps: one stage's model and its loss. forward(batch, step) ->
    (loss, per-codebook CE sums [C], counts [C], extras for logging)."""

    def __init__(self, cfg: RunConfig):
        super().__init__()
        self.model = cfg.stage_kind.build(cfg.stage_model)
        self.loss = LOSSES[cfg.stage][0]

    def window_frames(self) -> int:
        return self.model.cfg.window_frames

    def forward(self, batch: SongBatch, step: int):
        return self.loss(self.model, batch, step)


def _param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 and "embed" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]




def saved_run_config(run: str | Path) -> RunConfig:
    """The configuration a run was started with (what --resume continues)."""
    path = Path(run) / "run_config.json"
    if not path.exists():
        raise AutoSongError(f"--resume: {run} has no run_config.json; start it without --resume")
    return RunConfig.from_dict(json.loads(path.read_text())["config"])


def _refuse_unresumable(run: Path, data: str, card: DatasetCard) -> None:
    """--resume on data whose codes or genre slots are not the ones the run trained on: one line."""
    saved = json.loads((run / "run_config.json").read_text())
    require_same_codec(saved["codec"], card.codec, f"the codes {run} was trained on and {data}'s",
                       "resume on data built with the run's codec, or start a new --run")
    require_same_genre_slots(saved["genres"], card.genres, data, str(run), f"rebuild the data with `autosong pipeline "
                             f"build ... --genres {run}` to keep the run's slots, or start a new --run")
    require_same_keys(saved.get("key_normalised", False), card, data, str(run))


def _join_process_group(init_method: str | None) -> tuple[int, int, torch.device]:
    """torch.distributed through DeepSpeed (NCCL on GPUs, gloo on CPUs): (rank, world size, device)."""
    import deepspeed
    import torch.distributed as dist

    own = {"init_method": init_method, "rank": 0, "world_size": 1} if init_method else {}
    if not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # DeepSpeed's shared-memory all-reduce only speeds up CPU runs of several processes,
        # and compiling it costs ~45 s per fresh machine or venv: one process goes without.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo", **own)
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


class Trainer:
    """One training run, in four parts: setup (`__init__`: data card, config, DeepSpeed engine,
    data stream, resume), `step` (one optimizer step over grad_accum micro-batches, skipping
    non-finite ones on every rank at once), `checkpoint`, and `fit` (the loop, with logging; it
    writes the export at the end, train/checkpoints.export_bundle). `train()` below is the
    one-call form the CLI uses."""

    def __init__(self, data: str | Dataset, cfg: RunConfig, run: str | Path, ds_config_path: str, resume: bool = False,
                 check_memory: bool = True):
        init_method = ensure_distributed_env()
        if not torch.cuda.is_available():
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        import deepspeed

        self.run = Path(run)
        self.data = data = Dataset.of(data)  # opened once: the loader, the memory check and the checks share it
        self.card = card = data.card
        self.cfg = cfg = fill_from_dataset(cfg, card)
        if cfg.stage_kind.reads_lyrics and card.text.get("frontend") != "bert":
            data.refuse_texts_longer_than(cfg.model.max_text_len)
        if resume:
            _refuse_unresumable(self.run, data, card)
        if check_memory and not cfg.stage_kind.is_autoencoder:  # before DeepSpeed takes any of it

            refuse_if_too_big_for(cfg, data)
        self.rank, self.world, self.device = _join_process_group(init_method)
        t = cfg.train
        torch.manual_seed(t.seed)
        if t.deterministic:  # bitwise-repeatable runs (multi-threaded CPU reductions are not, by default)
            torch.use_deterministic_algorithms(True, warn_only=True)
        model = TrainStep(cfg)
        # a fine-tune: the base's weights, new genres' rows, adapters (train/finetune.py); before
        # DeepSpeed, which partitions what is trainable then
        self.tuning = Tuning(model.model, cfg, card, data) if cfg.finetune.init_from else None
        ds = deepspeed_config(ds_config_path, cfg)
        optimizer = None if "optimizer" in ds else torch.optim.AdamW(
            _param_groups(model, t.weight_decay), lr=t.lr_max, betas=t.betas)
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, config=ds,
            model_parameters=_param_groups(model, t.weight_decay) if optimizer is None else None)
        if self.rank:  # the same initial weights everywhere, then each rank its own dropout draws
            torch.manual_seed(rank_seed(t.seed, self.rank))
        if self.rank == 0:
            self.run.mkdir(parents=True, exist_ok=True)
            (self.run / "run_config.json").write_text(json.dumps({
                "config": cfg.to_dict(), "codec": card.codec.to_dict(), "text": card.text, "genres": card.genres,
                "data": str(data.path), "parent": card.parent, "key_normalised": card.key_normalised,
                "deepspeed": ds}, indent=2))
        stream = StreamConfig(data=data, split="train", micro_batch=t.micro_batch, window_frames=model.window_frames(),
                              max_frames=model.model.cfg.max_frames, bucket_songs=t.bucket_songs, seed=t.seed,
                              with_bert=cfg.model.bert_dim > 0, rank=self.rank, world_size=self.world,
                              verify=t.verify_data)
        self.step_count, self.consumed = 0, 0
        self.batches = self._resume(stream) if resume else iter(make_loader(stream, t.num_workers))
        self.resumed = resume
        self.bad_streak = 0
        self.peak = peak_flops(self.device, ds.get("bf16", {}).get("enabled") is True)  # for MFU; None on a CPU

    def _resume(self, stream: StreamConfig):
        """Load the newest intact checkpoint; return the batches from where it stopped (remapped
        when the ranks or loader workers changed) and restore this rank's RNG after the loader
        is made, as creating its iterator draws from the global RNG."""
        t = self.cfg.train
        position, rng = load_newest_intact(self.engine, self.run / CKPT_DIR, self.rank, self.world)
        self.step_count = position.step
        self.consumed, remapped = rank_skip(ShardStream(stream), position, self.rank, self.world, t.num_workers)
        if remapped and self.rank == 0:
            print(f"autosong: the checkpoint at step {position.step} was saved by {position.world_size} rank(s) with "
                  f"{position.num_workers} loader worker(s) each, this job has {self.world} with {t.num_workers}: "
                  f"each reader goes on from the same point of the same epoch (the samples seen are kept to "
                  f"within a batch per reader and epoch, not the exact order)", file=sys.stderr)
        batches = iter(make_loader(replace(stream, skip_batches=self.consumed), t.num_workers))
        if rng is None:  # a rank the checkpoint did not have: its own draws from here
            torch.manual_seed(rank_seed(t.seed, self.rank, position.step))
        else:
            torch.set_rng_state(rng["cpu"])
            if self.device.type == "cuda" and "cuda" in rng:
                torch.cuda.set_rng_state(rng["cuda"])
        return batches

    def step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict, float]:
        """One optimizer step: (mean loss, per-codebook CE sums [C], token counts [C], the last
        micro-batch's extras with its token counts under "counts", model FLOPs), the tensors on
        the device. The one host read per micro-batch is the ranks' vote on a non-finite loss:
        skipping a batch has to be decided before its backward."""
        import torch.distributed as dist

        t, step = self.cfg.train, self.step_count
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, t)
        C = self.cfg.model.num_codebooks  # EnCodec codebooks, or the latent channels of a latent dataset
        done, flops, extras = 0, 0.0, {}
        loss_sum, cb_sum, cb_n = (torch.zeros(n, device=self.device) for n in ((), C, C))
        while done < t.grad_accum:
            batch = next(self.batches).to(self.device)
            self.consumed += 1
            loss, s, n, extras = self.engine(batch, step)
            bad = (~torch.isfinite(loss.detach())).float().view(1)
            dist.all_reduce(bad)  # every rank skips, or none does
            if (ranks := int(bad.item())) > 0:
                self.bad_streak += 1
                print(f"warning: step {step}: non-finite loss on {ranks} rank(s), batch skipped "
                      f"({self.bad_streak} in a row)", file=sys.stderr)
                if self.bad_streak >= t.max_bad_steps:
                    raise TrainingDiverged(f"{self.bad_streak} non-finite losses in a row at step {step}: lower "
                                           f"--train.lr_max (now {t.lr_max}) or check the data")
                continue
            self.bad_streak = 0
            self.engine.backward(loss)
            self.engine.step()
            done += 1
            loss_sum += loss.detach().float()
            cb_sum += s.detach().float()
            cb_n += n.detach().float()
            extras = {**extras, "counts": n.detach().float()}  # the last micro-batch's, as its extras
            flops += self._flops(batch)
        self.step_count += 1
        return loss_sum / t.grad_accum, cb_sum, cb_n, extras, flops

    def _flops(self, batch: SongBatch) -> float:
        """Model FLOPs of a micro-batch of a token or latent model (train/flops.py); 0 for an autoencoder."""
        if self.cfg.stage_kind.is_autoencoder:
            return 0.0
        m = self.cfg.stage_model
        B, _, T = batch.codes.shape
        return train_flops(m, self.engine.module.model.pattern.steps(T), batch.text_ids.shape[1], B)

    def checkpoint(self) -> None:
        save_checkpoint(self.engine, self.run, self.step_count, self.consumed, self.cfg.train.num_workers, self.rank,
                        self.world, self.device)

    def fit(self, stop_at: int | None = None) -> TrainResult:
        """Train to cfg.train.steps, or checkpoint and stop at `stop_at` (same schedule, resumable)."""
        import torch.distributed as dist

        t = self.cfg.train
        log = MetricsLog(self.run, self.step_count if self.resumed else None) if self.rank == 0 else None
        bar = None
        if self.rank == 0:
            from tqdm import tqdm

            bar = tqdm(total=t.steps, initial=self.step_count, unit="step", desc="training", disable=None,
                       dynamic_ncols=True)
        loss, window = torch.full((), float("nan")), LogWindow(self.device)
        self.engine.train()
        end = min(t.steps, stop_at) if stop_at else t.steps
        self.clock = (time.perf_counter(), self.step_count)  # for elapsed_s and the ETA
        while self.step_count < end:
            loss, cb_sum, cb_n, extras, flops = self.step()
            step = self.step_count
            window.add(cb_n.sum(), flops)
            if bar is not None:
                bar.update(1)
            if step % t.log_every == 0 or step == t.steps:
                stats = reduce_step(loss, cb_sum, cb_n, window)
                if log is not None:
                    self._write_log(log, bar, step, stats, window.seconds(), extras)
                window.restart()
            if step % t.ckpt_every == 0 or step == end:
                with window.paused_for():
                    self.checkpoint()
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
        if self.step_count == t.steps:
            export_bundle(self.engine, self.run, self.cfg, self.card, self.step_count, self.rank, self.tuning)
        dist.barrier()
        return TrainResult(self.step_count, float(loss), self.run)

    def _write_log(self, log: MetricsLog, bar, step: int, stats: torch.Tensor, seconds: float, extras: dict) -> None:
        t = self.cfg.train
        row = step_row(step, stats, seconds, self.world, self.peak, lr_at(step - 1, t), self.engine.get_global_grad_norm())
        extras = {**extras, "counts": extras["counts"].cpu()}
        started, first = self.clock
        row["elapsed_s"] = time.perf_counter() - started  # wall time of this process's steps so far
        log.write({**row, **LOSSES[self.cfg.stage][1](extras, extras["counts"], self.cfg.stage_model)})
        bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.2e}")
        if bar.disable:  # no terminal (a cluster's log file): a plain line per logged step
            mfu = f"  MFU {row['mfu']:.1%}" if row["mfu"] is not None else ""
            eta = row["elapsed_s"] / max(1, step - first) * (t.steps - step)
            print(f"step {step}/{t.steps}  loss {row['loss']:.4f}  lr {row['lr']:.2e}  "
                  f"tokens/s {row['tokens_per_s']:,.0f}{mfu}  ETA {format_duration(eta)}", flush=True)


def train(data: str | Dataset, cfg: RunConfig, run: str | Path, ds_config_path: str, resume: bool = False,
          stop_at: int | None = None, check_memory: bool = True) -> TrainResult:
    """Train to cfg.train.steps, or checkpoint and stop at `stop_at` (same schedule, resumable).
    `check_memory`: refuse a config whose step would not fit the device (train/memory.py). Rank 0
    holds RUN/.train.lock throughout: a second training of the same run is refused in one line."""
    if int(os.environ.get("RANK", "0")) != 0:
        return Trainer(data, cfg, run, ds_config_path, resume, check_memory).fit(stop_at)
    run = Path(run)
    created = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    try:
        with folder_lock(run, ".train.lock", "a training"):
            return Trainer(data, cfg, run, ds_config_path, resume, check_memory).fit(stop_at)
    finally:
        if created and not any(run.iterdir()):  # refused before anything was written: no empty run left
            run.rmdir()
