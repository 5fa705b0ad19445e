"""The latent cache (``cache_latents``): every training photo encoded once by the frozen VAE.

CFLD's training encodes both photos of every pair at every step (paper Sec. 3.3; the original does), although
neither the photos nor the VAE ever change: a hundred epochs encode each DeepFashion photo about 200 times. The
cache keeps what the encoder gives, the posterior's ``mean`` and ``std``, and training then draws
``mean + std * eps`` itself, with ``eps`` from the same generator, in the same order and of the same dtype as the
VAE's own ``posterior.sample()``: the same distribution, the same random numbers, equal up to the rounding of
encoding photos in other batches (measured in ``docs/training.md``).

Layout, beside a prepared dataset unless ``latent_cache_dir`` says where (there the folder's name ends in
``-NAMES``, a digest of the photos' names, as several datasets may share it)::

    DATASET/latent-cache/SPLIT-VAEKEY-HxW/
        cache.json              what the folder is: format, VAE key, size, split, shard size, photo count
        shard-00000.safetensors "mean" and "std", (N, C, h, w) float32, for photos 0..N-1 of the split; its
                                metadata records what it was made from: the VAE key, the image size, each
                                photo's name and SHA-256, and the SHA-256 of the two tensors

``VAEKEY`` is a digest of the VAE's weights and the dtype it encodes in, so another VAE gets another cache. Each
shard is written whole (temporary file, then rename): a killed encoding resumes with the shards it lacks, and
processes share the shards out.

**A shard proves what it holds.** When a run starts, every shard is checked against the dataset and the VAE in
use (its process's share, where several train): its record must name this VAE, this size and exactly the photos
of its rows with the bytes they have now (their SHA-256, from :mod:`.data_identity`), and its tensors must have
the latents' shape, be finite, have no negative std and hash to the recorded digest. A shard that fails any of
these is encoded again, with a line saying which and why; the index is rewritten when it is missing or edited.
So a cache is never used for photos other than the dataset's, whatever was copied, edited or prepared again.
The check reads each shard once per start (its cost is measured by ``benchmarks/latent_cache_check.py``);
training then reads rows from memory maps, checking only that a shard's header still has the digest that was
checked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ..errors import InputError
from ..io import atomic_path, atomic_write_text
from .data_identity import photo_digests

FORMAT = "cfld-latent-cache/2"
SHARD_FORMAT = "cfld-latent-cache-shard/2"
INDEX = "cache.json"
FOLDER = "latent-cache"
SHARD_SIZE = 256  # photos per shard: 32 MiB at 512x512 in fp32


def cacheable(dataset) -> bool:
    """Whether ``dataset`` can be cached: it reads photos from a prepared folder with a manifest."""
    return all(hasattr(dataset, name) for name in ("photo", "photo_names", "image_path", "manifest_path"))


def vae_key(vae) -> str:
    """16 hex digits of the VAE's weights (``state_dict``: as loaded, even if kept in 16 bits) and the dtype it
    encodes in."""
    digest = hashlib.sha256(str(next(vae.parameters()).dtype).encode())
    for name, value in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def cache_base(dataset, folder: str | Path | None = None) -> Path:
    """The folder the caches of ``dataset`` go in: ``folder`` (``latent_cache_dir``), else ``latent-cache``
    beside the dataset's manifest."""
    return Path(folder) if folder is not None else Path(dataset.manifest_path).parent / FOLDER


def cache_folder(dataset, key: str, folder: str | Path | None = None) -> Path:
    """Where the cache of ``dataset`` encoded by the VAE of ``key`` lives. In a ``latent_cache_dir`` that several
    datasets may share, the folder's name also holds a digest of the photos' names, so that two datasets do not
    take turns encoding the same shards."""
    height, width = dataset.image_size
    name = f"{dataset.split}-{key}-{height}x{width}"
    if folder is None:
        return cache_base(dataset) / name
    names = hashlib.sha256("\n".join(dataset.photo_names()).encode()).hexdigest()[:8]
    return cache_base(dataset, folder) / f"{name}-{names}"


def latent_shape(vae, image_size: Sequence[int]) -> tuple[int, int, int]:
    """``(C, h, w)``: the shape of one photo's posterior mean (and std) from ``vae`` at ``image_size``."""
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    return (int(vae.config.latent_channels), *(int(size) // factor for size in image_size))


def _shards(names: Sequence[str], size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, len(names))) for start in range(0, len(names), size)]


def _shard_file(folder: Path, number: int) -> Path:
    return folder / f"shard-{number:05d}.safetensors"


def _tensors_sha256(mean: torch.Tensor, std: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in (mean, std):
        digest.update(tensor.contiguous().view(torch.uint8).numpy())
    return digest.hexdigest()


class Expected:
    """What the shards of one cache must record: the VAE, the image size, the latents' shape and each row's photo
    (name and SHA-256)."""

    def __init__(self, key: str, image_size: Sequence[int], shape: tuple[int, int, int], photos: Mapping[str, str],
                 shard_size: int):
        self.key, self.shape, self.shard_size = key, shape, shard_size
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.size = f"{self.image_size[0]}x{self.image_size[1]}"  # as the records write it
        self.names = list(photos)
        self.photos = dict(photos)
        self.spans = _shards(self.names, shard_size)

    def rows(self, number: int) -> list[list[str]]:
        start, stop = self.spans[number]
        return [[name, self.photos[name]] for name in self.names[start:stop]]

    def metadata(self, number: int, mean: torch.Tensor, std: torch.Tensor) -> dict[str, str]:
        return {"format": SHARD_FORMAT, "vae": self.key, "image_size": self.size,
                "photos": json.dumps(self.rows(number)), "sha256": _tensors_sha256(mean, std)}

    def header_problem(self, number: int, meta: Mapping[str, str], keys: set[str]) -> str | None:
        """Why the header of shard ``number`` is not one of this cache (None if it is)."""
        if meta.get("format") != SHARD_FORMAT:
            return "has no record of what it was made from (written by an earlier cfld, or not a shard)"
        if meta.get("vae") != self.key:
            return "was encoded by another VAE (or in another dtype)"
        if meta.get("image_size") != self.size:
            return f"holds photos at {meta.get('image_size')}, not {self.size}"
        try:
            rows = json.loads(meta.get("photos", ""))
        except ValueError:
            rows = None
        expected = self.rows(number)
        if not isinstance(rows, list) or [row[:1] for row in rows if isinstance(row, list)] != \
                [row[:1] for row in expected]:
            return "holds other photos than the dataset's at its place"
        changed = [name for (name, digest), row in zip(expected, rows) if row[1:] != [digest]]
        if changed:
            return (f"was encoded from other versions of {len(changed)} of its {len(expected)} photos "
                    f"(e.g. {changed[0]})")
        if keys != {"mean", "std"} or not isinstance(meta.get("sha256"), str):
            return "does not hold exactly a mean and a std"
        return None

    def problem(self, number: int, path: Path) -> tuple[str | None, str | None]:
        """``(why the shard cannot be used or None, its tensors' digest)``, reading the whole shard."""
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta, keys = handle.metadata() or {}, set(handle.keys())
                if problem := self.header_problem(number, meta, keys):
                    return problem, None
                mean, std = handle.get_tensor("mean"), handle.get_tensor("std")
        except Exception as error:  # noqa: BLE001 - whatever is wrong with the file, it is encoded again
            return f"cannot be read as a shard ({type(error).__name__})", None
        start, stop = self.spans[number]
        shape = (stop - start, *self.shape)
        for name, tensor in (("mean", mean), ("std", std)):
            if tuple(tensor.shape) != shape or tensor.dtype != torch.float32:
                return f"holds a {name} of shape {tuple(tensor.shape)} {tensor.dtype}, not {shape} float32", None
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            return "holds values that are not finite (NaN or infinite)", None
        if (std < 0).any():
            return "holds a negative standard deviation", None
        if _tensors_sha256(mean, std) != meta["sha256"]:
            return "does not hold the values it was written with (its tensors were changed)", None
        return None, meta["sha256"]


def _check_index(folder: Path, expected: Expected, split: str) -> str | None:
    """Write the folder's index when it is missing or is not this cache's; returns a line saying so when shards
    were there already (so it was deleted or edited)."""
    index = {"format": FORMAT, "vae": expected.key, "image_size": expected.size, "split": split,
             "shard_size": expected.shard_size, "photos": len(expected.names)}
    path = folder / INDEX
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = None
    if earlier == index:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(index) + "\n", overwrite=True)
    if any(folder.glob("shard-*.safetensors")):
        return (f"{path}: {'was missing' if earlier is None else 'was not this cache’s index'}; written again "
                "(every shard is checked on its own)")
    return None


@torch.no_grad()
def build_latent_cache(dataset, vae, folder: str | Path | None = None, *, photos: Mapping[str, str] | None = None,
                       rank: int = 0, world: int = 1, barrier: Callable[[], None] = lambda: None, batch_size: int = 8,
                       progress: bool = True, shard_size: int = SHARD_SIZE,
                       report: Callable[[str], None] = print) -> LatentCache:
    """Check the shards of ``dataset``'s cache and encode those that are missing or fail the check (process
    ``rank`` of ``world`` takes every world-th shard; ``barrier`` waits for all), and return the cache.

    ``photos``: ``{name: SHA-256}`` of the dataset's photos, in ``photo_names()`` order (hashed here when not
    given). The VAE encodes where its weights are, in their dtype, ``batch_size`` photos at a time; ``report``
    gets one line for each shard encoded again and why."""
    key = vae_key(vae)
    folder = cache_folder(dataset, key, folder)
    names = dataset.photo_names()
    if photos is None or list(photos) != names:
        photos = photo_digests({name: dataset.image_path(name) for name in names}, progress and rank == 0)
    expected = Expected(key, dataset.image_size, latent_shape(vae, dataset.image_size), photos, shard_size)
    if rank == 0 and (line := _check_index(folder, expected, dataset.split)):
        report(line)
    barrier()
    digests: dict[int, str] = {}
    todo = []
    for number in range(rank, len(expected.spans), world):
        path = _shard_file(folder, number)
        if path.is_dir():
            raise InputError(path, "is a folder where a latent cache shard belongs: delete it to encode the shard "
                                   "again")
        problem, digest = expected.problem(number, path) if path.exists() else ("missing", None)
        if digest is not None:
            digests[number] = digest
            continue
        if problem != "missing":
            report(f"latent cache: {path} {problem}; encoding it again")
        todo.append(number)
    _encode(dataset, vae, folder, expected, todo, batch_size, progress and rank == 0, digests)
    barrier()
    return LatentCache(folder, expected, _headers(folder, expected, digests))


def _encode(dataset, vae, folder: Path, expected: Expected, todo: list[int], batch_size: int, progress: bool,
            digests: dict[int, str]) -> None:
    """Encode the shards ``todo`` and write each whole, with its record."""
    parameter = next(vae.parameters())
    bar = tqdm(total=sum(b - a for a, b in (expected.spans[n] for n in todo)), unit="photo",
               desc="encoding photos for the latent cache", disable=not progress or not todo)
    for number in todo:
        start, stop = expected.spans[number]
        means, stds = [], []
        for first in range(start, stop, batch_size):
            batch = [dataset.photo(name) for name in expected.names[first:min(first + batch_size, stop)]]
            posterior = vae.encode(torch.stack(batch).to(parameter.device, parameter.dtype)).latent_dist
            means.append(posterior.mean.float().cpu())
            stds.append(posterior.std.float().cpu())
            bar.update(len(batch))
        mean, std = torch.cat(means).contiguous(), torch.cat(stds).contiguous()
        metadata = expected.metadata(number, mean, std)
        with atomic_path(_shard_file(folder, number), overwrite=True, what="a latent cache shard",
                         kept=f"the shards written before it, in {folder} (a new run goes on from them)") as tmp:
            save_file({"mean": mean, "std": std}, str(tmp), metadata=metadata)
        digests[number] = metadata["sha256"]
    bar.close()


def _headers(folder: Path, expected: Expected, digests: dict[int, str]) -> list[str]:
    """Each shard's tensor digest, the shards other processes checked read from their headers (which must be of
    this cache): the digests training holds the shards to."""
    out, bad = [], []
    for number in range(len(expected.spans)):
        if number in digests:
            out.append(digests[number])
            continue
        meta: Mapping[str, str] = {}
        try:
            with safe_open(str(_shard_file(folder, number)), framework="pt") as handle:
                meta = handle.metadata() or {}
                problem = expected.header_problem(number, meta, set(handle.keys()))
        except Exception:  # noqa: BLE001 - a shard another process failed to write
            problem = "missing"
        if problem:
            bad.append(number)
        out.append(meta.get("sha256", "") if not problem else "")
    if bad:
        raise InputError(folder, f"lacks {len(bad)} of its {len(expected.spans)} shards after encoding (another "
                                 "process failed?): run again to encode them")
    return out


class LatentCache:
    """The cached posteriors of photos at ``image_size``: ``posterior(names)`` -> ``(mean, std)``, read from the
    shards' memory maps; and ``layout``, the memory layout the VAE's own posterior would have."""

    def __init__(self, folder: Path, expected: Expected, digests: Sequence[str]):
        self.folder = Path(folder)
        self.row = {name: i for i, name in enumerate(expected.names)}
        self.shard_size = expected.shard_size
        self.image_size = expected.image_size
        self.digests = list(digests)  # each shard's tensors, as checked when the run started
        self._open: dict[int, Any] = {}
        self._layouts: dict[tuple, torch.memory_format] = {}

    def __len__(self) -> int:
        return len(self.row)

    def _shard(self, number: int):
        """Shard ``number``'s memory map, opened on first use; its header must still have the checked digest."""
        if number not in self._open:
            path = _shard_file(self.folder, number)
            try:
                handle = safe_open(str(path), framework="pt")
                same = (handle.metadata() or {}).get("sha256") == self.digests[number]
            except Exception:  # noqa: BLE001 - a shard that went away or was damaged since the start
                same = False
            if not same:
                raise InputError(path, "changed while training ran (it is not the shard checked at the start): run "
                                       "again, and it is checked and encoded again")
            self._open[number] = handle
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
