"""scripts/benchmark.py: its machine line (CPU model and count) and the runs it makes."""

from __future__ import annotations

import importlib.util
import platform
import sys
from pathlib import Path

import pytest

from diarization.cpu_threads import usable_cpus

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "benchmark.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmark"] = module
    spec.loader.exec_module(module)
    return module


def test_cpu_model_is_the_first_model_name_line(benchmark, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\n"
        "model name\t: AMD EPYC 9454 48-Core Processor\nflags\t\t: fpu avx512f\n\n"
        "processor\t: 1\nmodel name\t: Some Other CPU\n"
    )
    assert benchmark.cpu_model(str(cpuinfo)) == "AMD EPYC 9454 48-Core Processor"


def test_cpu_model_without_cpuinfo_falls_back(benchmark, tmp_path):
    (tmp_path / "no-model").write_text("processor\t: 0\nflags\t\t: fpu\n")
    expected = platform.processor() or "CPU model unknown"
    assert benchmark.cpu_model(str(tmp_path / "no-model")) == expected
    assert benchmark.cpu_model(str(tmp_path / "missing")) == expected


def test_machine_line_names_model_and_usable_cpus(benchmark):
    line = benchmark.machine("cpu")
    assert line.startswith(f"{platform.machine()} ({benchmark.cpu_model()}), ")
    assert f", {usable_cpus()} CPUs, no GPU, torch " in line


def test_runs_list_stock_once_then_ours_per_precision_batch_and_grouping(benchmark):
    got = benchmark.runs(["stock", "ours"], ["fp32", "auto"], [32], grouped_widths=True)
    assert got == [
        ("stock", "fp32", None, False),
        ("ours", "fp32", None, False),
        ("ours", "auto", None, False),
        ("ours", "fp32", 32, False),
        ("ours", "fp32", None, True),
        ("ours", "auto", None, True),
    ]
    assert benchmark.runs(["ours"], ["fp32"], []) == [("ours", "fp32", None, False)]
