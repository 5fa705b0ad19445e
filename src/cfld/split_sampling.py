"""Sampling a whole dataset split: one image per (source, target) pair, resumable, on any number of processes.

This is what the paper's Table 2 needs (8,570 DeepFashion test pairs) and what ``cfld sample`` and training's
periodic evaluation run. :class:`CFLDPipeline` re-poses photos; this module decides which pairs to generate,
in which batches, with which random numbers, and where the results go:

* **Randomness per pair.** Pair (source, target) draws its initial noise z_T and every scheduler step's
  noise from its own generator, seeded from ``(seed, source, target)`` alone (:func:`pair_seed`). So the
  images do not depend on the batch size, on how many processes share the job, on ``--limit`` or on an
  interruption. On the CPU every network call takes one pair (``batch_invariant``): matrix kernels round
  differently at different batch sizes (about 1e-6), and one pair per call makes the results bit-identical
  whatever the batching; on GPUs the pairs of a batch run together (the same up to float rounding).
* **Sources encoded once.** Pairs are ordered by source, so the pairs of one source follow each other and
  its coarse prompt and HGA biases are computed once for all of them (the DeepFashion test split has 8,570
  pairs over 3,144 source photos); batches are filled across sources.
* **Resumable.** A pair is done when each of its files exists and reads back as an image; a rerun skips
  done pairs. Every file is written atomically, so a kill loses at most the pairs in flight.
* **Several processes.** Under ``accelerate launch`` the pending pairs are cut into one contiguous share
  per process (each writes its own files); the main process shows one progress bar for the whole job.

Files: ``OUTPUT/<H>x<W>/<source>_2_<target>.png`` per output size (the names ``cfld evaluate`` matches
without options), ``OUTPUT/vis/<source>_2_<target>.png`` (source | pose | result) on request, and
``OUTPUT/cfld-sample.json``, the settings the images were made with (a rerun with other settings is refused
unless it overwrites), and ``OUTPUT/<H>x<W>/scores.csv``, the pose check of each result against its target's
keypoints (:func:`score_job`, docs/pose-check.md).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from . import __version__
from .data.dataset import PoseTransferDataset, read_manifest
from .data.deepfashion import deepfashion_key
from .data.market1501 import market_key
from .data.photos.catalogue import photos_key
from .data.prepare import ORIGINAL
from .data.published import read_pairs_csv
from .errors import InputError
from .images import comparison_rows, load_image, resize_output, save_image, to_model_input, to_pil
from .io import atomic_write_text, check_output_folder, read_json_object, remove_stale_temporaries
from .metrics.evaluate import evaluate_folders
from .metrics.pose_accuracy import WARN_BELOW, PoseScore
from .metrics.pose_folders import FolderScores, score_folder
from .pipeline import SourceEncoding

SAMPLE_MANIFEST = "cfld-sample.json"
SAMPLE_FORMAT = "cfld.sample/v1"
VIS_DIR = "vis"


@dataclass(frozen=True)
class Pair:
    """One (source, target) pair of a split, by the photos' names as the prepared pair file gives them."""

    source: str
    target: str

    @property
    def file_name(self) -> str:
        """``<source>_2_<target>.png``, the name public result sets use and ``cfld evaluate`` matches."""
        return f"{Path(self.source).stem}_2_{Path(self.target).stem}.png"


@dataclass(frozen=True)
class SamplingSettings:
    """Everything besides the model that decides the images (recorded with them)."""

    seed: int = 0
    num_inference_steps: int = 50
    scheduler: str = "ddpm"
    guidance_pose: float = 2.0
    guidance_appearance: float = 2.0
    guidance_interval: tuple[float, float] | None = None  # None: guidance on every step (the paper)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        if self.guidance_interval is None:  # the paper's sampling: records without the key, as cfld 0.1 wrote
            del record["guidance_interval"]
        else:
            record["guidance_interval"] = list(self.guidance_interval)
        return record


def pair_seed(seed: int, pair: Pair) -> int:
    """The seed of ``pair``'s own generator: 63 bits of SHA-256 of (seed, source, target), the same on every
    machine and process (Python's ``hash`` is salted per process)."""
    digest = hashlib.sha256(f"cfld-pair\0{int(seed)}\0{pair.source}\0{pair.target}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def check_sizes(sizes: Sequence[Sequence[int]], allow_none: bool = False) -> list[tuple[int, int]]:
    """The output sizes as (H, W) tuples: at least one (unless ``allow_none``, the caller having a default),
    none twice."""
    sizes = [tuple(s) for s in sizes]
    if not sizes and not allow_none:
        raise InputError("--size", "give at least one output size")
    if len(set(sizes)) != len(sizes):
        raise InputError("--size", "the same size is given twice")
    return sizes


def size_folder(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


# -- generation ---------------------------------------------------------------------------------------------------


def order_by_source(pairs: Sequence[Pair]) -> list[Pair]:
    """``pairs`` with the pairs of each source together, sources in order of first appearance (stable)."""
    first: dict[str, int] = {}
    for i, pair in enumerate(pairs):
        first.setdefault(pair.source, i)
    return sorted(pairs, key=lambda p: first[p.source])


def generate(
    pipe,
    pairs: Sequence[Pair],
    condition: Callable[[str], torch.Tensor],
    pose: Callable[[Pair], torch.Tensor],
    settings: SamplingSettings = SamplingSettings(),
    *,
    batch_size: int = 8,
    batch_invariant: bool | None = None,
    output_type: str = "pt",
) -> Iterator[tuple[list[Pair], torch.Tensor]]:
    """Yield ``(batch of pairs, images)``: images (B, 3, H, W) in [0, 1] at the model's size, on the CPU
    (``output_type="latent"``: z_0 instead, not decoded).

    ``condition(source_name)``: the source photo as the encoder takes it, (3, Hc, Wc) in [-1, 1];
    ``pose(pair)``: the target's (21, Hp, Wp) pose image. Pairs are taken in the given order (order them by
    source with :func:`order_by_source` so each source is encoded once). ``batch_invariant`` (default: on the
    CPU) sends one pair at a time through the networks, so a pair's image is bit-identical whatever batch it
    is in.
    """
    if batch_invariant is None:
        batch_invariant = pipe.device.type == "cpu"
    encoded: dict[str, Any] = {}
    for start in range(0, len(pairs), batch_size):
        batch = list(pairs[start:start + batch_size])
        needed = list(dict.fromkeys(p.source for p in batch))
        encoded = {name: encoded[name] for name in needed if name in encoded}  # keep what this batch still uses
        new = [name for name in needed if name not in encoded]
        if new:
            groups = [[name] for name in new] if batch_invariant else [new]
            for group in groups:
                encoding = pipe.encode_source(torch.stack([condition(name) for name in group]))
                for i, name in enumerate(group):
                    encoded[name] = encoding.select(torch.tensor([i]))
        parts = [encoded[p.source] for p in batch]
        encoding = SourceEncoding(torch.cat([e.prompt for e in parts]),
                                  {k: torch.cat([e.query_biases[k] for e in parts]) for k in parts[0].query_biases})
        generators = [torch.Generator().manual_seed(pair_seed(settings.seed, p)) for p in batch]
        shape = (1, pipe.unet.config.in_channels, *pipe.latent_size)
        latents = torch.cat([torch.randn(shape, generator=g) for g in generators])
        result = pipe(encoding, torch.stack([pose(p) for p in batch]), paired=True, latents=latents,
                      generator=generators, num_inference_steps=settings.num_inference_steps,
                      scheduler=settings.scheduler, guidance_pose=settings.guidance_pose,
                      guidance_appearance=settings.guidance_appearance,
                      guidance_interval=settings.guidance_interval, output_type=output_type, output_size=None,
                      batch_size=1 if batch_invariant else len(batch), progress=False)
        yield batch, result.images.float().cpu()


# -- a prepared split ------------------------------------------------------------------------------------------------


class PreparedSplit:
    """The pairs of a split of a ``cfld prepare`` folder, where their photos and poses are, and the sizes the
    model takes them at."""

    def __init__(self, root: str | os.PathLike, split: str, config, pairs_file: str | os.PathLike | None = None,
                 images: str | None = None):
        self.root = Path(root)
        self.data = PoseTransferDataset(root, split, config, images=images or ORIGINAL, flip_prob=0.0, eval_size=False)
        self.split = split
        self.config = config
        self.pairs_file = Path(pairs_file) if pairs_file is not None else None
        names = self.data.pairs if pairs_file is None else self._read_pairs(Path(pairs_file))
        self.pairs = [Pair(a, b) for a, b in names]

    def _read_pairs(self, path: Path) -> list[tuple[str, str]]:
        if self.data.dataset == "deepfashion":
            key = deepfashion_key
        elif self.data.dataset == "photos":
            key = photos_key
        else:
            key = market_key
        pairs = read_pairs_csv(path, key)
        rows = set(self.data.table.names)
        for pair in pairs:
            for name in pair:
                if name not in rows:
                    raise InputError(path, f"names {name!r}, which has no keypoint row in the {self.split} split of "
                                           f"{self.root}")
        return pairs

    @property
    def image_dir(self) -> Path:
        """The split's photos: the ground truth of its targets."""
        return self.data.image_dir

    def train_image_dir(self) -> Path | None:
        """The training photos (the paper's FID reference), when the train split was prepared too."""
        entry = read_manifest(self.root)["splits"].get("train")
        if not entry or ORIGINAL not in entry["images"]:
            return None
        folder = self.root / entry["images"][ORIGINAL]["dir"]
        return folder if folder.is_dir() else None

    def source_image(self, name: str) -> Image.Image:
        return load_image(self.data.image_path(name))

    def condition(self, name: str) -> torch.Tensor:
        return to_model_input(self.source_image(name), tuple(self.config.cond_size))

    def pose(self, pair: Pair) -> torch.Tensor:
        return self.data.pose_image(pair.target)

    def check_photos(self, pairs: Sequence[Pair]) -> None:
        """Every photo the pairs need exists (reading 8,570 pairs' photos would take minutes: their presence
        is checked here, their content when they are read)."""
        for name in dict.fromkeys(n for p in pairs for n in (p.source, p.target)):
            if not self.data.image_path(name).is_file():
                raise InputError(self.data.image_path(name), f"is missing, but the pairs of {self.split} use it; "
                                                             "prepare the folder again")


# -- the job: which pairs, where, who ----------------------------------------------------------------------------------


def is_done(files: Sequence[Path]) -> bool:
    """Every file exists and decodes as an image."""
    for file in files:
        try:
            with Image.open(file) as image:
                image.load()
        except (OSError, ValueError, Image.DecompressionBombError):
            return False
    return True


class SplitJob:
    """Sampling ``pairs`` of a :class:`PreparedSplit` into ``output`` (see the module docstring)."""

    def __init__(self, split: PreparedSplit, output: str | os.PathLike, sizes: Sequence[tuple[int, int]],
                 settings: SamplingSettings, model: str, *, vis: bool = False, overwrite: bool = False,
                 pairs: Sequence[Pair] | None = None):
        self.split = split
        self.output = Path(output)
        self.sizes = check_sizes(sizes)
        self.settings = settings
        self.model = model
        self.vis = vis
        self.overwrite = overwrite
        self.pairs = list(split.pairs if pairs is None else pairs)
        self.fresh: set[str] = set()  # the file names run_job generated (again) in this run
        if len({p.file_name for p in self.pairs}) != len(self.pairs):
            seen: set[str] = set()
            twice = next(p for p in self.pairs if p.file_name in seen or seen.add(p.file_name))
            raise InputError(split.pairs_file or split.root, f"lists the pair {twice.source} -> {twice.target} twice "
                                                             "(or two pairs whose results would share a name)")

    def folders(self) -> list[Path]:
        return [self.output / size_folder(s) for s in self.sizes] + ([self.output / VIS_DIR] if self.vis else [])

    def files(self, pair: Pair) -> list[Path]:
        return [folder / pair.file_name for folder in self.folders()]

    def record(self) -> dict[str, Any]:
        return {"format": SAMPLE_FORMAT, "cfld_version": __version__, "model": self.model,
                "dataset": str(self.split.root), "split": self.split.split,
                "pairs_file": str(self.split.pairs_file) if self.split.pairs_file else None,
                "sampling": self.settings.to_dict()}

    def check(self) -> None:
        """Before anything is written: the output folder can be written, and what it holds was made with the
        same model and settings (or will be overwritten)."""
        check_output_folder(self.output)
        manifest = self.output / SAMPLE_MANIFEST
        if manifest.exists() and not self.overwrite:
            old = read_json_object(manifest, "sampling record")
            mine = self.record()
            changed = [k for k in ("model", "sampling") if old.get(k) != mine[k]]
            if changed:
                raise InputError(self.output, f"holds images made with another {' and '.join(changed)} "
                                              f"({json.dumps({k: old.get(k) for k in changed})}); choose another "
                                              "--output, or pass --overwrite to replace them")

    def start(self) -> None:
        """The first writes (main process): clean what a killed run left, record the settings."""
        self.output.mkdir(parents=True, exist_ok=True)
        for folder in self.folders():
            folder.mkdir(exist_ok=True)
            remove_stale_temporaries(folder)
        text = json.dumps(self.record(), indent=2) + "\n"
        manifest = self.output / SAMPLE_MANIFEST
        if not manifest.exists() or manifest.read_text(encoding="utf-8") != text:
            atomic_write_text(manifest, text, overwrite=True)

    def pending(self) -> list[Pair]:
        """The pairs still to generate (all with ``overwrite``), ordered by source."""
        todo = self.pairs if self.overwrite else [p for p in self.pairs if not is_done(self.files(p))]
        return order_by_source(todo)

    def write(self, pair: Pair, image: torch.Tensor) -> None:
        """One pair's files from its image (3, H, W) in [0, 1] at the model's size."""
        results = []
        for size, folder in zip(self.sizes, self.folders()):
            picture = to_pil(resize_output(image[None], size))[0]
            save_image(picture, folder / pair.file_name, overwrite=True)
            results.append(picture)
        if self.vis:
            strip = comparison_rows([self.split.source_image(pair.source)], self.split.pose(pair)[None], results[:1],
                                    self.sizes[0], paired=True)
            save_image(strip, self.output / VIS_DIR / pair.file_name, overwrite=True)


def share(items: Sequence[Any], rank: int, world: int) -> list[Any]:
    """Process ``rank``'s contiguous share of ``items`` (shares differ in length by at most one)."""
    n = len(items)
    return list(items[rank * n // world:(rank + 1) * n // world])


def run_job(job: SplitJob, pipe, *, batch_size: int = 8, batch_invariant: bool | None = None, state=None,
            progress: bool = True, echo: Callable[[str], None] = print,
            on_written: Callable[[Pair], None] | None = None) -> dict[str, int]:
    """Generate every pending pair of ``job`` with ``pipe`` on this process's share. ``state``: accelerate's
    ``PartialState`` when several processes run the job (default: one); ``on_written(pair)``: called once a pair's
    files are written (the pose check scores them meanwhile). Returns counts for the whole job."""
    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)
    main = rank == 0
    if main:
        job.start()
    _barrier(state)
    todo = job.pending() if main else None
    if world > 1:
        from accelerate.utils import broadcast_object_list

        todo = broadcast_object_list([todo])[0]
    mine = share(todo, rank, world)
    total = len(todo)
    job.fresh = {pair.file_name for pair in todo}
    if main and total < len(job.pairs):
        echo(f"{len(job.pairs) - total} of {len(job.pairs)} pairs are already done; generating the other {total}")
    bar = tqdm(total=total, desc=f"sampling ({world} process{'es' if world > 1 else ''})", unit="pair",
               disable=not (progress and main) or not total)
    done = 0
    for batch, images in generate(pipe, mine, job.split.condition, job.split.pose, job.settings,
                                  batch_size=batch_size, batch_invariant=batch_invariant):
        for pair, image in zip(batch, images):
            job.write(pair, image)
            if on_written is not None:
                on_written(pair)
        done += len(batch)
        # the main process's share stands for all: shares are equal to one pair
        bar.update(min(total, round(done * total / max(1, len(mine)))) - bar.n)
    _barrier(state)
    bar.update(total - bar.n)
    bar.close()
    return {"pairs": len(job.pairs), "generated": total, "skipped": len(job.pairs) - total}


def _barrier(state) -> None:
    if state is not None and state.num_processes > 1:
        state.wait_for_everyone()


# -- evaluation of the results -----------------------------------------------------------------------------------------


def score_job(job: SplitJob, size: tuple[int, int], threshold: float = WARN_BELOW,
              known: Mapping[Path, PoseScore] | None = None) -> FolderScores:
    """The pose check of the job's results at ``size`` against their targets' keypoints (the split's table):
    ``OUTPUT/HxW/scores.csv``, one row per pair of the job; results not generated in this run keep the row an
    earlier ``scores.csv`` has for them; ``known``: scores made while sampling (by path). Needs MediaPipe when
    anything is scored (a MissingDependencyError)."""
    table = job.split.data.table
    folder = job.output / size_folder(size)
    items = [(pair.file_name, table.pose(pair.target)) for pair in job.pairs]
    fresh = {p.file_name for p in job.pairs} if job.overwrite else job.fresh
    made = {path.name: score for path, score in (known or {}).items() if path.parent == folder}
    return score_folder(folder, items, threshold, fresh=fresh, known=made)


def evaluate_job(job: SplitJob, size: tuple[int, int], metrics: Sequence[str], *, fid_reference=None,
                 progress: bool = True, poses: bool = False, pose_scores: FolderScores | None = None,
                 pose_threshold: float = WARN_BELOW, **options) -> dict[str, Any]:
    """``cfld evaluate`` of the images at ``size`` against the split's photos (the targets' ground truth), with
    ``fid_reference`` (default: the training photos, as the paper, when prepared) as the FID reference, and with
    ``poses`` the pose check against the split's keypoints (``pose_scores``: :func:`score_job`'s, not made again).
    Writes ``metrics.json`` next to the images, with the model and sampling settings; returns its content."""
    folder = job.output / size_folder(size)
    if fid_reference is None and {"fid", "fid_standard"} & set(metrics):
        fid_reference = job.split.train_image_dir()
    if poses:
        options.update(poses=job.split.data.table, pose_threshold=pose_threshold,
                       pose_scores=pose_scores.by_file() if pose_scores is not None else None)
    result = evaluate_folders(folder, job.split.image_dir, fid_reference, size=size, metrics=metrics,
                              progress=progress, **options)
    result["sampling"] = job.record()
    atomic_write_text(folder / "metrics.json", json.dumps(result, indent=1, allow_nan=False) + "\n", overwrite=True)
    return result
