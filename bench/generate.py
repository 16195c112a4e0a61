"""KV-cache sampler versus a sampler that recomputes the whole prefix at every step: tokens/s on
the same model in the same run, at 2k and 8k tokens. Goal: >= 20x at 2k on CPU.

The recomputing sampler is run for real at 2k tokens. At 8k a full run would take hours on a CPU,
so its cost is measured at 8 evenly spaced prefix lengths and integrated (its per-step cost
is a smooth function of the prefix length); the table says which figures are measured that way.
A third table times one song with classifier-free guidance three ways: the growing cache
(eager), the static cache uncompiled, and the static cache under torch.compile (CUDA graphs on a
GPU), the compile's warm-up call excluded and reported apart. On a GPU,
`--config configs/model/base.yaml --song-seconds 120 --device cuda --dtype bf16` gives the
issue's figure (seconds for a 120 s song at batch 1).
Usage: python bench/generate.py [--config configs/model/tiny.yaml] [--song-seconds 8] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_model(config: str, tokens: int, pattern: str | None, overrides: tuple[str, ...] = ()):
    """The preset's model at `tokens` per window; `pattern` None keeps the preset's own layout."""
    import torch

    from autosong.model.transformer import SoundTransformer
    from autosong.train.config import load_config

    layout = ["--model.pattern", pattern] if pattern else []
    cfg = load_config(ROOT / config, ["--model.max_tokens", str(tokens), *layout, *overrides])
    torch.manual_seed(0)
    return SoundTransformer(cfg.model).eval()


def cached_tokens_per_s(model, frames: int) -> float:
    import torch

    from autosong.model.sampler import Sampler, SamplingConfig

    ids, mask = torch.randint(5, 2800, (1, 100)), torch.ones(1, 100, dtype=torch.bool)
    t0 = time.perf_counter()
    Sampler(model).generate(ids, mask, frames, SamplingConfig(temperature=1.0, guidance=1.0))
    return frames * model.cfg.num_codebooks / (time.perf_counter() - t0)


def recompute_tokens_per_s(model, frames: int, full: bool) -> float:
    import torch

    C = model.cfg.num_codebooks
    ids, mask = torch.randint(5, 2800, (1, 100)), torch.ones(1, 100, dtype=torch.bool)
    if full:
        from autosong.model.sampler import Sampler, SamplingConfig

        t0 = time.perf_counter()
        Sampler(model, recompute=True).generate(ids, mask, frames, SamplingConfig(temperature=1.0, guidance=1.0))
        return frames * C / (time.perf_counter() - t0)
    total = model.pattern.steps(frames)
    codes = torch.randint(0, 1024, (1, C, frames))
    pb = model.pattern.build(codes, torch.tensor([frames]), torch.tensor([0]))
    memory, mmask = model.text(ids, mask)
    song, lyric = torch.tensor([frames]), model.lyric_progress(ids, mask)  # what the alignment prior reads
    lengths = [max(1, int(total * (i + 0.5) / 8)) for i in range(8)]
    costs = []
    with torch.inference_mode():
        for n in lengths:  # one recompute step = a forward pass over the whole prefix
            cache = model.new_cache(1, n)
            t0 = time.perf_counter()
            model.step(pb.inputs[:, :n], pb.codebook[:n], pb.positions[:, :n], memory, mmask, cache, song, lyric)
            costs.append(time.perf_counter() - t0)
    seconds = sum(costs) / len(costs) * total  # midpoint rule over the 8 segments
    return frames * C / seconds


def main() -> None:
    import torch

    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/model/tiny.yaml")
    p.add_argument("--out", default=str(ROOT / "bench/results/generate.json"))
    p.add_argument("--song-seconds", type=float, default=8.0, help="the compiled-versus-eager song's length")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--only-compiled", action="store_true", help="just the compiled-versus-eager table")
    p.add_argument("--only-cached", action="store_true",
                   help="just the KV-cache sampler's tokens/s (no recompute, no other tables): the before/after figure")
    p.add_argument("override", nargs="*", help="model config overrides, e.g. --model.cross_align none (after --)")
    args = p.parse_args()
    overrides = tuple(args.override)
    if args.only_compiled:
        compiled_table(args.config, args.song_seconds, args.device, args.dtype)
        return
    if args.only_cached:
        for pattern in ("flatten", "delay"):
            for tokens in (2000, 8000):
                model = build_model(args.config, tokens, pattern, overrides)
                rate = cached_tokens_per_s(model, tokens // model.cfg.num_codebooks)
                print(f"{pattern:8} {tokens:6d} cache tok/s {rate:8.0f}")
        return
    rows = []
    for pattern in ("flatten", "delay"):
        for tokens in (2000, 8000):
            model = build_model(args.config, tokens, pattern, overrides)
            frames = tokens // model.cfg.num_codebooks
            full = tokens <= 2000
            cached = cached_tokens_per_s(model, frames)
            recompute = recompute_tokens_per_s(model, frames, full)
            rows.append({"pattern": pattern, "tokens": tokens, "cached_tokens_per_s": cached,
                         "recompute_tokens_per_s": recompute, "speedup": cached / recompute,
                         "recompute_measured": "full run" if full else "8 sampled prefix lengths, integrated",
                         "rtf": 75 * model.cfg.num_codebooks / cached, "threads": torch.get_num_threads()})
    print(f"{'pattern':8} {'tokens':>6} {'cache tok/s':>12} {'recompute tok/s':>16} {'speedup':>8} {'RTF':>11}  recompute")
    for r in rows:
        print(f"{r['pattern']:8} {r['tokens']:6d} {r['cached_tokens_per_s']:12.0f} {r['recompute_tokens_per_s']:16.1f} "
              f"{r['speedup']:8.1f} {r['rtf']:11.3f}  {r['recompute_measured']}")
    stages = two_stage_table(args.config)
    compiled = compiled_table(args.config, args.song_seconds, args.device, args.dtype)
    Path(args.out).write_text(json.dumps({"kv_cache": rows, "patterns": stages, "compiled": compiled}, indent=2))


def compiled_table(config: str, seconds: float, device: str, dtype: str) -> list[dict]:
    """One guided song (cfg 3, batch 1) with the preset's own pattern (what its users run):
    eager, static, compiled."""
    import torch

    from autosong.model.devices import resolve_device, resolve_dtype
    from autosong.model.sampler import Sampler, SamplingConfig

    dev = resolve_device(device)
    frames = int(seconds * 75)
    model = build_model(config, 2 * frames, None).to(dev, resolve_dtype(dtype, dev))
    ids = torch.randint(5, 2800, (1, 100), device=dev)
    mask = torch.ones(1, 100, dtype=torch.bool, device=dev)

    def timed(sampler, compile_step):
        s = SamplingConfig(temperature=1.0, guidance=3.0, compile=compile_step)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        codes = sampler.generate(ids, mask, frames, s)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t0, codes

    out = []
    eager_s, _ = timed(Sampler(model), False)
    static_s, _ = timed(Sampler(model, static=True), False)
    first_s, _ = timed(Sampler(model), True)  # traces and compiles
    compiled_s, _ = timed(Sampler(model), True)
    for name, wall, extra in (("eager (growing cache)", eager_s, None), ("static cache", static_s, None),
                              ("compiled static cache", compiled_s, first_s)):
        out.append({"mode": name, "song_seconds": seconds, "wall_s": wall, "rtf": wall / seconds,
                    "vs_eager": eager_s / wall, "first_call_s": extra, "device": str(dev),
                    "dtype": str(next(model.parameters()).dtype).replace("torch.", ""), "config": config,
                    "pattern": model.cfg.pattern})
    print(f"\n{seconds:g} s song, cfg 3, {model.cfg.pattern} pattern (the preset's), {config} on {dev}:")
    print(f"{'mode':24} {'wall s':>8} {'RTF':>11} {'vs eager':>9}")
    for r in out:
        first = f"  (first call {r['first_call_s']:.1f} s, compiling)" if r["first_call_s"] else ""
        print(f"{r['mode']:24} {r['wall_s']:8.2f} {r['rtf']:11.3f} {r['vs_eager']:9.2f}{first}")
    return out


def two_stage_table(config: str, seconds: float = 8.0) -> list[dict]:
    """AR steps per second of audio and generation speed for flat, delay and two-stage (a latent
    flatten model over a stride-4 VQ-VAE, whose decoder then makes the EnCodec tokens)."""
    import torch

    from autosong.model.autoencoders import AEConfig, build_autoencoder
    from autosong.model.sampler import Sampler, SamplingConfig

    ids, mask = torch.randint(5, 2800, (1, 100)), torch.ones(1, 100, dtype=torch.bool)
    frames = int(seconds * 75)
    out = []
    for name, pattern, stride in (("flat", "flatten", 1), ("delay", "delay", 1), ("two-stage", "flatten", 4)):
        model = build_model(config, 2 * frames, pattern)
        positions = frames // stride
        t0 = time.perf_counter()
        codes = Sampler(model).generate(ids, mask, positions, SamplingConfig(temperature=1.0, guidance=1.0))
        decode_s = 0.0
        if stride > 1:
            torch.manual_seed(0)
            ae = build_autoencoder(AEConfig(kind="vqvae", stride=stride, latent_vocab=1024, window_frames=frames)).eval()
            t1 = time.perf_counter()
            ae.decode(codes)
            decode_s = time.perf_counter() - t1
        wall = time.perf_counter() - t0
        steps = model.pattern.steps(positions)
        out.append({"path": name, "ar_steps_per_audio_s": steps / seconds, "latent_tokens_per_s": positions * 2 / (wall - decode_s),
                    "audio_s_per_wall_s": seconds / wall, "decoder_s": decode_s})
    print(f"\n{'path':10} {'AR steps / audio s':>19} {'model tokens/s':>15} {'audio s / wall s':>17}")
    for r in out:
        print(f"{r['path']:10} {r['ar_steps_per_audio_s']:19.1f} {r['latent_tokens_per_s']:15.0f} {r['audio_s_per_wall_s']:17.2f}")
    return out


if __name__ == "__main__":
    main()
