"""Data-parallel training over several processes (``python -m builder train --nproc N``).

The launch is torchrun's (``torch.distributed.run``): it starts N copies of the same command on
this machine (and waits for ``--nnodes`` machines in all), each with ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in its environment. Every process reads and prepares the same data with the same
seed, so all agree on the rows and the shuffle; each then trains on its own share of every global
batch (``--batch-size`` stays the global batch), and DistributedDataParallel averages the gradients,
weighted so one synchronised step equals one step on the whole batch. Validation is cheap and runs
on every process; its result is rank 0's, broadcast, so all processes stop at the same epoch. Rank 0
alone scores the test rows, writes the bundle and prints the JSON.

gloo on the CPU, NCCL on GPUs (one GPU per process: ``LOCAL_RANK`` picks it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

CHILD_ENV = "BUILDER_DISTRIBUTED_CHILD"  # set for the processes the launcher starts


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


def current_world() -> World:
    """The world of the initialised process group, or one process when there is none."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def launched_world() -> World | None:
    """The world torchrun described in the environment, when this process is one it started."""
    if os.environ.get(CHILD_ENV) != "1" or "RANK" not in os.environ:
        return None
    return World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))


def join(world: World) -> None:
    """Join the process group torchrun set up: NCCL when this machine has a GPU, gloo otherwise."""
    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank)  # one GPU per process; device "auto" picks it
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend)
    log.info("process %d of %d joined (%s)", world.rank + 1, world.size, backend)


def leave() -> None:
    """Leave the process group together: a process that tears its connections down while another
    still uses them can abort the whole run (gloo: "terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def launch(command: Sequence[str], nproc: int, nnodes: int = 1, node_rank: int = 0,
           master_addr: str = "127.0.0.1", master_port: int = 29500) -> int:
    """Run ``python -m builder <command>`` in ``nproc`` processes here (torchrun), and wait.

    Returns:
        0 when every process succeeded; otherwise 1 (torchrun has logged which process failed).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    args = get_args_parser().parse_args([
        f"--nproc-per-node={nproc}", f"--nnodes={nnodes}", f"--node-rank={node_rank}",
        f"--master-addr={master_addr}", f"--master-port={master_port}", "--module", "--", "builder", *command,
    ])
    os.environ[CHILD_ENV] = "1"
    # The cores shared out among this machine's processes (torchrun would set 1 and warn).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    try:
        run(args)
    except ChildFailedError as exc:
        log.error("a training process failed: %s", exc.get_first_failure()[1].message)
        return 1
    finally:
        os.environ.pop(CHILD_ENV, None)
    return 0


def rows_of_this_process(batch: torch.Tensor, world: World) -> torch.Tensor:
    """This process's share of a global batch of row indices: every ``size``-th row from ``rank``."""
    return batch[world.rank :: world.size]


def sum_over_processes(*values: torch.Tensor) -> None:
    """Add each tensor up across the processes, in place."""
    for value in values:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on one (stop and time limits stay in step)."""
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def from_main_process(values: Sequence[float], device: torch.device) -> list[float]:
    """Rank 0's ``values`` on every process."""
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()
