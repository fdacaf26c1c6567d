"""`diarization.host_memory`: large temporaries reused within the block, memory handed
back after it. Run in a child process with the service's allocator setting, since
the allocator's state is the process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, torch
from diarization.host_memory import freed_memory_reused

def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20

def faults_per_allocation(times):
    faults = []
    for _ in range(times):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        tensor = torch.ones(64 << 18)  # 64 MiB, every page written
        del tensor
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return faults

result = {"outside": faults_per_allocation(4), "rss_before": rss_mib()}
with freed_memory_reused():
    result["inside"] = faults_per_allocation(16)
    result["rss_inside"] = rss_mib()
result["rss_after"] = rss_mib()
print(json.dumps(result))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_large_temporaries_reuse_heap_memory_within_the_block_only():
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "PYTHONPATH": str(ROOT)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(child.stdout.splitlines()[-1])
    pages = (64 << 20) // 4096
    # outside the block every 64 MiB tensor is mapped afresh: a fault per page
    assert min(result["outside"]) >= pages
    # inside, once the heap holds a free block of that size, no page is faulted again
    assert max(result["inside"][-4:]) < pages // 100
    assert result["rss_inside"] > result["rss_before"] + 32
    # after it, the heap's free memory is handed back to the system
    assert result["rss_after"] < result["rss_before"] + 32
