"""Thread counts fitted to the CPUs a process may use (`diarization.cpu_threads`): the
cgroup files are written here, in the layouts of cgroup v1 and v2 and of a container."""

from __future__ import annotations

from pathlib import Path

import pytest

from diarization.cpu_threads import cpu_quota, fit_threads_to_cpus, usable_cpus


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


V2_POD = "0::/kubepods/pod1/container1\n"
V1_DOCKER = "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"


@pytest.mark.parametrize(
    ("cgroup", "files", "expected"),
    [
        # cgroup v2 (Kubernetes): the container's limit, its ancestors unlimited
        (
            V2_POD,
            {
                "fs/kubepods/pod1/container1/cpu.max": "150000 100000\n",
                "fs/kubepods/pod1/cpu.max": "max 100000\n",
            },
            1.5,
        ),
        # v2: an ancestor's quota is lower than the container's: the lower one holds
        (
            V2_POD,
            {
                "fs/kubepods/pod1/container1/cpu.max": "400000 100000\n",
                "fs/kubepods/cpu.max": "100000 100000\n",
            },
            1.0,
        ),
        # v2 inside a container with its own cgroup namespace: the path is "/"
        ("0::/\n", {"fs/cpu.max": "200000 100000\n"}, 2.0),
        ("0::/\n", {"fs/cpu.max": "max 100000\n"}, None),
        # v1 in Docker without a cgroup namespace: the host's path, the container's
        # cgroup mounted at the root
        (V1_DOCKER, {"fs/cpu,cpuacct/cpu.cfs_quota_us": "300000\n",
                     "fs/cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 3.0),
        # v1 with no quota (-1), as on a plain host
        ("1:cpu:/\n", {"fs/cpu/cpu.cfs_quota_us": "-1\n", "fs/cpu/cpu.cfs_period_us": "100000\n"},
         None),
        ("1:cpu:/\n", {"fs/cpu/cpu.cfs_quota_us": "50000\n",
                       "fs/cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        # nothing readable: no quota known
        (V2_POD, {}, None),
        (V2_POD, {"fs/kubepods/pod1/container1/cpu.max": "garbage\n"}, None),
        ("not a cgroup line\n", {}, None),
    ],
)  # fmt: skip
def test_cpu_quota_reads_cgroup_v1_and_v2(tmp_path, cgroup, files, expected):
    root = _tree(tmp_path, {"proc/cgroup": cgroup, **files})
    assert cpu_quota(root / "proc/cgroup", root / "fs") == expected


def test_cpu_quota_without_proc_is_none(tmp_path):
    assert cpu_quota(tmp_path / "missing", tmp_path) is None


@pytest.mark.parametrize(
    ("affinity", "quota", "expected"),
    [(8, 2.5, 2), (8, 0.5, 1), (2, None, 2), (4, 16.0, 4), (32, 4.0, 4)],
)
def test_usable_cpus_is_the_affinity_within_the_quota_rounded_down(affinity, quota, expected):
    assert usable_cpus(affinity, quota) == expected


@pytest.fixture
def torch_threads():
    """torch's and the BLAS libraries' thread counts, restored after the test."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    before = torch.get_num_threads()
    libraries = {info["user_api"]: info["num_threads"] for info in threadpool_info()}
    yield
    torch.set_num_threads(before)
    threadpool_limits(libraries)


def test_fit_threads_lowers_torch_and_blas_to_the_usable_cpus(torch_threads, caplog):
    import torch
    from threadpoolctl import threadpool_info

    torch.set_num_threads(2)
    with caplog.at_level("INFO", logger="diarization.cpu_threads"):
        assert fit_threads_to_cpus(1, environ={}) == 1
    assert torch.get_num_threads() == 1
    assert all(info["num_threads"] == 1 for info in threadpool_info())
    assert "1 CPU threads instead of 2" in caplog.text


def test_fit_threads_never_raises_a_count_and_leaves_a_users_setting(torch_threads):
    import torch

    torch.set_num_threads(1)
    assert fit_threads_to_cpus(4, environ={}) is None
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    assert fit_threads_to_cpus(1, environ={"OMP_NUM_THREADS": "2"}) is None
    assert torch.get_num_threads() == 2


def test_loading_fits_the_threads(monkeypatch, random_weights):
    from diarization import Diarizer, diarizer

    fitted = []
    monkeypatch.setattr(diarizer, "fit_threads_to_cpus", lambda: fitted.append(True))
    Diarizer.load(random_weights, device="cpu", pipeline="bundled")
    assert fitted == [True]
