"""What ``cfld prepare photos`` did, as ``prepare-report.json`` and as the lines the command prints: photos in,
photos left out and why, people, photos and pairs per split, and the seconds spent reading, framing and writing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError
from ...io import atomic_write_text
from ...left_out import REASONS
from ..prepare import first_names

SPLITS = ("train", "test")
REPORT = "prepare-report.json"
REPORT_FORMAT = "cfld.prepare-report/v1"


@dataclass
class PhotosReport:
    """What ``prepare_photos`` did: photos in and out, people and pairs per split, seconds."""

    photos: int = 0
    prepared: dict[str, int] = field(default_factory=dict)  # split -> photos
    people: dict[str, int] = field(default_factory=dict)
    pairs: dict[str, int] = field(default_factory=dict)
    pairs_possible: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, list[dict]] = field(default_factory=lambda: {key: [] for key in REASONS})
    framed_now: int = 0
    framed_before: int = 0
    files_written: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"reading": 0.0, "framing": 0.0, "writing": 0.0})
    notes: list[str] = field(default_factory=list)
    # how this run went; not in the report's file beside the seconds (the file is the same however it was run)
    workers: int = 1
    processes: int = 1
    wall: float = 0.0  # seconds framing took, start to end
    peak_memory: list[int] = field(default_factory=list)  # bytes, each worker's peak

    def to_dict(self, settings: dict) -> dict:
        framed = max(1, self.framed_now)
        return {
            "format": REPORT_FORMAT, "settings": settings, "photos": self.photos,
            "prepared": self.prepared, "people": self.people, "pairs": self.pairs,
            "pairs_before_cap": self.pairs_possible,
            "left_out": {key: len(value) for key, value in self.left_out.items()},
            "left_out_photos": self.left_out,
            "framed_in_this_run": self.framed_now, "framed_in_earlier_runs": self.framed_before,
            "seconds_in_this_run": {key: round(value, 3) for key, value in self.seconds.items()}
            | {"framing_wall_clock": round(self.wall, 3)},
            "seconds_per_photo": {key: round(value / framed, 4) for key, value in self.seconds.items()},
            "notes": self.notes,
        }

    def lines(self, out: Path) -> list[str]:
        splits = [s for s in SPLITS if s in self.prepared]
        lines = [f"photos -> {out}: {sum(self.prepared.values()):,} of {self.photos:,} photos prepared"]
        for split in splits:
            capped = self.pairs_possible[split] - self.pairs[split]
            lines.append(f"{split}: {self.people[split]:,} people, {self.prepared[split]:,} photos, "
                         f"{self.pairs[split]:,} pairs" + (f" ({capped:,} more left out by the cap per person)"
                                                            if capped else ""))
        for key in REASONS:
            if entries := self.left_out[key]:
                names = first_names([entry["photo"] for entry in entries])
                lines.append(f"  left out, {REASONS[key]}: {len(entries):,} ({names})")
        lines.extend(f"  {note}" for note in self.notes)
        if self.framed_now:
            per = {key: value / self.framed_now for key, value in self.seconds.items()}
            how = f"{self.workers} worker{'s' if self.workers > 1 else ''}" + (
                f" in each of {self.processes} processes" if self.processes > 1 else "")
            rate = f", {self.framed_now / self.wall:.1f} photos/s" if self.wall > 0 else ""
            if self.peak_memory:
                rate += f", {max(self.peak_memory) / 1e6:.0f} MB peak memory per worker"
            lines.append(f"framed {self.framed_now:,} photo(s) now ({self.framed_before:,} in earlier runs) in "
                         f"{self.wall:.1f} s with {how}{rate}; per photo, in a worker: {per['reading']:.3f} s reading, "
                         f"{per['framing']:.3f} s framing and detection, {per['writing']:.3f} s writing")
        else:
            lines.append(f"all {self.framed_before:,} photo(s) were framed by earlier runs")
        lines.append(f"{self.files_written} dataset file(s) written; details in {REPORT}")
        return lines


def write_report(out: Path, report: PhotosReport, settings: dict, must: bool = False) -> bool:
    """Write ``prepare-report.json``; where nothing could be prepared (not ``must``), a failure to write it is
    only reported by returning False, as the sentence saying why comes first."""
    try:
        atomic_write_text(out / REPORT, json.dumps(report.to_dict(settings), indent=1) + "\n", overwrite=True)
        return True
    except (OSError, InputError):
        if must:
            raise
        return False

