"""One set of sampler defaults: bench/sing.py's "default" row, generate, eval, the demo and the
studio all take SamplingConfig's, so the figures the benchmark chose are what users get."""
import importlib.util
from dataclasses import asdict

from autosong.model.sampling import SamplingConfig
from tests.conftest import ROOT


def _bench_sing():
    spec = importlib.util.spec_from_file_location("bench_sing", ROOT / "bench/sing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmarks_default_row_is_what_generate_and_eval_sample_with():
    from autosong.eval_cli import parser as eval_parser
    from autosong.generate_cli import parser as generate_parser
    from autosong.command_line import sampling_from_args

    bench = _bench_sing()
    assert bench.sampler("default", 7) == SamplingConfig(seed=7)
    generate = generate_parser().parse_args(["--checkpoint", "r", "--lyrics", "l.txt"])
    assert sampling_from_args(generate, context=SamplingConfig().context) == SamplingConfig()
    evaluated = eval_parser().parse_args(["--checkpoint", "r", "--data", "d"])
    assert sampling_from_args(evaluated) == SamplingConfig()
    old = bench.sampler("T1 k250 cfg3", 0)  # the defaults before the benchmark chose, kept as a row
    assert (old.temperature, old.top_k, old.guidance) == (1.0, 250, 3.0)
    assert asdict(SamplingConfig())["temperature"] < 1.0
    assert SamplingConfig().note_hold > 0 and bench.sampler("code by code", 0).note_hold == 0  # fifth round's A/B
    assert old.note_hold == 0


def test_the_demo_trains_a_design_the_benchmark_measures():
    from autosong.demo import DEMO_RECIPE, SINGING_DESIGN

    bench = _bench_sing()
    pattern = DEMO_RECIPE[DEMO_RECIPE.index("--model.pattern"): DEMO_RECIPE.index("--model.pattern") + 2]
    assert [*pattern, *SINGING_DESIGN] in bench.DESIGNS.values()
