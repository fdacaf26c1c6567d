"""Soak: many predictions against the real Cog HTTP server leave it as it was.

50 sequential predictions of a short input must all be right, the server's memory
(RSS of its whole process tree) must stay flat after warm-up, nothing may be left in
the temporary directories, and a request sent while a prediction runs must get
Cog's 409 without disturbing the server. Runs by default (about 80 s on 2 cores);
deselect with `-m "not soak"`.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import CogServer, check_output_shape, data_uri, request, write_wav

pytestmark = pytest.mark.soak

NUM_PREDICTIONS = 50
WARM_UP_PREDICTIONS = 10
MAX_RSS_GROWTH = 0.05
INPUT_S = 1.5
LONG_INPUT_S = 8.0


# glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), so
# the embedding model's 50-60 MiB of activations per batch end up in heap arenas that
# are reused but never returned: with the default policy the worker's RSS climbs in
# 50-120 MiB steps for 30-50 predictions (+7-9 % between predictions 10 and 50), then
# stays flat, and drops back when the arenas are trimmed. A fixed threshold turns that
# off (RSS then stays within 0.2 %, and is ~700 MiB lower), so that what is left to see
# is a real leak. Production can use the same setting (see docs/reliability.md).
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


@pytest.fixture(scope="module")
def soak_server(random_weights, tmp_path_factory: pytest.TempPathFactory):
    """A server whose TMPDIR is a fresh, private folder: (server, that folder)."""
    server_tmp = tmp_path_factory.mktemp("soak-server-tmp")
    log = tmp_path_factory.mktemp("soak-server") / "server.log"
    env = {"TMPDIR": str(server_tmp), **ALLOCATOR_ENV}
    server = CogServer(random_weights.root, log, extra_env=env)
    health = server.wait_for_setup()
    assert health["status"] == "READY", health
    yield server, server_tmp
    server.close()


# ---------------------------------------------------------------------------
# Helpers: process tree memory, temporary files
# ---------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


@dataclass(frozen=True)
class TreeUsage:
    """Resources held by a process and all its descendants."""

    rss_bytes: int  # VmRSS summed over /proc/<pid>/status
    processes: int
    open_files: int  # entries of /proc/<pid>/fd


def tree_usage(pid: int) -> TreeUsage:
    rss = processes = open_files = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            open_files += len(os.listdir(f"/proc/{current}/fd"))
        except OSError:  # ended while we looked
            continue
        processes += 1
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1]) * 1024  # "VmRSS:  123456 kB"
        pending.extend(_children(current))
    return TreeUsage(rss, processes, open_files)


def settled_usage(pid: int, seconds: float = 2.0) -> tuple[TreeUsage, list[str]]:
    """The tree's usage with the fewest processes and descriptors seen over `seconds`
    (and what its descriptors point at): a connection the server is still closing
    holds a descriptor for a moment (seen in CI: 32 -> 33, at either reading), a
    leak holds it at every look."""
    best = tree_usage(pid), open_file_targets(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
        usage = tree_usage(pid)
        if (usage.processes, usage.open_files) < (best[0].processes, best[0].open_files):
            best = usage, open_file_targets(pid)
    return best


def open_file_targets(pid: int) -> list[str]:
    """What the descriptors of a process and its descendants point at (for messages)."""
    targets = []
    for current in [pid, *_children(pid)]:
        try:
            fds = os.listdir(f"/proc/{current}/fd")
        except OSError:  # ended while we looked
            continue
        for fd in fds:
            try:
                targets.append(f"{current}: {os.readlink(f'/proc/{current}/fd/{fd}')}")
            except OSError:
                continue
    return targets


def all_paths(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def leaked_copies(before: set[str], root: Path, needle: bytes) -> list[str]:
    """New files under `root` (top level, or anywhere in Cog's own folder) holding `needle`."""
    new_top_level = {name for name in os.listdir(root) if name not in before}
    candidates: list[Path] = []
    for name in new_top_level | {"coglet"}:
        path = root / name
        if path.is_file():
            candidates.append(path)
        elif path.is_dir():
            candidates.extend(p for p in path.rglob("*") if p.is_file())
    leaked = []
    for path in candidates:
        try:
            if path.stat().st_size <= 64 * 1024 * 1024 and needle in path.read_bytes():
                leaked.append(str(path))
        except OSError:  # gone already, or not ours to read
            continue
    return leaked


def _output(body: dict) -> dict:
    header, payload = body["output"].split(",", 1)
    assert header.startswith("data:") and header.endswith(";base64"), header
    return json.loads(base64.b64decode(payload))


def _assert_same_answer(output: dict, first: dict) -> None:
    assert output["segments"] == first["segments"]
    assert output["speakers"]["labels"] == first["speakers"]["labels"]
    for label, vector in first["speakers"]["embeddings"].items():
        np.testing.assert_allclose(output["speakers"]["embeddings"][label], vector, atol=1e-5)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_sequential_predictions_stay_correct_with_flat_memory_and_no_leftovers(
    soak_server, tmp_path: Path
) -> None:
    server, server_tmp = soak_server
    # Noise seeded from os.urandom: no other run writes these bytes anywhere.
    seed = int.from_bytes(os.urandom(8), "little")
    noise = np.random.default_rng(seed).normal(0, 0.3, int(INPUT_S * 16000))
    audio = write_wav(tmp_path / "soak.wav", noise)
    uri = data_uri(audio)
    needle = audio.read_bytes()[-4096:]
    system_tmp = Path(tempfile.gettempdir())
    server_tmp_before = all_paths(server_tmp)
    system_tmp_before = set(os.listdir(system_tmp))
    output_dirs = [name for name in server_tmp_before if name.startswith("diarization-")]
    assert len(output_dirs) == 1, server_tmp_before  # made by Predictor.setup()

    first = None
    usage, files = {}, {}
    for number in range(1, NUM_PREDICTIONS + 1):
        status, body = server.predict({"audio": uri})
        assert status == 200 and body["status"] == "succeeded", (number, body)
        output = _output(body)
        if first is None:
            check_output_shape(output, INPUT_S)
            first = output
        else:
            _assert_same_answer(output, first)
        if number in (WARM_UP_PREDICTIONS, NUM_PREDICTIONS):
            server.wait_until_ready()  # idle: no ffmpeg child, no request in flight
            usage[number], files[number] = settled_usage(server.process.pid)

    warm, end = usage[WARM_UP_PREDICTIONS], usage[NUM_PREDICTIONS]
    print(f"server tree after prediction {WARM_UP_PREDICTIONS}: {warm}; at the end: {end}")
    assert end.rss_bytes < warm.rss_bytes * (1 + MAX_RSS_GROWTH), (warm, end)
    new_files = sorted(set(files[NUM_PREDICTIONS]) - set(files[WARM_UP_PREDICTIONS]))
    assert (end.processes, end.open_files) == (warm.processes, warm.open_files), (
        warm,
        end,
        new_files,
    )
    # The server's private TMPDIR: only the predictor's fixed output file is new.
    assert all_paths(server_tmp) - server_tmp_before == {f"{output_dirs[0]}/output.json"}
    # The shared temp dir (other processes use it too): no copy of the upload.
    assert leaked_copies(system_tmp_before, system_tmp, needle) == []


def test_requests_while_busy_get_409_and_the_server_recovers(soak_server, tmp_path: Path) -> None:
    server, _ = soak_server
    short = data_uri(write_wav(tmp_path / "short.wav", np.full(int(INPUT_S * 16000), 0.1)))
    long_noise = np.random.default_rng(1).normal(0, 0.3, int(LONG_INPUT_S * 16000))
    long = data_uri(write_wav(tmp_path / "long.wav", long_noise))
    answers: list[tuple[int, dict]] = []
    server.wait_until_ready()
    worker = threading.Thread(target=lambda: answers.append(server.predict({"audio": long})))
    worker.start()
    try:
        while not answers and server.health() != "BUSY":
            time.sleep(0.005)
        assert not answers, "the long prediction finished before it could be seen running"

        busy = [request(server.port, "/predictions", {"input": {"audio": short}}) for _ in range(3)]
        health_while_busy = server.health()
    finally:
        worker.join(timeout=300)

    assert [status for status, _ in busy] == [409, 409, 409], busy
    assert health_while_busy == "BUSY"
    [(status, body)] = answers
    assert status == 200 and body["status"] == "succeeded", body
    check_output_shape(_output(body), LONG_INPUT_S)
    server.wait_until_ready(timeout_s=30)
    status, body = server.predict({"audio": short})
    assert status == 200 and body["status"] == "succeeded", body
    check_output_shape(_output(body), INPUT_S)
