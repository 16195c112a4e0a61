"""GPU paths: bf16 training through DeepSpeed, cached generation and eval on CUDA, encoders on
GPUs in a build. Skipped without one."""
import numpy as np
import pytest
import torch

from tests.conftest import TINY, read_metrics, train_cli
from autosong.train.losses import token_ce

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_bf16_training_and_cached_generation_on_cuda(small_data, tmp_path):
    from autosong.model.bundle import load_bundle
    from autosong.model.sampler import Sampler, SamplingConfig

    run = tmp_path / "run"
    out = train_cli("--data", str(small_data), "--run", str(run), "--steps", "10", *TINY,
                    "--model.activation_checkpointing", "true")
    assert out.returncode == 0, out.stderr[-3000:]
    ds = __import__("json").loads((run / "run_config.json").read_text())["deepspeed"]
    assert ds["bf16"]["enabled"] is torch.cuda.is_bf16_supported()
    m = read_metrics(run)
    assert m[-1]["loss"] < m[0]["loss"]
    model = load_bundle(run, device="cuda").model
    ids = torch.randint(5, 2800, (2, 20), device="cuda")
    mask = torch.ones_like(ids, dtype=torch.bool)
    s = SamplingConfig(temperature=0.0, guidance=3.0)
    fast = Sampler(model).generate(ids, mask, 40, s)
    slow = Sampler(model, recompute=True).generate(ids, mask, 40, s)
    assert fast.shape == (2, 2, 40) and fast.device.type == "cuda"
    assert (fast == slow).float().mean() > 0.95  # fp kernels differ between cached and full attention


def test_compiled_decode_on_cuda_matches_eager(trained_run):
    """torch.compile with CUDA graphs over the static cache: the greedy song of the eager sampler
    (bf16 kernels may flip a rare near-tie). Its speed is bench/generate.py's."""
    from autosong.model.bundle import load_bundle
    from autosong.model.sampler import Sampler, SamplingConfig

    model = load_bundle(trained_run, device="cuda", dtype="bf16").model
    ids = torch.randint(5, 2800, (1, 30), device="cuda")
    mask = torch.ones_like(ids, dtype=torch.bool)
    frames = model.cfg.window_frames

    def run(compile_step):
        return Sampler(model).generate(ids, mask, frames, SamplingConfig(temperature=0.0, guidance=3.0, compile=compile_step))

    eager = run(False)
    run(True)  # traces, compiles and records the graphs
    compiled = run(True)  # replays them
    assert compiled.shape == eager.shape and (eager == compiled).float().mean() > 0.95


def test_static_decode_steps_make_no_host_sync(trained_run):
    """Issue 27 item 5: sampling on a static cache never waits for the GPU between tokens. With
    CUDA's sync debug mode set to raise, a whole window samples (its prefill included)."""
    from autosong.model.bundle import load_bundle
    from autosong.model.sampler import Sampler, SamplingConfig

    model = load_bundle(trained_run, device="cuda").model
    ids = torch.randint(5, 2800, (1, 30), device="cuda")
    mask = torch.ones_like(ids, dtype=torch.bool)
    settings = SamplingConfig(temperature=1.0, top_k=50, guidance=3.0, seed=0)
    Sampler(model, static=True).generate(ids, mask, 16, settings)  # warm-up: lazy CUDA initialisation syncs
    torch.cuda.set_sync_debug_mode("error")
    try:
        codes = Sampler(model, static=True).generate(ids, mask, 16, settings)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert codes.shape[-1] == 16


def test_api_generates_on_cuda_in_bf16_beyond_the_window(trained_run):
    from autosong.model.api import AutoSong
    from autosong.model.sampler import SamplingConfig

    song = AutoSong.load(trained_run, device="cuda", dtype="auto")
    assert song.device.type == "cuda" and song.codec.device.type == "cuda"
    seconds = song.bundle.model.cfg.window_frames / 75 + 2.0
    out = song.generate(["[verse]\n我爱你\n", "la la la\n"], song.genres[-1], seconds, SamplingConfig(seed=0))
    assert out.codes.shape == (2, 2, round(seconds * 75)) and out.timing["device"].startswith("cuda")
    assert all(np.isfinite(a).all() for a in out.audio)


def test_eval_on_cuda_matches_cpu(trained_run, small_data):
    from autosong.eval.evaluate import evaluate
    from autosong.model.bundle import load_bundle

    cpu = evaluate(load_bundle(trained_run), str(small_data), "val")
    gpu = evaluate(load_bundle(trained_run, device="cuda"), str(small_data), "val")
    assert abs(cpu["ce"]["mean"] - gpu["ce"]["mean"]) < 1e-3


def test_encoders_on_the_gpu_build_what_cpu_encoders_build(small_data, tmp_path, ray_local):
    """`--gpus-per-worker`: the codec runs on the actor's GPU; codes agree with the CPU build's
    except in rare near-ties, and the dataset verifies."""
    import io

    from autosong.manifests import read_manifest
    from autosong.pipeline.build import BuildConfig, build
    from autosong.manifests.shard_reader import read_samples
    from autosong.pipeline.synth import synth_corpus
    from autosong.pipeline.verify import verify

    corpus = tmp_path / "corpus"
    synth_corpus(corpus, songs=4, seconds=4, seed=5)
    cpu = build(BuildConfig(str(corpus), str(tmp_path / "cpu"), codec="test", shard_samples=2))
    gpu = build(BuildConfig(str(corpus), str(tmp_path / "gpu"), codec="test", shard_samples=2, gpus_per_worker=0.5))
    assert gpu.built == cpu.built == 4 and verify(tmp_path / "gpu")[1] == []

    def codes(out):
        rows = read_manifest(out, "samples")
        found = {}
        for shard in {r["shard"] for r in rows}:
            for key, files in read_samples(out / "shards" / shard).items():
                found[key] = np.load(io.BytesIO(files["codes.npy"]))
        return found

    a, b = codes(tmp_path / "cpu"), codes(tmp_path / "gpu")
    agree = np.mean(np.concatenate([(a[k] == b[k]).ravel() for k in a]))
    assert agree > 0.99, agree


def test_flex_attention_prior_trains_as_the_dense_bias_on_cuda():
    """The prior inside FlexAttention's compiled kernel (what CUDA training uses): the dense bias's
    loss and gradients, the widths' included (PyTorch has no backward for it on a CPU)."""
    from tests.model.test_transformer import batch, tiny

    grads = {}
    for kernel in ("dense", "flex"):
        model = tiny(cross_align="prior", prior_kernel=kernel, max_frames=2000, max_tokens=2000).cuda()
        codes, lengths, off, ids, mask = (t.cuda() for t in batch(B=2, T=300))
        mask[1, 4:] = False
        logits, pb = model(codes, lengths, off, ids, mask, song_frames=torch.tensor([400, 300], device="cuda"))
        loss = token_ce(model, logits, pb)[0]
        loss.backward()
        grads[kernel] = (loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()
                                         if p.grad is not None})
    (a, ga), (b, gb) = grads["dense"], grads["flex"]
    assert torch.allclose(a, b, rtol=1e-4), (a, b)
    widths = [n for n in ga if n.endswith("prior_log_w")]
    assert widths and all(gb[n].abs().sum() > 0 for n in widths)  # the widths still learn
    for n in ga:
        assert torch.allclose(ga[n], gb[n], rtol=1e-3, atol=1e-5), n
