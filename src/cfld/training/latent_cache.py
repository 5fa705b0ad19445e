"""The latent cache (``cache_latents``): every training photo encoded once by the frozen VAE.

CFLD's training encodes both photos of every pair at every step (paper Sec. 3.3; the original does), although
neither the photos nor the VAE ever change: a hundred epochs encode each DeepFashion photo about 200 times. The
cache keeps what the encoder gives, the posterior's ``mean`` and ``std``, and training then draws
``mean + std * eps`` itself, with ``eps`` from the same generator, in the same order and of the same dtype as the
VAE's own ``posterior.sample()``: the same distribution, the same random numbers, equal up to the rounding of
encoding photos in other batches (measured in ``docs/training.md``).

Layout, beside a prepared dataset unless ``latent_cache_dir`` says where::

    DATASET/latent-cache/SPLIT-VAEKEY-HxW/
        cache.json              format, the digest of the dataset's manifest (cfld-dataset.json), the VAE key,
                                the size, the photo names
        shard-00000.safetensors "mean" and "std", (N, C, h, w) float32, for photos 0..N-1 of cache.json

``VAEKEY`` is a digest of the VAE's weights and the dtype it encodes in, so another VAE gets another cache. Each
shard is written whole (temporary file, then rename): a killed encoding resumes with the shards it lacks, and
processes share the shards out. A cache whose manifest digest is not the dataset's (the folder was prepared
again) is refused with one sentence rather than silently used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ..errors import InputError
from ..io import atomic_path, atomic_write_text, read_json_object

FORMAT = "cfld-latent-cache/1"
INDEX = "cache.json"
FOLDER = "latent-cache"
SHARD_SIZE = 256  # photos per shard: 32 MiB at 512x512 in fp32


def cacheable(dataset) -> bool:
    """Whether ``dataset`` can be cached: it reads photos from a prepared folder with a manifest."""
    return all(hasattr(dataset, name) for name in ("photo", "photo_names", "manifest_path"))


def vae_key(vae) -> str:
    """16 hex digits of the VAE's weights (``state_dict``: as loaded, even if kept in 16 bits) and the dtype it
    encodes in."""
    digest = hashlib.sha256(str(next(vae.parameters()).dtype).encode())
    for name, value in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cache_folder(dataset, key: str, folder: str | Path | None = None) -> Path:
    """Where the cache of ``dataset`` encoded by the VAE of ``key`` lives."""
    base = Path(folder) if folder is not None else Path(dataset.manifest_path).parent / FOLDER
    height, width = dataset.image_size
    return base / f"{dataset.split}-{key}-{height}x{width}"


def check_index(folder: Path, dataset, key: str) -> dict[str, Any] | None:
    """The cache index in ``folder`` if there is one and it fits ``dataset``; a stale one is an InputError."""
    path = folder / INDEX
    if not path.is_file():
        return None
    index = read_json_object(path, "latent cache index")
    if index.get("format") != FORMAT:
        raise InputError(path, f"is not a latent cache index ({FORMAT}); delete {folder} to encode again")
    if index.get("manifest_sha256") != file_digest(dataset.manifest_path):
        raise InputError(folder, f"is a latent cache of another version of {dataset.manifest_path} (the dataset was "
                                 "prepared again since): delete the folder to encode again, "
                                 "or set cache_latents: false")
    if index.get("vae") != key or index.get("names") != dataset.photo_names() \
            or list(index.get("image_size", ())) != list(dataset.image_size):
        raise InputError(folder, "does not hold this dataset's photos at this size for this VAE: delete the folder "
                                 "to encode again, or set cache_latents: false")
    return index


def _shards(names: Sequence[str], size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, len(names))) for start in range(0, len(names), size)]


def _shard_file(folder: Path, number: int) -> Path:
    return folder / f"shard-{number:05d}.safetensors"


def _complete(path: Path, count: int) -> bool:
    try:
        with safe_open(str(path), framework="pt") as f:
            return set(f.keys()) == {"mean", "std"} and all(f.get_slice(k).get_shape()[0] == count
                                                            for k in ("mean", "std"))
    except Exception:  # noqa: BLE001 - a shard that cannot be read is encoded again
        return False


@torch.no_grad()
def build_latent_cache(dataset, vae, folder: str | Path | None = None, *, rank: int = 0, world: int = 1,
                       barrier: Callable[[], None] = lambda: None, batch_size: int = 8, progress: bool = True,
                       shard_size: int = SHARD_SIZE) -> LatentCache:
    """Encode every photo of ``dataset`` the cache lacks (process ``rank`` of ``world`` takes every world-th
    shard; ``barrier`` waits for all), and return the cache. The VAE encodes where its weights are, in their
    dtype, ``batch_size`` photos at a time."""
    key = vae_key(vae)
    folder = cache_folder(dataset, key, folder)
    names = dataset.photo_names()
    index = check_index(folder, dataset, key)
    parameter = next(vae.parameters())
    if index is None and rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
        index = {"format": FORMAT, "manifest_sha256": file_digest(dataset.manifest_path), "vae": key,
                 "image_size": list(dataset.image_size), "split": dataset.split, "shard_size": shard_size,
                 "names": names}
        atomic_write_text(folder / INDEX, json.dumps(index) + "\n", overwrite=True)
    barrier()
    index = check_index(folder, dataset, key)
    shard_size = int(index["shard_size"])
    shards = _shards(names, shard_size)
    todo = [(n, span) for n, span in enumerate(shards) if n % world == rank
            and not _complete(_shard_file(folder, n), span[1] - span[0])]
    bar = tqdm(total=sum(b - a for _, (a, b) in todo), desc="encoding photos for the latent cache", unit="photo",
               disable=not (progress and rank == 0) or not todo)
    for number, (start, stop) in todo:
        means, stds = [], []
        for first in range(start, stop, batch_size):
            batch = [dataset.photo(name) for name in names[first:min(first + batch_size, stop)]]
            posterior = vae.encode(torch.stack(batch).to(parameter.device, parameter.dtype)).latent_dist
            means.append(posterior.mean.float().cpu())
            stds.append(posterior.std.float().cpu())
            bar.update(len(batch))
        with atomic_path(_shard_file(folder, number), overwrite=True, what="a latent cache shard",
                         kept=f"the shards written before it, in {folder} (a new run goes on from them)") as tmp:
            save_file({"mean": torch.cat(means).contiguous(), "std": torch.cat(stds).contiguous()}, str(tmp))
    bar.close()
    barrier()
    missing = [n for n, (a, b) in enumerate(shards) if not _complete(_shard_file(folder, n), b - a)]
    if missing:
        raise InputError(folder, f"lacks {len(missing)} of its {len(shards)} shards after encoding (another process "
                                 "failed?): run again to encode them")
    return LatentCache(folder, names, shard_size, dataset.image_size)


class LatentCache:
    """The cached posteriors of photos at ``image_size``: ``posterior(names)`` -> ``(mean, std)``, read from the
    shards' memory maps; and ``layout``, the memory layout the VAE's own posterior would have."""

    def __init__(self, folder: Path, names: Sequence[str], shard_size: int, image_size: Sequence[int]):
        self.folder = Path(folder)
        self.row = {name: i for i, name in enumerate(names)}
        self.shard_size = shard_size
        self.image_size = tuple(image_size)
        self._open: dict[int, Any] = {}
        self._layouts: dict[tuple, torch.memory_format] = {}

    def __len__(self) -> int:
        return len(self.row)

    def _shard(self, number: int):
        if number not in self._open:
            self._open[number] = safe_open(str(_shard_file(self.folder, number)), framework="pt")
        return self._open[number]

    def posterior(self, names: Sequence[str], device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior mean and std of each photo named, stacked, on ``device`` in ``dtype``."""
        means, stds = [], []
        for name in names:
            if name not in self.row:
                raise InputError(self.folder, f"has no latents of photo {name!r}: delete the folder to encode again")
            number, offset = divmod(self.row[name], self.shard_size)
            shard = self._shard(number)
            means.append(shard.get_slice("mean")[offset : offset + 1])
            stds.append(shard.get_slice("std")[offset : offset + 1])
        return torch.cat(means).to(device=device, dtype=dtype), torch.cat(stds).to(device=device, dtype=dtype)

    @torch.no_grad()
    def layout(self, vae, count: int) -> torch.memory_format:
        """The memory layout of the posterior the VAE gives ``count`` photos here, found once per count by encoding
        zeros. ``torch.randn_like`` fills a tensor in memory order, so the noise training draws next follows the
        latents' layout; and a convolution backend may answer in ``channels_last`` for some batch sizes (oneDNN on
        CPUs does). Latents from the cache take the layout the VAE's own would have had."""
        parameter = next(vae.parameters())
        key = (count, parameter.device, parameter.dtype)
        if key not in self._layouts:
            zeros = torch.zeros(count, 3, *self.image_size, device=parameter.device, dtype=parameter.dtype)
            out = vae.encode(zeros).latent_dist.parameters
            last = out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
            self._layouts[key] = torch.channels_last if last else torch.contiguous_format
        return self._layouts[key]
