"""Training data: photo cache, synthetic isp/denoise batches, ZRR and SIDD loaders, losses."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hyperisp.data import process
from hyperisp.errors import HyperispError
from hyperisp.train.datasets import DenoiseSampler, ImageCache, IspSampler, list_images, make_sampler, split_holdout
from hyperisp.train.losses import estimate_sigma_map, mse_msssim_loss, vdn_loss
from hyperisp.train.real_data import SiddSampler, ZrrSampler, pynet_pack, sidd_pairs, zrr_pairs

SHARED = Path(__file__).resolve().parents[2] / "shared"


def _smooth_photo(seed: int, h: int, w: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    channels = [0.5 + 0.4 * np.sin(6 * xx * g.uniform(0.5, 2) + 4 * yy * g.uniform(0.5, 2) + c) for c in range(3)]
    return (np.stack(channels, -1) * 255).astype(np.uint8)


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(_smooth_photo(i, 40, 48)).save(folder / f"p{i}.png")
    Image.fromarray(_smooth_photo(9, 40, 40)).save(folder / "sub" / "q.jpg", quality=95)
    Image.fromarray(_smooth_photo(10, 40, 44)).save(folder / "w.webp", lossless=True)
    return folder


def test_list_and_cache_reads_png_jpg_webp(photo_folder):
    paths = list_images([photo_folder])
    assert sorted(p.suffix for p in paths) == [".jpg", ".png", ".png", ".png", ".png", ".webp"]
    cache = ImageCache(paths, min_size=34)
    assert len(cache) == 6 and cache.images[0].dtype == torch.uint8
    webp = cache.images[[p.suffix for p in cache.paths].index(".webp")]
    assert np.array_equal(webp.permute(1, 2, 0).numpy(), _smooth_photo(10, 40, 44))  # lossless
    with pytest.raises(HyperispError):
        list_images([photo_folder / "missing"])


def test_isp_sampler_shapes_ranges_and_determinism(photo_folder):
    cache = ImageCache(list_images([photo_folder]))
    sampler = IspSampler(cache, crop=32, batch=5, clean_fraction=0.2)
    packed, target, camera = sampler.sample(torch.Generator().manual_seed(0))
    assert packed.shape == (5, 4, 16, 16) and target.shape == (5, 3, 32, 32)
    assert packed.min() >= 0 and packed.max() <= 1 and target.min() >= 0 and target.max() <= 1
    assert camera["cam2rgb"].shape == (5, 3, 3) and camera["red_gain"].shape == (5,)
    again, _, _ = sampler.sample(torch.Generator().manual_seed(0))
    assert torch.equal(packed, again)
    # All-clean, all-protocol samples: the packed input is exactly the target's RGGB samples (12-bit or finer),
    # and the camera that develops them is the identity.
    exact = IspSampler(cache, crop=32, batch=3, clean_fraction=1.0, protocol_fraction=1.0)
    packed, target, camera = exact.sample(torch.Generator().manual_seed(1))
    assert torch.allclose(packed[:, 0], target[:, 0, 0::2, 0::2], atol=1 / 1023)
    assert torch.allclose(packed[:, 3], target[:, 2, 1::2, 1::2], atol=1 / 1023)
    assert torch.equal(camera["cam2rgb"], torch.eye(3).expand(3, 3, 3))
    assert all(torch.equal(camera[k], torch.ones(3)) for k in ("red_gain", "blue_gain", "rgb_gain", "exposure"))


def test_isp_sampler_camera_develops_target_back_to_the_photo(photo_folder):
    """Unprocessed samples carry the random camera that made them: developing the clean target
    with it gives back the sRGB crop (up to the highlight clipping of over-exposed draws)."""
    cache = ImageCache(list_images([photo_folder]))
    sampler = IspSampler(cache, crop=32, batch=6, protocol_fraction=0.0)
    generator = torch.Generator().manual_seed(4)
    state = generator.get_state()
    _, target, camera = sampler.sample(generator)
    generator.set_state(state)
    srgb = cache.random_crops(6, 32, generator)
    developed = process(target, camera)
    assert camera["red_gain"].min() >= 1.2 and not torch.equal(camera["cam2rgb"][0], torch.eye(3))
    unclipped = camera["exposure"] <= 1
    assert unclipped.any()
    assert (developed[unclipped] - srgb[unclipped]).abs().max() < 2e-3


def test_isp_sampler_groups_crops_of_one_photo_with_one_camera(tmp_path, photo_folder):
    flat = tmp_path / "flat"
    flat.mkdir()
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (120, 120, 120)]
    for i, colour in enumerate(colours):
        Image.fromarray(np.full((40, 48, 3), colour, np.uint8)).save(flat / f"{i}.png")
    cache = ImageCache(list_images([flat]))
    sampler = IspSampler(cache, crop=32, batch=8, clean_fraction=1.0, protocol_fraction=1.0, group=4)
    _, target, _ = sampler.sample(torch.Generator().manual_seed(0))
    means = target.mean(dim=(2, 3))  # flat photos: a crop's colour names its photo
    for run in (means[:4], means[4:]):
        torch.testing.assert_close(run, run[:1].expand(4, 3))
    # Photos with texture and a random camera: one camera per run of crops, different runs differ.
    grouped = IspSampler(ImageCache(list_images([photo_folder])), crop=32, batch=6, protocol_fraction=0.0, group=3)
    packed, _, camera = grouped.sample(torch.Generator().manual_seed(1))
    for key in ("red_gain", "blue_gain", "rgb_gain", "exposure", "cam2rgb"):
        assert torch.equal(camera[key][:3], camera[key][:1].expand_as(camera[key][:3])), key
        assert not torch.equal(camera[key][0], camera[key][3]), key
    assert not torch.equal(packed[0], packed[1])  # crops at their own positions
    with pytest.raises(ValueError, match="multiple of the group"):
        IspSampler(cache, crop=32, batch=6, group=4)


def test_denoise_sampler_adds_noise(photo_folder):
    sampler = DenoiseSampler(ImageCache(list_images([photo_folder])), crop=32, batch=4)
    noisy, clean = sampler.sample(torch.Generator().manual_seed(0))
    assert noisy.shape == clean.shape == (4, 3, 32, 32)
    assert (noisy - clean).abs().mean() > 1e-3


def test_training_config_sets_the_denoise_noise_mixture(photo_folder):
    from hyperisp.train.trainer import TrainConfig

    def lag1_correlation(noise: torch.Tensor) -> float:  # horizontal neighbours
        a, b = noise[..., :-1].flatten(), noise[..., 1:].flatten()
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    white = TrainConfig(task="denoise", data=["x"], noise_modes=[0, 1, 0], blur_prob=0.0)
    assert white.noise_options() == {"mode_probs": (0, 1, 0), "blur_prob": 0.0}
    assert TrainConfig(task="denoise", data=["x"]).noise_options() == {}
    correlations = {}
    for blur in (0.0, 1.0):
        config = TrainConfig(task="denoise", data=["x"], noise_modes=[0, 1, 0], blur_prob=blur)
        sampler, _ = make_sampler("denoise", [photo_folder], 32, 8, **config.noise_options())
        noisy, clean = sampler.sample(torch.Generator().manual_seed(0))
        correlations[blur] = lag1_correlation(noisy - clean)
    assert abs(correlations[0.0]) < 0.1 < 0.5 < correlations[1.0]  # white AWGN only, then blurred only
    assert TrainConfig(task="denoise", data=["x"], unclipped_awgn=0.5).noise_options() == {"unclipped_prob": 0.5}
    for bad in ({"noise_modes": [1, 1]}, {"noise_modes": [0, 0, 0]}, {"noise_modes": [1, -1, 1]}, {"blur_prob": 1.5},
                {"unclipped_awgn": -0.1}):
        with pytest.raises(HyperispError):
            TrainConfig(task="denoise", data=["x"], **bad)
    with pytest.raises(HyperispError, match="denoise task only"):
        TrainConfig(task="isp", data=["x"], blur_prob=0.5)


def test_holdout_split_is_disjoint_and_seeded(photo_folder):
    paths = list_images([photo_folder])
    train, val = split_holdout(paths, 2, seed=3)
    assert len(val) == 2 and not set(train) & set(val) and len(train) + len(val) == len(paths)
    assert split_holdout(paths, 2, seed=3) == (train, val)
    train_sampler, val_sampler = make_sampler("isp", [photo_folder], 32, 2, val_images=2, seed=3)
    assert set(val_sampler.cache.paths) == set(val) and not set(train_sampler.cache.paths) & set(val)


def test_zrr_loader_on_fixture(tmp_path):
    root = tmp_path / "zrr"
    (root / "huawei_raw").mkdir(parents=True)
    (root / "canon").mkdir()
    g = np.random.default_rng(0)
    raws = []
    for i in range(2):
        raw = g.integers(0, 1024, (32, 32)).astype(np.uint16)
        raws.append(raw)
        Image.fromarray(raw).save(root / "huawei_raw" / f"{i}.png")
        Image.fromarray(_smooth_photo(i, 32, 32)).save(root / "canon" / f"{i}.jpg")
    Image.fromarray(raws[0]).save(root / "huawei_raw" / "7.png")  # no JPEG: skipped
    pairs = zrr_pairs(root)
    assert [p[0].stem for p in pairs] == ["0", "1"]
    sampler = ZrrSampler(pairs, crop=32, batch=2)
    assert torch.allclose(sampler.raws[0][0], torch.from_numpy(raws[0].astype(np.float32) / 1020))
    packed, target = sampler.sample(torch.Generator().manual_seed(0))
    assert packed.shape == (2, 4, 16, 16) and target.shape == (2, 3, 32, 32)
    # PyNET order (B, Gb, R, Gr) vs our canonical (R, Gr(0,1), Gb(1,0), B).
    pynet = pynet_pack(raws[0])
    assert np.array_equal(pynet[2], raws[0][0::2, 0::2]) and np.array_equal(pynet[0], raws[0][1::2, 1::2])
    ours = sampler.raws[0][None]
    from hyperisp.raw.bayer import pack_bayer
    assert torch.allclose(pack_bayer(ours)[0, 0], torch.from_numpy(pynet[2].astype(np.float32) / 1020))
    with pytest.raises(HyperispError):
        zrr_pairs(tmp_path)


def test_sidd_loader_on_fixture(tmp_path):
    scene = tmp_path / "sidd" / "Data" / "0001_001_S6_00100_00060_3200_L"
    scene.mkdir(parents=True)
    gt = _smooth_photo(0, 40, 40)
    noisy = np.clip(gt.astype(int) + np.random.default_rng(1).integers(-10, 11, gt.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(scene / "NOISY_SRGB_010.PNG")
    Image.fromarray(gt).save(scene / "GT_SRGB_010.PNG")
    pairs = sidd_pairs(tmp_path / "sidd")
    assert len(pairs) == 1 and pairs[0][1].name == "GT_SRGB_010.PNG"
    n, c = SiddSampler(pairs, crop=16, batch=3).sample(torch.Generator().manual_seed(0))
    assert n.shape == c.shape == (3, 3, 16, 16)
    assert 2 / 255 < (n - c).abs().mean() < 8 / 255  # aligned: only the added noise differs
    train_sampler, val_sampler = make_sampler("denoise", [tmp_path / "sidd"], 16, 2)
    assert isinstance(train_sampler, SiddSampler) and val_sampler is None


def test_sigma_map_estimates_awgn_variance():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(1, 3, 64, 64, generator=g)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=g)
    estimate = estimate_sigma_map(noisy, clean)
    assert estimate.shape == clean.shape
    assert float(estimate.mean()) == pytest.approx(0.01, rel=0.1)


def test_vdn_loss_prefers_the_true_residual():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 3, 16, 16, generator=g)
    noise = 0.05 * torch.randn(clean.shape, generator=g)
    noisy = clean + noise
    snet = torch.cat([torch.full_like(clean, 2.0), torch.full_like(clean, 2.0 + np.log(0.0025))], 1)
    good = torch.cat([noise, torch.full_like(clean, np.log(1e-6))], 1)
    bad = torch.cat([torch.zeros_like(noise), torch.full_like(clean, np.log(1e-6))], 1)
    assert torch.isfinite(vdn_loss(good, snet, noisy, clean))
    assert vdn_loss(good, snet, noisy, clean) < vdn_loss(bad, snet, noisy, clean)


def test_mse_msssim_loss_zero_for_identical():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert float(mse_msssim_loss(x, x)) == pytest.approx(0.0, abs=1e-5)
    assert float(mse_msssim_loss(x, x.flip(-1))) > 0.1


@pytest.mark.skipif(not (SHARED / "datasets" / "train" / "urban100").is_dir(), reason="../shared datasets absent")
def test_pillow_reads_shared_lossless_webp():
    path = sorted((SHARED / "datasets" / "train" / "urban100").glob("*.webp"))[0]
    image = ImageCache([path]).images[0]
    assert image.shape[0] == 3 and min(image.shape[-2:]) > 256 and image.float().std() > 10


def test_vdn_loss_log_variance_is_relative_to_the_prior():
    # HyperVDN's D-Net starts at exactly zero: that must mean q(z)'s variance = eps2 (the prior),
    # not variance 1, which cost a KL term near 1e4 at the first iteration.
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 3, 16, 16, generator=g)
    noisy = clean + 0.01 * torch.randn(clean.shape, generator=g)
    snet = torch.zeros(2, 6, 16, 16)
    start = vdn_loss(torch.zeros(2, 6, 16, 16), snet, noisy, clean, eps2=5e-5)
    variance_one = torch.cat([torch.zeros(2, 3, 16, 16), torch.full((2, 3, 16, 16), -math.log(5e-5))], 1)
    assert start < 1e3 < vdn_loss(variance_one, snet, noisy, clean, eps2=5e-5)


def test_trainer_takes_each_image_loss_by_name_and_refuses_others():
    from hyperisp.train.losses import IMAGE_LOSSES, mse_loss
    from hyperisp.train.trainer import TrainConfig

    x, y = torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.5)
    assert float(mse_loss(x, y)) == pytest.approx(0.25)  # not the 0.5 L1 would give
    for name in IMAGE_LOSSES:
        assert TrainConfig(task="denoise", data=["x"], loss=name).loss == name
    with pytest.raises(HyperispError, match="loss 'l2'"):
        TrainConfig(task="denoise", data=["x"], loss="l2")
