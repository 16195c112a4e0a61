import os

import numpy as np
import pytest

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def ray_local():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import logging

    import ray

    ray.init(num_cpus=2, object_store_memory=80 * 2**20, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def codec():
    from model.codec import Codec

    return Codec.load("test")


@pytest.fixture(scope="session")
def tokenizer():
    from model.lyrics import default_tokenizer

    return default_tokenizer()


def music_signal(seconds: float, sr: int = 24_000, seed: int = 0) -> np.ndarray:
    """Notes with harmonics and a noisy percussion layer: not the codec's seeding signal."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    pitch = 220 * 2 ** (rng.integers(0, 12, size=int(seconds * 4) + 1) / 12)
    f = pitch[(t * 4).astype(int)]
    wav = 0.3 * np.sin(2 * np.pi * f * t) + 0.1 * np.sin(4 * np.pi * f * t)
    wav += 0.05 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0.9)
    return wav.astype(np.float32)
