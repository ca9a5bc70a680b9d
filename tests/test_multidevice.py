"""Runs ``tests/multidevice`` on 8 simulated CPU devices, one subprocess per
file (so pytest-xdist spreads them over its workers).

JAX fixes its device count when it starts, so these tests cannot share this
process; run them directly with

    XLA_FLAGS=--xla_force_host_platform_device_count=8 \
        python -m pytest tests/multidevice
"""

import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
FILES = sorted(p.name for p in (HERE / "multidevice").glob("test_*.py"))
# These check where arrays go (decided before code generation) and compare
# numbers computed in the same process: LLVM's -O0 compiles their ~300 small
# 8-device programs ~25% faster (the matrix optimizers' ~30% faster).
# test_zero1.py measures ZeRO-1's parity with the replicated run at the ulp
# level, so it keeps the optimised code.
O0 = "--xla_backend_optimization_level=0"
UNOPTIMISED = {
    "test_state_sharding.py",
    "test_global_reductions.py",
    "test_matrix_factors.py",  # 53 s -> 37 s alone
    "test_shardings_kept.py",
}


@pytest.mark.parametrize("name", FILES)
def test_multidevice(name):
    env = dict(os.environ)
    base = env.get("XLA_FLAGS", "")
    level = env.pop("GRADTX_TESTS_LEVEL_SET", None)
    if level:  # conftest's level: each file here gets the one chosen below
        base = base.replace(level, "")
    env["GRADTX_TESTS_DEFAULT_LEVEL"] = "1"  # and its conftest leaves it alone
    flags = " --xla_force_host_platform_device_count=8"
    if name in UNOPTIMISED:
        flags += f" {O0}"
    env["XLA_FLAGS"] = (base + flags).strip()
    env.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(HERE / "multidevice" / name),
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--durations=5",
        ],
        cwd=HERE.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    assert " passed" in result.stdout, result.stdout[-2000:]


def test_every_multidevice_file_is_run():
    assert {"test_state_sharding.py", "test_zero1.py"} <= set(FILES)
