"""Trainer throughput and memory.

1. tokens/s of the DeepSpeed engine (ZeRO-1, our trainer's settings) versus a plain PyTorch loop
   (AdamW, clipping) on the same model and the same batches, in the same process. Goal: <= 5%
   overhead. 2. memory of one training step versus context length (4.5k, 9k, 18k tokens), with
   and without activation checkpointing, each in a fresh process: the activations autograd saves
   (any device) and, on a GPU, peak allocated memory. MFU needs a GPU and is not measured here.
Usage: python bench/train.py [--config configs/model/tiny.yaml] [--steps 20]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from autosong.train.losses import token_ce

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DS_ACCELERATOR", "cpu")


def model_and_batches(config: str, tokens: int, micro_batch: int, n: int, ckpt: bool = False):
    import torch

    from autosong.model.transformer import SoundTransformer
    from autosong.train.config import load_config

    cfg = load_config(ROOT / config, ["--model.max_tokens", str(tokens), "--model.activation_checkpointing",
                                      str(ckpt).lower(), "--model.dropout", "0.0"])
    torch.manual_seed(0)
    model = SoundTransformer(cfg.model)
    g = torch.Generator().manual_seed(0)
    T = tokens // cfg.model.num_codebooks
    batches = [dict(codes=torch.randint(0, 1024, (micro_batch, 2, T), generator=g), lengths=torch.full((micro_batch,), T),
                    frame_offset=torch.zeros(micro_batch, dtype=torch.long),
                    text_ids=torch.randint(5, 2800, (micro_batch, 200), generator=g),
                    text_mask=torch.ones(micro_batch, 200, dtype=torch.bool)) for _ in range(n)]
    return cfg, model, batches


def _args(b, device):
    return (b["codes"].to(device), b["lengths"].to(device), b["frame_offset"].to(device), b["text_ids"].to(device),
            b["text_mask"].to(device))


def plain_loop(model, batches, device, bf16: bool) -> float:
    import torch

    model = model.to(device).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for i, b in enumerate(batches):
        if i == 2:
            start = time.perf_counter()  # two warm-up steps
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits, pb = model(*_args(b, device))
        loss = token_ce(model, logits, pb)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def deepspeed_loop(model, batches, device, cfg, bf16: bool) -> float:
    import deepspeed
    import torch

    from autosong.train.distributed import ensure_distributed_env
    from autosong.train.trainer import deepspeed_config

    init = ensure_distributed_env()
    if not torch.distributed.is_initialized():
        own = {"init_method": init, "rank": 0, "world_size": 1} if init else {}
        deepspeed.init_distributed(dist_backend="nccl" if device.type == "cuda" else "gloo", **own)
    cfg.train.micro_batch, cfg.train.precision = batches[0]["codes"].shape[0], "bf16" if bf16 else "fp32"
    ds = deepspeed_config(ROOT / "configs/deepspeed/zero1.json", cfg)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    engine, *_ = deepspeed.initialize(model=model, optimizer=opt, config=ds)
    engine.train()
    for i, b in enumerate(batches):
        if i == 2:
            start = time.perf_counter()
        logits, pb = engine(*_args(b, device))
        loss = token_ce(engine.module, logits, pb)[0]
        engine.backward(loss)
        engine.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def memory_child(config: str, tokens: int, ckpt: bool) -> dict:
    """One forward + backward. Saved activations: the bytes autograd keeps for backward (unique
    storages, counted with saved_tensors_hooks), exact on any device; on a GPU also the peak
    allocated memory of the step."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg, model, batches = model_and_batches(config, tokens, 1, 1, ckpt)
    model = model.to(device).train()
    seen: dict[int, int] = {}

    def pack(t):
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            seen.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        return t

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits, pb = model(*_args(batches[0], device))
        loss = token_ce(model, logits, pb)[0]
    loss.backward()
    row = {"tokens": tokens, "activation_checkpointing": ckpt, "saved_activations_mb": sum(seen.values()) / 2**20,
           "device": device.type}
    if device.type == "cuda":
        row["peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def main() -> None:
    import torch

    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/model/tiny.yaml")
    p.add_argument("--tokens", type=int, default=1500, help="context of the throughput comparison")
    p.add_argument("--micro-batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--memory-config", default="configs/model/tiny.yaml")
    p.add_argument("--memory-child", nargs=2, metavar=("TOKENS", "CKPT"))
    p.add_argument("--out", default=str(ROOT / "bench/results/train.json"))
    args = p.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_config, int(args.memory_child[0]), args.memory_child[1] == "1")))
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    cfg, model, batches = model_and_batches(args.config, args.tokens, args.micro_batch, args.steps + 2)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    plain = plain_loop(model, batches, device, bf16)
    model.load_state_dict(state)
    ds = deepspeed_loop(model, batches, device, cfg, bf16)
    tokens = args.steps * args.micro_batch * args.tokens
    row = {"config": args.config, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
           "threads": torch.get_num_threads(), "tokens_per_step": args.micro_batch * args.tokens,
           "plain_tokens_per_s": tokens / plain, "deepspeed_tokens_per_s": tokens / ds,
           "deepspeed_over_plain": plain / ds}
    print(f"{'loop':10} {'tokens/s':>10}\n{'plain':10} {row['plain_tokens_per_s']:10.0f}\n"
          f"{'deepspeed':10} {row['deepspeed_tokens_per_s']:10.0f}\nratio deepspeed/plain {row['deepspeed_over_plain']:.3f}")
    memory = []
    for tokens_ in (4500, 9000, 18000):
        for ckpt in (0, 1):
            out = subprocess.run([sys.executable, __file__, "--memory-config", args.memory_config, "--memory-child",
                                  str(tokens_), str(ckpt)], capture_output=True, text=True, check=True)
            memory.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"\nactivations saved for backward, one step ({args.memory_config}, batch 1)\n"
          f"{'tokens':>7} {'no ckpt MB':>11} {'ckpt MB':>9} {'ratio':>6}")
    for tokens_ in (4500, 9000, 18000):
        a, b = (next(m["saved_activations_mb"] for m in memory if m["tokens"] == tokens_ and m["activation_checkpointing"] == c)
                for c in (False, True))
        print(f"{tokens_:7d} {a:11.0f} {b:9.0f} {b / a:6.2f}")
    Path(args.out).write_text(json.dumps({"throughput": row, "memory": memory}, indent=2))


if __name__ == "__main__":
    main()
