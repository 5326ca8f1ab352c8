"""Shared fixtures: tiny synthetic raws and photos the tests make themselves."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def load_experiment(name: str) -> ModuleType:
    """experiments/NAME.py as a module (the folder is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test when this clone has none."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is only on the developers' machines)")
    return path


@pytest.fixture
def small_dng(tmp_path: Path) -> Path:
    """A 64x96 RGGB DNG of a smooth colour gradient, 12-bit, black level 64."""
    from hyperisp.raw.dng import write_dng

    rng = np.random.default_rng(0)
    h, w = 64, 96
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    rgb = np.stack([0.2 + 0.6 * xx, 0.5 * np.ones_like(xx), 0.2 + 0.6 * yy], -1)
    mosaic = np.zeros((h, w))
    mosaic[0::2, 0::2] = rgb[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = rgb[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = rgb[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = rgb[1::2, 1::2, 2]
    mosaic = mosaic + rng.normal(0, 0.002, mosaic.shape)
    data = (64 + np.clip(mosaic, 0, 1) * (4095 - 64)).round().astype(np.uint16)
    return write_dng(tmp_path / "small.dng", data, cfa_phase="RGGB", black_level=64, white_level=4095,
                     as_shot_neutral=np.array([0.5, 1.0, 0.7]))


@pytest.fixture
def small_png(tmp_path: Path) -> Path:
    from hyperisp.io.images import write_image

    rng = np.random.default_rng(1)
    img = np.clip(0.5 + rng.normal(0, 0.1, (40, 56, 3)), 0, 1)
    return write_image(tmp_path / "noisy.png", img)


@pytest.fixture
def one_thread():
    """Run a test with one torch thread: small training steps are faster, and timing-free."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def training_photos(tmp_path_factory) -> Path:
    """Five 40x40 colour-wave PNGs: a training/eval data folder small enough for a few steps."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    g = np.random.default_rng(0)
    for i in range(5):
        base = g.uniform(0.2, 0.8, (3, 1, 1))
        yy, xx = np.mgrid[0:40, 0:40] / 40
        image = base + 0.2 * np.sin(8 * xx + 5 * yy + np.arange(3)[:, None, None] + i)
        Image.fromarray((np.clip(image, 0, 1).transpose(1, 2, 0) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


# Models small enough for a few training steps in seconds, on the CPU or a GPU.
TINY_MODELS = {
    "isp": {"n_fwd": 4, "n_embed": 4, "n_hid": 8},
    "denoise": {"base_channels": 6, "depth": 2, "snet_channels": 6, "snet_layers": 2, "embed_channels": [4, 4, 4]},
}


@pytest.fixture(scope="session")
def tiny_config(training_photos):
    """``tiny_config(task="isp", **fields) -> TrainConfig``: a few steps of a tiny model on ``training_photos``."""
    from hyperisp.train.trainer import TrainConfig

    def make(task: str = "isp", **fields) -> TrainConfig:
        base = dict(task=task, data=[str(training_photos)], crop=32, batch=2, iters=6, warmup=2, val_images=1,
                    validate_every=3, checkpoint_every=3, lr=1e-3, model_overrides=TINY_MODELS[task])
        return TrainConfig(**{**base, **fields})

    return make
