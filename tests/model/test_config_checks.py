"""Every numeric field of the model, train, autoencoder and sampling configs has a declared range:
just inside it is accepted, just outside it is refused with a message naming the field; and the
same check guards presets, command-line overrides and loaded bundles (a bundle's: tests/test_damaged_inputs.py)."""
import dataclasses

import pytest

from autosong.model.autoencoders import AEConfig
from autosong.model.config_checks import check_ranges
from autosong.model.model_config import ModelConfig
from autosong.model.sampler import SamplingConfig
from autosong.train.config import TrainConfig

CONFIGS = [(ModelConfig, "model"), (TrainConfig, "train"), (AEConfig, "ae"), (SamplingConfig, "sampling")]
FIELDS = [(cls, section, f) for cls, section in CONFIGS for f in dataclasses.fields(cls) if "range" in f.metadata]


def _edges(f):
    """(values just inside the range, values just outside it) for one field."""
    low, high, above, each = f.metadata["range"]
    many = f.type in ("tuple[int, ...]", "tuple[float, ...]")  # any number of values, each in the range
    whole = f.type == "tuple[int, ...]" or isinstance(f.default, int) and not isinstance(f.default, bool)
    step = 1 if whole else 1e-6
    inside, outside = [], [float("nan")]
    if low is not None:
        inside.append(low + step if above else low)
        outside.append(low if above else low - step)
    if high is not None:
        inside.append(high)
        outside.append(high + step)
    if whole:
        outside.append(low + 0.5 if low is not None else 0.5)
    if many:
        return [(v,) for v in inside], [(v,) for v in outside]
    if each:
        return [(v, v) for v in inside], [(v, f.default[1]) for v in outside]
    return inside, outside


def test_every_numeric_field_has_a_range():
    for cls, section in CONFIGS:
        numeric = [f.name for f in dataclasses.fields(cls)
                   if f.type in ("int", "float", "tuple[float, float]") and f.name not in ("compile",)]
        assert numeric and all("range" in f.metadata for f in dataclasses.fields(cls) if f.name in numeric), section


@pytest.mark.parametrize("cls,section,f", FIELDS, ids=[f"{s}.{f.name}" for _, s, f in FIELDS])
def test_just_inside_is_accepted_and_just_outside_refused(cls, section, f):
    inside, outside = _edges(f)
    config = cls()
    for value in inside:
        object.__setattr__(config, f.name, value)
        check_ranges(config, section)
    for value in outside:
        object.__setattr__(config, f.name, value)
        with pytest.raises(ValueError, match=rf"^{section}\.{f.name} must be"):
            check_ranges(config, section)


@pytest.mark.parametrize("override,says", [
    (["--model.n_heads", "0"], "model.n_heads must be at least 1, got 0"),
    (["--model.d_model", "-8"], "model.d_model must be at least 1, got -8"),
    (["--train.betas", "[2.0, 0.5]"], "train.betas must be in [0, 0.9999], got (2.0, 0.5)"),
])
def test_overrides_the_issue_found_are_one_line(override, says, tmp_path):
    from tests.conftest import train_cli

    out = train_cli("--data", str(tmp_path), "--run", str(tmp_path / "run"), *override)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
    assert says in out.stderr.strip().splitlines()[-1]
