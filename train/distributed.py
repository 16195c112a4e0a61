"""Which process of a run this is: a single `autosong train`, or one of several that deepspeed,
torchrun, srun or mpirun started (their variables mapped to RANK, WORLD_SIZE, LOCAL_RANK), and
each rank's seed."""
from __future__ import annotations

import os
from pathlib import Path

from autosong.manifests.errors import AutoSongError


# Launchers that start every process themselves and say so in their own variables:
# name -> (world size, rank, local rank). deepspeed and torchrun set RANK etc. directly.
LAUNCHERS = {
    "srun (SLURM)": ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_LOCALID"),
    "mpirun (Open MPI)": ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),
    "mpiexec (MPICH, Intel MPI)": ("PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"),
}


def launcher_env(environ) -> dict | None:
    """RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT for a process that srun or mpirun
    started as one of several, from their variables; None for a single process."""
    for name, (size, rank, local) in LAUNCHERS.items():
        if int(environ.get(size, "1") or 1) > 1:
            if "MASTER_ADDR" not in environ:
                raise AutoSongError(f"{name} started {environ[size]} processes: set MASTER_ADDR to the first "
                                    f"node's address (and MASTER_PORT) so they can meet, as the README's srun line does")
            return {"RANK": environ[rank], "WORLD_SIZE": environ[size], "LOCAL_RANK": environ.get(local, "0"),
                    "MASTER_ADDR": environ["MASTER_ADDR"], "MASTER_PORT": environ.get("MASTER_PORT", "29500")}
    return None


def ensure_distributed_env() -> str | None:
    """A plain `autosong train` is rank 0 of 1; launchers (deepspeed, torchrun) set RANK etc.,
    srun and mpirun their own variables (mapped here). Returns an init_method for our own single
    process: a file store, so no port can collide."""
    if "RANK" in os.environ:
        return None
    found = launcher_env(os.environ)
    if found:
        os.environ.update(found)
        return None
    import tempfile

    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="0")
    store = Path(tempfile.mkdtemp(prefix="autosong-dist-")) / "store"
    return f"file://{store}"


def rank_seed(seed: int, rank: int, resumed_at: int = 0) -> int:
    """The torch seed of a rank after the model is built: rank 0 keeps `seed` (a one-process run
    is unchanged), the others draw their own dropout and conditioning dropout. `resumed_at`: the
    step a rank joins a resumed run at without a saved RNG state of its own (the world grew)."""
    import numpy as np

    if rank == 0 and not resumed_at:
        return seed
    return int(np.random.SeedSequence([seed, rank, resumed_at]).generate_state(1)[0])
