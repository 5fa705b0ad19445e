"""Phase 1 of ``cfld prepare photos``: every candidate photo framed once, over worker processes and over the
processes a launcher started, each record kept as it is made.

Each launched process takes every world-th candidate (its place in the catalogue alone decides, so a record never
depends on how many processes made it) and frames those of them no earlier run framed, in its own worker processes.
All processes read what earlier runs left before any of them writes, and meet again once all have framed their
share; the main one then reads the others' records from the shared folder and writes the dataset.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ...errors import InputError
from ...io import remove_stale_temporaries
from ...launch import Processes
from ...pose.skeleton import Size
from ..prepare import first_names
from .catalogue import Photo
from .framing_records import FRAMING_DIR, Record, earlier_records, frame_all
from .report import PhotosReport


class FramingRun:
    """The framing of one preparation (see the module docstring)."""

    def __init__(self, out: Path, digests: dict[str, str], settings: dict, size: Size, plain_background: bool,
                 framer_factory: Callable[[Size, bool], object] | None, workers: int, processes: Processes):
        self.out, self.digests, self.settings, self.size = out, digests, settings, size
        self.plain_background, self.framer_factory = plain_background, framer_factory
        self.workers, self.processes = workers, processes
        self.framing_dir = out / FRAMING_DIR

    def run(self, candidates: list[Photo], overwrite: bool, merge: bool, report: PhotosReport,
            progress: bool) -> dict[str, Record]:
        """Every candidate's record by name (on the main process; the others' hold their share's)."""
        processes = self.processes
        if processes.main and self.framing_dir.is_dir():
            remove_stale_temporaries(self.framing_dir)
        records, todo, differing = earlier_records(candidates, self.digests, self.framing_dir, self.settings,
                                                   self.size)
        if differing and not overwrite:
            raise InputError(self.out, f"holds the framing of {len(differing):,} photo(s) made from other versions of "
                                       f"them or with other options ({first_names(differing)}); pass --overwrite to "
                                       "frame them again")
        report.framed_before = len(records)
        if merge and todo:
            raise InputError(self.out, f"has no framing record of {len(todo):,} of the {len(candidates):,} photos "
                                       f"({first_names([photo.name for photo in todo])}): --merge frames nothing; "
                                       "wait for the processes framing them, or run without --merge")
        processes.wait()  # every process has read what earlier runs left before any of them writes
        mine = {photo.name for photo in processes.share(candidates)}
        todo = [photo for photo in todo if photo.name in mine]
        start = time.perf_counter()
        if todo:
            report.workers = min(self.workers, len(todo))
            desc = "framing photos" + (f" (process {processes.rank + 1} of {processes.world})"
                                       if processes.world > 1 else "")
            frame_all(todo, self.digests, self.framing_dir, self.settings, self.size, self.plain_background, records,
                      report, progress and processes.main, self.framer_factory, self.workers, desc)
        report.wall = time.perf_counter() - start
        if processes.world > 1:
            self._gather(candidates, records, report)
        return records

    def _gather(self, candidates: list[Photo], records: dict[str, Record], report: PhotosReport) -> None:
        """Once every process has framed its share: the counts and seconds of all, and on the main process the
        records the others kept (and those of photos whose worker died, kept nowhere)."""
        crashed = {name: record for name, record in records.items() if record.outcome == "unreadable"
                   and not record.data}
        shares = self.processes.gather((report.framed_now, report.seconds, report.wall, report.peak_memory, crashed))
        report.framed_now = sum(share[0] for share in shares)
        report.seconds = {key: sum(share[1][key] for share in shares) for key in report.seconds}
        report.wall = max(share[2] for share in shares)
        report.peak_memory = [peak for share in shares for peak in share[3]]
        if not self.processes.main:
            return
        for share in shares:
            records.update(share[4])
        rest = [photo for photo in candidates if photo.name not in records]
        found, missing, _ = earlier_records(rest, self.digests, self.framing_dir, self.settings, self.size)
        records.update(found)
        if missing:
            raise InputError(self.out, f"has no framing record of {len(missing):,} photo(s) after every process "
                                       f"finished ({first_names([photo.name for photo in missing])}); run the same "
                                       "command again to frame them")
