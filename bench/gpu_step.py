"""One preset's training step under DeepSpeed, as `autosong train` runs it: ms per step, peak
memory, MFU (train/flops.py's model FLOPs against the device's bf16 peak) and, from the
profiler, the kernels that take the time. Random codes and lyrics of the preset's window, so
it needs no dataset. Under `deepspeed --num_gpus N` every GPU present takes part (ZeRO-1 versus
ZeRO-2: run it once per --deepspeed config). bench/gpu_check.sh runs it.
Usage: python bench/gpu_step.py [--config configs/model/base.yaml] [--deepspeed configs/deepspeed/zero1.json]
       [--tokens 18000] [--steps 6] [--out bench/results/gpu_step.json] [override ...]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def engine_and_batch(args, overrides: list[str], device):
    """The preset's TrainStep under DeepSpeed, and one micro-batch of random codes and lyrics."""
    import deepspeed
    import torch

    from autosong.train.config import load_config
    from autosong.train.trainer import TrainStep, deepspeed_config

    cfg = load_config(ROOT / args.config, ["--model.max_tokens", str(args.tokens), "--train.micro_batch", "1",
                                           "--train.grad_accum", "1", *overrides])
    m = cfg.model
    torch.manual_seed(0)
    step_model = TrainStep(cfg)
    ds = deepspeed_config(args.deepspeed, cfg)
    engine, *_ = deepspeed.initialize(model=step_model, config=ds, optimizer=torch.optim.AdamW(
        [q for q in step_model.parameters() if q.requires_grad], lr=1e-4))
    T, L = m.window_frames, args.lyric_ids
    batch = {"codes": torch.randint(0, m.codebook_size, (1, m.num_codebooks, T), device=device),
             "lengths": torch.tensor([T], device=device), "frame_offset": torch.zeros(1, dtype=torch.long, device=device),
             "song_frames": torch.tensor([T], device=device), "keys": ["bench"],
             "text_ids": torch.randint(5, m.text_vocab_size, (1, L), device=device),
             "text_mask": torch.ones(1, L, dtype=torch.bool, device=device)}
    return cfg, step_model, engine, ds, batch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/model/base.yaml")
    p.add_argument("--deepspeed", default="configs/deepspeed/zero1.json")
    p.add_argument("--tokens", type=int, default=18_000, help="the window, in audio tokens")
    p.add_argument("--lyric-ids", type=int, default=600)
    p.add_argument("--steps", type=int, default=6, help="timed steps, after two warm-up steps")
    p.add_argument("--out", default=str(ROOT / "bench/results/gpu_step.json"))
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    args, overrides = p.parse_known_args()
    if not __import__("torch").cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed
    import torch
    import torch.distributed as dist

    from autosong.train.distributed import ensure_distributed_env
    from autosong.train.flops import peak_flops, train_flops

    init = ensure_distributed_env()
    own = {"init_method": init, "rank": 0, "world_size": 1} if init else {}
    cuda = torch.cuda.is_available()
    deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo", **own)
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    cfg, step_model, engine, ds, batch = engine_and_batch(args, overrides, device)
    m, T, L = cfg.model, cfg.model.window_frames, args.lyric_ids
    bf16 = ds.get("bf16", {}).get("enabled") is True

    def one_step():
        loss = engine(batch, 0)[0]
        engine.backward(loss)
        engine.step()

    for _ in range(2):
        one_step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        one_step()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - t0) / args.steps
    kernels = profile_kernels(one_step, cuda)
    flops = train_flops(m, step_model.model.pattern.steps(T), L, 1)
    peak = peak_flops(device, bf16)
    row = {"config": args.config, "deepspeed": args.deepspeed, "zero_stage": ds["zero_optimization"]["stage"],
           "world_size": dist.get_world_size(), "device": torch.cuda.get_device_name(device) if cuda else "cpu",
           "bf16": bf16, "tokens": args.tokens, "pattern": m.pattern, "prior_kernel": m.prior_kernel,
           "activation_checkpointing": m.activation_checkpointing, "recompute_every": m.recompute_every,
           "ms_per_step": seconds * 1e3, "tokens_per_s_rank": args.tokens / seconds,
           "model_tflops_per_step": flops / 1e12, "mfu": flops / seconds / peak if peak else None,
           "peak_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
           "top_kernels": kernels}
    if dist.get_rank() == 0:
        report(row, Path(args.out))


def report(row: dict, out: Path) -> None:
    mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "n/a"
    memory = f"{row['peak_allocated_gib']:.1f} GiB" if row["peak_allocated_gib"] is not None else "n/a"
    print(f"{row['config']} ZeRO-{row['zero_stage']} x{row['world_size']} on {row['device']}: "
          f"{row['ms_per_step']:.0f} ms/step, {row['tokens_per_s_rank']:,.0f} tokens/s per rank, MFU {mfu}, "
          f"peak {memory}")
    for k in row["top_kernels"]:
        print(f"  {k['ms']:9.2f} ms  {k['name'][:100]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=2))


def profile_kernels(one_step, cuda: bool, top: int = 12) -> list[dict]:
    """The kernels (CPU ops on a CPU) that took the most time in one step, from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    with profile(activities=activities) as prof:
        one_step()
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, attr), reverse=True)[:top]
    return [{"name": e.key, "ms": getattr(e, attr) / 1e3, "calls": e.count} for e in events]


if __name__ == "__main__":
    main()
