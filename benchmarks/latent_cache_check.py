"""What it costs that the latent cache proves what it holds (src/cfld/training/latent_cache.py), against what the
cache saves. One command (about a minute on 2 CPU cores):

    python benchmarks/latent_cache_check.py

At the paper's size (512x512 photos, 4x64x64 latents, shards of 256 photos):

* **at start-up, per photo**: hashing its file (SHA-256, threads; the real DeepFashion test photos, re-encoded
  as 512x352 JPEGs as `cfld prepare --size 512x352` writes them), and checking its share of a shard (reading
  it, shape, finite, std >= 0, SHA-256 of the tensors, the record against the dataset);
* **per step**: reading a batch's posteriors from checked shards (the check adds nothing per step but one
  header read the first time a shard is opened);

against **encoding** a photo with Stable Diffusion 1.5's VAE encoder (random weights, the same architecture,
fp32 on this CPU): what each start would cost without the cache. The ratio is check / encode.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cfld.checkpoint import SD15_VAE_CONFIG  # noqa: E402
from cfld.training.data_identity import photo_digests  # noqa: E402
from cfld.training.latent_cache import Expected, LatentCache, _shard_file  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepfashion-real" / "images"


def photos(folder: Path, count: int) -> dict[str, Path]:
    """``count`` JPEGs at 512x352 (the real photos, repeated under new names if there are fewer)."""
    sources = sorted(SHARED.glob("*.png")) if SHARED.is_dir() else []
    out = {}
    for i in range(count):
        if sources:
            image = Image.open(sources[i % len(sources)]).convert("RGB").resize((352, 512), Image.BICUBIC)
        else:
            image = Image.effect_noise((352, 512), 64).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=95)
        path = folder / f"photo-{i:05d}.jpg"
        path.write_bytes(buffer.getvalue())
        out[path.name] = path
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=4, help="shards of 256 photos to check (default 4)")
    parser.add_argument("--encode", type=int, default=2, help="photos to encode with the SD VAE (default 2)")
    args = parser.parse_args()
    torch.manual_seed(0)
    count = 256 * args.shards
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "photos").mkdir()
        files = photos(folder / "photos", count)
        size = sum(p.stat().st_size for p in files.values())
        start = time.perf_counter()
        digests = photo_digests(files)
        hash_s = (time.perf_counter() - start) / count
        expected = Expected("0" * 16, (512, 512), (4, 64, 64), digests, 256)
        cache_dir = folder / "cache"
        cache_dir.mkdir()
        for number in range(args.shards):
            mean, std = torch.randn(256, 4, 64, 64), torch.rand(256, 4, 64, 64)
            save_file({"mean": mean, "std": std}, str(_shard_file(cache_dir, number)),
                      metadata=expected.metadata(number, mean, std))
        start = time.perf_counter()
        checked = [expected.problem(number, _shard_file(cache_dir, number)) for number in range(args.shards)]
        check_s = (time.perf_counter() - start) / count
        assert all(problem is None for problem, _ in checked), checked
        cache = LatentCache(cache_dir, expected, [digest for _, digest in checked])
        names = list(digests)
        batch = [names[i] for i in torch.randperm(count)[:16].tolist()]  # 8 pairs: 16 photos
        cache.posterior(batch)  # the first opening of the shards (their header check)
        start = time.perf_counter()
        for _ in range(20):
            cache.posterior(batch)
        step_s = (time.perf_counter() - start) / 20

    from diffusers import AutoencoderKL

    vae = AutoencoderKL(**SD15_VAE_CONFIG).eval()
    images = torch.randn(args.encode, 3, 512, 512)
    with torch.no_grad():
        vae.encode(images[:1])
        start = time.perf_counter()
        vae.encode(images)
        encode_s = (time.perf_counter() - start) / args.encode

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {count} photos of "
          f"{size / count / 1e3:.0f} kB (512x352 JPEG), {args.shards} shards of 256 at 512x512\n")
    print("| per photo | ms | vs encoding it |")
    print("| --- | ---: | ---: |")
    print(f"| hash the photo (start-up) | {hash_s * 1e3:.3f} | {hash_s / encode_s:.5f}x |")
    print(f"| check its share of a shard (start-up) | {check_s * 1e3:.3f} | {check_s / encode_s:.5f}x |")
    print(f"| both: what the check costs at start-up | {(hash_s + check_s) * 1e3:.3f} | "
          f"{(hash_s + check_s) / encode_s:.5f}x |")
    print(f"| encode it with the SD 1.5 VAE (fp32, CPU) | {encode_s * 1e3:.0f} | 1.00000x |")
    print(f"\nper step, 8 pairs (16 posteriors) from checked shards: {step_s * 1e3:.2f} ms "
          "(the check adds nothing per step)")
    print(f"50,000 photos (about DeepFashion's training set) at start-up: {(hash_s + check_s) * 50000:.0f} s of "
          f"checking (encoding them: {encode_s * 50000 / 3600:.0f} h on this CPU)")


if __name__ == "__main__":
    main()
