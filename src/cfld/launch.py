"""The processes a launcher started for one job (``accelerate launch``, ``torchrun``, ``mpirun``): which one this is,
how many there are, waiting for each other and gathering a value from each.

    processes = launched()          # Processes(rank=0, world=1) when nothing launched several
    mine = processes.share(items)   # every world-th item from this rank: a rule of the item's place alone
    processes.wait()                # all of them reach this line
    counts = processes.gather(n)    # [n of rank 0, n of rank 1, ...] on every process

The rank and the number of processes are read from the variables the launchers set, as ``accelerate`` reads them
(``RANK``/``WORLD_SIZE``, ``LOCAL_RANK``, ``PMI_SIZE``, ``OMPI_COMM_WORLD_SIZE``, ``MV2_COMM_WORLD_SIZE``). Several
processes meet over ``torch.distributed`` (gloo, no GPU needed), set up by ``accelerate``'s ``PartialState`` with
a long timeout: a process that finishes its share early waits for the others as long as they take.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

#: How long a process waits for the others at a meeting point (their shares may take hours on a big catalogue).
WAIT = timedelta(days=7)
_WORLD_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "WORLD_SIZE")


class Processes:
    """One process of ``world`` (rank 0 is the main one); a single process by default."""

    def __init__(self, rank: int = 0, world: int = 1, state: Any = None):
        self.rank, self.world, self._state = rank, world, state

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, items: Sequence[Any]) -> list[Any]:
        """This process's items: those at places ``rank``, ``rank + world``, ... (a share of at most one item more
        than any other's, whatever the items' costs in catalogue order)."""
        return list(items[self.rank::self.world])

    def wait(self) -> None:
        """Wait until every process gets here."""
        if self.world > 1:
            self._state.wait_for_everyone()

    def gather(self, value: Any) -> list[Any]:
        """``value`` of every process, in rank order (on every process)."""
        if self.world == 1:
            return [value]
        from accelerate.utils import gather_object

        return gather_object([value])

    def __repr__(self) -> str:
        return f"Processes(rank={self.rank}, world={self.world})"


def launched_world() -> int:
    """The number of processes the launcher's variables say (1 when none are set)."""
    for name in _WORLD_VARIABLES:
        try:
            world = int(os.environ.get(name, "1"))
        except ValueError:
            continue
        if world > 1:
            return world
    return 1


def launched() -> Processes:
    """This process among those a launcher started (a lone :class:`Processes` when none did); several meet over
    gloo here, which needs torch and accelerate."""
    if launched_world() == 1:
        return Processes()
    from accelerate import PartialState

    with warnings.catch_warnings():  # "OMP_NUM_THREADS unset, we set it at ...": no torch work is done here
        warnings.simplefilter("ignore")
        state = PartialState(cpu=True, timeout=WAIT)
    return Processes(state.process_index, state.num_processes, state)
