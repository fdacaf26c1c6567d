"""How many CPU threads the models and numpy use: no more than the CPUs this process
may actually run on.

torch and numpy's BLAS start one thread per CPU they see (the scheduler's affinity
mask), but a container's CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`) can
allow fewer: a Cog container on a 32-core host with a 4-CPU limit would run 32
threads in 4 CPUs' time, and each parallel step of a model waits for the threads the
quota has paused. `fit_threads_to_cpus` lowers both thread counts to the CPUs the
quota allows (rounded down, at least 1). Under a 1-CPU quota on 2 cores, 1 minute of
audio took 19.7 s with 2 threads and 16.9 s with the count fitted (docs/performance.md).

Thread counts set in the environment (OMP_NUM_THREADS and the like) are left alone,
and a count is only ever lowered. Importing this module imports no torch.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

#: Variables with which a user sets thread counts themselves.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# cgroup v1 mounts the cpu controller under one of these names
_V1_CPU_FOLDERS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def cpu_quota(
    cgroup_file: Path = Path("/proc/self/cgroup"), cgroup_root: Path = Path("/sys/fs/cgroup")
) -> float | None:
    """The CPUs this process's cgroup and its ancestors allow (e.g. 2.5: 250 ms of CPU
    time every 100 ms), the smallest quota among them; None when none is set or the
    files are not there.

    Args:
        cgroup_file: /proc/self/cgroup (lines "id:controllers:path").
        cgroup_root: where the cgroup filesystems are mounted.
    """
    try:
        lines = cgroup_file.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":  # cgroup v2: "0::/path"
            folders = [cgroup_root]
            read = _v2_quota
        elif "cpu" in controllers.split(","):
            folders = [cgroup_root / name for name in _V1_CPU_FOLDERS]
            read = _v1_quota
        else:
            continue
        # the path and its ancestors: inside a container without its own cgroup
        # namespace, the path is the host's while the mount's root is the container's
        parts = [part for part in path.split("/") if part]
        for folder in folders:
            for depth in range(len(parts) + 1):
                quota = read(folder.joinpath(*parts[:depth]))
                if quota is not None:
                    quotas.append(quota)
    return min(quotas, default=None)


def _v2_quota(folder: Path) -> float | None:
    """`cpu.max` ("max 100000" or "QUOTA PERIOD") as CPUs, or None."""
    try:
        quota, period = (folder / "cpu.max").read_text().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(folder: Path) -> float | None:
    """`cpu.cfs_quota_us` / `cpu.cfs_period_us` as CPUs (-1: none), or None."""
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def usable_cpus(affinity: int | None = None, quota: float | None = None) -> int:
    """CPUs to use: those the scheduler lets this process run on (`affinity`; default
    its affinity mask), no more than the cgroup quota allows (`quota`; default
    `cpu_quota()`), rounded down, at least 1."""
    if affinity is None:
        affinity = len(os.sched_getaffinity(0))
    if quota is None:
        quota = cpu_quota()
    if quota is None:
        return max(1, affinity)
    return max(1, min(affinity, math.floor(quota)))


def fit_threads_to_cpus(
    cpus: int | None = None, environ: Mapping[str, str] = os.environ
) -> int | None:
    """Lower torch's and numpy's BLAS thread counts to `cpus` (default `usable_cpus()`)
    where they are higher; logs what it did.

    Returns:
        The new thread count, or None when nothing changed (counts already within
        `cpus`, or set in the environment: `THREAD_VARIABLES`).
    """
    if any(environ.get(name) for name in THREAD_VARIABLES):
        return None
    import torch
    from threadpoolctl import threadpool_limits

    cpus = usable_cpus() if cpus is None else cpus
    before = torch.get_num_threads()
    if before <= cpus:
        return None
    torch.set_num_threads(cpus)
    threadpool_limits(cpus)  # numpy's BLAS and any other OpenMP library loaded
    logger.info(
        "torch and numpy use %d CPU threads instead of %d: the CPUs this process may run "
        "on (its affinity mask and cgroup quota)",
        cpus,
        before,
    )
    return cpus
