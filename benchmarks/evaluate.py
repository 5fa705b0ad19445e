"""Benchmark: `cfld evaluate` (cfld.metrics) against the original CFLD evaluation, same images, one run.

"Original" re-implements how the original code scores a test set (its metric module and test loop):
per micro-batch, Inception-v3 features of the generated images and LPIPS-AlexNet on the batch, then
scikit-image PSNR / SSIM (window 51) / SSIM_256 one image at a time on float32 (3, H, W) arrays; then
Inception features of every FID reference image (recomputed at every evaluation); then np.cov and
scipy's sqrtm for the Frechet distance. Images are read from files with PIL and resized as its
datasets do.

"Ours" is ``cfld.metrics.evaluate_folders`` on the same folders: batched torch metrics (scipy's
running-sum filters on the CPU), the same networks, and FID reference statistics cached by content, so
we time it twice: cold (the first evaluation, statistics computed and cached) and warm (every later
evaluation, e.g. training's periodic one).

Inception and AlexNet use torchvision's real weights when they are in its cache, else random weights
of the same architecture (stated in the output; timings and agreement do not depend on the values).

    python benchmarks/evaluate.py                  # 16 pairs, 16 reference images
    python benchmarks/evaluate.py --pairs 64 --reference 64
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from cfld.metrics import fid as FID
from cfld.metrics.evaluate import EVAL_SIZE, Evaluator, evaluate_folders
from cfld.metrics.lpips import LPIPSAlex
from cfld.metrics.weights import torchvision_cache_dir

SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"


def make_folders(root: Path, pairs: int, reference: int, seed: int = 0) -> tuple[Path, Path, Path, str]:
    """gt/, gen/ (degraded copies: noise, blur, shift) and ref/ at 256x176 from the real photos."""
    rng = np.random.default_rng(seed)
    photos = sorted(p for p in SHARED_IMAGES.glob("*") if "mask" not in p.name) if SHARED_IMAGES.is_dir() else []
    source = f"{len(photos)} real photos of {SHARED_IMAGES}" if photos else "random images (../shared is absent)"
    h, w = EVAL_SIZE
    folders = [root / name for name in ("gt", "gen", "ref")]
    for folder in folders:
        folder.mkdir()

    def photo(i: int) -> Image.Image:
        if not photos:
            return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        image = Image.open(photos[i % len(photos)]).convert("RGB").resize((w, h), Image.BICUBIC)
        return image.transpose(Image.FLIP_LEFT_RIGHT) if (i // len(photos)) % 2 else image

    for i in range(pairs):
        truth = photo(i)
        truth.save(folders[0] / f"{i:05d}.png")
        blurred = np.asarray(truth.filter(ImageFilter.GaussianBlur(1 + i % 3)), dtype=np.float64)
        noisy = np.clip(blurred + rng.normal(0, 4 + i % 9, blurred.shape), 0, 255).astype(np.uint8)
        Image.fromarray(np.roll(noisy, i % 5, axis=1)).save(folders[1] / f"src_2_{i:05d}.png")
    for i in range(reference):
        photo(i + 3).rotate(3 * (i % 4), resample=Image.BICUBIC).save(folders[2] / f"{i:05d}.png")
    return *folders, source


def random_inception() -> torch.nn.Module:
    """Inception-v3 with random weights whose batch-norm statistics are measured on random images, so
    that its features neither vanish nor explode (the default statistics make them do one or the other)."""
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=True, init_weights=True)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration batch
            module.reset_running_stats()
    with torch.no_grad():
        net.train()(torch.rand(8, 3, 299, 299) * 2 - 1)
    return net.eval()


def networks(seed: int = 0) -> tuple[dict, dict, str]:
    """State dicts of Inception-v3 and AlexNet: torchvision's cached real weights, else random ones."""
    from torchvision.models import AlexNet_Weights, Inception_V3_Weights, alexnet

    states, notes = {}, []
    torch.manual_seed(seed)
    for name, url, build in (("inception", Inception_V3_Weights.IMAGENET1K_V1.url, random_inception),
                             ("alexnet", AlexNet_Weights.IMAGENET1K_V1.url, alexnet)):
        file = torchvision_cache_dir() / url.rsplit("/", 1)[-1]
        if file.is_file():
            states[name] = torch.load(file, map_location="cpu", weights_only=True)
            notes.append(f"{name}: real weights ({file.name})")
        else:
            states[name] = build().state_dict()
            notes.append(f"{name}: RANDOM weights ({file.name} not in {file.parent})")
    return states["inception"], states["alexnet"], "; ".join(notes)


# -- the original way ----------------------------------------------------------------------------------


class OriginalMetric:
    """The original's metric module rebuilt from its description: an nn.Sequential of the Inception
    blocks, lpips.LPIPS(net='alex'), and per-image scikit-image calls."""

    def __init__(self, inception_state, alexnet_state):
        import lpips
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        net.load_state_dict(inception_state)
        self.blocks = torch.nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, torch.nn.MaxPool2d(3, 2), net.Conv2d_3b_1x1,
            net.Conv2d_4a_3x3, torch.nn.MaxPool2d(3, 2), net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,
            net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c,
            torch.nn.AdaptiveAvgPool2d((1, 1))).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.lpips = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
        from cfld.metrics.lpips import alexnet_features_to_lpips

        self.lpips.load_state_dict(alexnet_features_to_lpips(alexnet_state), strict=False)

    def inception(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear")
        x[:, 0] = x[:, 0] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        x[:, 1] = x[:, 1] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        x[:, 2] = x[:, 2] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return self.blocks(x).reshape(x.shape[0], -1)

    def __call__(self, gt: torch.Tensor, pred: torch.Tensor, timings: dict):
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        start = time.perf_counter()
        feats = self.inception(pred.clone())
        timings["inception"] += time.perf_counter() - start
        start = time.perf_counter()
        lp = self.lpips(pred, gt, normalize=True).reshape(-1)
        timings["lpips"] += time.perf_counter() - start
        start = time.perf_counter()
        out = {"psnr": [], "ssim": [], "ssim_256": []}
        for g, p in zip(gt.numpy(), pred.numpy()):
            out["psnr"].append(peak_signal_noise_ratio(g, p, data_range=1))
            out["ssim"].append(structural_similarity(g, p, data_range=1, win_size=51, channel_axis=0))
            g256, p256 = g * 255.0, p * 255.0
            out["ssim_256"].append(structural_similarity(g256, p256, gaussian_weights=True, sigma=1.5,
                                                         use_sample_covariance=False, channel_axis=0,
                                                         data_range=p256.max() - p256.min()))
        timings["psnr/ssim/ssim_256"] += time.perf_counter() - start
        return feats, lp, out


def read(path: Path) -> torch.Tensor:
    """The original datasets' Resize((256, 176), bicubic) + ToTensor (our files are already that size)."""
    image = Image.open(path).convert("RGB")
    if image.size != EVAL_SIZE[::-1]:
        image = image.resize(EVAL_SIZE[::-1], Image.BICUBIC)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255.0


def original_evaluation(metric: OriginalMetric, gt_dir: Path, gen_dir: Path, ref_dir: Path, batch: int):
    import scipy.linalg

    timings = {k: 0.0 for k in ("reading", "inception", "lpips", "psnr/ssim/ssim_256", "reference inception", "fid")}
    gts, gens, refs = sorted(gt_dir.iterdir()), sorted(gen_dir.iterdir()), sorted(ref_dir.iterdir())
    feats, per_pair = [], {"psnr": [], "ssim": [], "ssim_256": [], "lpips": []}
    with torch.no_grad():
        for i in range(0, len(gts), batch):
            start = time.perf_counter()
            gt = torch.stack([read(p) for p in gts[i:i + batch]])
            pred = torch.stack([read(p) for p in gens[i:i + batch]])
            timings["reading"] += time.perf_counter() - start
            f, lp, out = metric(gt, pred, timings)
            feats.append(f.numpy())
            per_pair["lpips"].extend(lp.tolist())
            for k, v in out.items():
                per_pair[k].extend(v)
        real = []
        for i in range(0, len(refs), batch):
            start = time.perf_counter()
            images = torch.stack([read(p) for p in refs[i:i + batch]])
            timings["reading"] += time.perf_counter() - start
            start = time.perf_counter()
            real.append(metric.inception(images).numpy())
            timings["reference inception"] += time.perf_counter() - start
    start = time.perf_counter()
    real, fake = np.concatenate(real).astype(np.float64), np.concatenate(feats).astype(np.float64)
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + offset).dot(s2 + offset))
    fid = float(np.real((mu1 - mu2).dot(mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(covmean))))
    timings["fid"] += time.perf_counter() - start
    return {k: np.array(v) for k, v in per_pair.items()}, fid, timings


# -- main ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=16, help="generated/ground-truth pairs")
    parser.add_argument("--reference", type=int, default=16, help="FID reference images (the original: training set)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="micro-batch of both (the original's TEST.MICRO_BATCH_SIZE)")
    args = parser.parse_args()

    inception_state, alexnet_state, weights_note = networks()
    print(f"device: cpu, {torch.get_num_threads()} torch threads; {weights_note}")
    with tempfile.TemporaryDirectory() as tmp:
        gt_dir, gen_dir, ref_dir, source = make_folders(Path(tmp), args.pairs, args.reference)
        print(f"{args.pairs} pairs and {args.reference} FID reference images at 256x176 from {source}\n")

        start = time.perf_counter()
        original = OriginalMetric(inception_state, alexnet_state)
        orig_pairs, orig_fid, orig_t = original_evaluation(original, gt_dir, gen_dir, ref_dir, args.batch_size)
        orig_total = time.perf_counter() - start

        nets = {"lpips": LPIPSAlex(alexnet_state), "fid": FID.OriginalInception(inception_state)}
        metrics = ["psnr", "ssim", "ssim_256", "lpips", "fid"]
        ours_t = {}
        for run in ("cold", "warm"):
            start = time.perf_counter()
            ev = Evaluator(metrics, EVAL_SIZE, "cpu", args.batch_size, ref_dir, Path(tmp) / "cache",
                           progress=False, networks=nets)
            result = evaluate_folders(gen_dir, gt_dir, ref_dir, batch_size=args.batch_size, progress=False,
                                      evaluator=ev)
            ours_t[run] = time.perf_counter() - start

        # the pixel metrics alone, same arrays, both ways (the part the original does one image at a time)
        from cfld.metrics.image_quality import pixel_metrics

        gts = torch.stack([read(p) for p in sorted(gt_dir.iterdir())])
        gens = torch.stack([read(p) for p in sorted(gen_dir.iterdir())])
        start = time.perf_counter()
        for i in range(0, len(gts), args.batch_size):
            pixel_metrics(gts[i:i + args.batch_size], gens[i:i + args.batch_size])
        ours_pixel = time.perf_counter() - start

    print("original way, seconds:", ", ".join(f"{k} {v:.2f}" for k, v in orig_t.items()), f"| total {orig_total:.2f}")
    print(f"ours, seconds: cold {ours_t['cold']:.2f} (reference statistics computed and cached), "
          f"warm {ours_t['warm']:.2f} (cached)")
    print(f"PSNR+SSIM+SSIM_256 alone: original {orig_t['psnr/ssim/ssim_256']:.2f} s, ours {ours_pixel:.2f} s "
          f"-> {orig_t['psnr/ssim/ssim_256'] / ours_pixel:.2f}x")
    print(f"speed-up, all metrics: {orig_total / ours_t['cold']:.2f}x cold, {orig_total / ours_t['warm']:.2f}x warm "
          f"(target >= 10x)")

    rows = {row["generated"]: row for row in result["per_pair"]}
    ordered = [rows[f"src_2_{i:05d}.png"] for i in range(args.pairs)]
    diffs = {k: float(np.abs(np.array([r[k] for r in ordered]) - orig_pairs[k]).max()) for k in orig_pairs}
    diffs["fid"] = abs(result["metrics"]["fid"] - orig_fid)
    print("largest |ours - original|: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    print("means (ours): " + ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items())
          + f"; original FID {orig_fid:.4f}")


if __name__ == "__main__":
    main()
