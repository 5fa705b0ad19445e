"""Files in and out, for every module that reads what a user gives or writes what matters.

Writing: results, checkpoints, models and prepared datasets are written under a temporary name beside their
destination and renamed into place in one step (:func:`atomic_path` for a file, :func:`atomic_folder` for a
folder), never replacing an existing one unless asked. A temporary name records the host and process that
made it (``.NAME.new-HOST-PID-RANDOM.tmp.SUFFIX``), so when a killed run left one behind, the next write into
that folder removes it (:func:`remove_stale_temporaries`) while never touching one that a live process is
still writing; readers of folders skip them (:func:`is_temporary`). An operating-system failure of a write
(read-only folder, disk full, a file where a folder should be) is a :class:`~cfld.errors.WriteError` (an
:class:`~cfld.errors.InputError`) naming the path, and, where the writer says them, what the file is, how much
space it needed and what was kept (:func:`write_failure`); its temporary is removed at once. A library that
reports the operating system's refusal in its own exception (safetensors: ``... (os error 28)``, torch.save: a
RuntimeError raised while handling the OSError) counts as that refusal (:func:`os_write_error`).

Reading: :func:`read_text`, :func:`read_json` and :func:`read_yaml` read what a user hands us with a size
limit, refusing deep nesting, NaN/Infinity literals and YAML alias bombs, and turn every parser complaint into
one line naming the file, the line and the fault.
"""

from ..errors import format_size, free_space, write_failure
from .atomic import (
    atomic_folder,
    atomic_path,
    atomic_write,
    atomic_write_text,
    check_output_file,
    check_output_folder,
    check_writable,
    usual_permissions,
)
from .failures import folder_bytes, os_write_error, writing
from .reading import (
    MAX_DEPTH,
    MAX_NODES,
    MAX_TEXT_BYTES,
    check_document,
    parse_json,
    path_kind,
    read_json,
    read_json_object,
    read_text,
    read_yaml,
)
from .temporaries import STALE_AFTER_S, is_temporary, remove_stale_temporaries, temporary_name

__all__ = [
    "MAX_DEPTH", "MAX_NODES", "MAX_TEXT_BYTES", "STALE_AFTER_S", "atomic_folder", "atomic_path", "atomic_write",
    "atomic_write_text", "check_document", "check_output_file", "check_output_folder", "check_writable",
    "folder_bytes", "format_size", "free_space", "is_temporary", "os_write_error", "parse_json", "path_kind",
    "read_json", "read_json_object", "read_text", "read_yaml", "remove_stale_temporaries", "temporary_name",
    "usual_permissions", "write_failure", "writing",
]
