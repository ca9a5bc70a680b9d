"""Test collection.

The tests mirror the package: ``tests/core``, ``tests/transforms``,
``tests/combinators``, ``tests/wrappers``, ``tests/schedules``,
``tests/precision``, ``tests/engines`` and ``tests/contrib`` test the modules
of the subpackage of the same name; ``tests/architecture`` the layering; the
files directly in ``tests/`` are the cross-cutting, table-driven tests (the
optimizer table in ``optimizers.py``, properties, NumPy references in
``reference*.py``, Optax parity, bad inputs, docs, examples). Test modules
import shared helpers by module name (``import reference``, ``from
test_reference import …``), so every test folder is put on ``sys.path`` here
and every test file's basename is unique across the tree.

``tests/multidevice`` is collected only when ``XLA_FLAGS`` asks for 8 host
devices (``--xla_force_host_platform_device_count=8``), which must be set
before JAX starts; ``tests/test_multidevice.py`` runs it that way in
subprocesses, so the plain ``pytest`` command covers it. ``tests/multihost``
holds the worker that ``tests/test_multihost.py`` starts as two JAX processes:
never collected here.
"""

import os
import pathlib
import sys
import threading
import time

import pytest

# ------------------------------------------------ compile at LLVM -O0
# Almost all of the suite's time is XLA compiling small test programs, and
# LLVM's -O0 compiles them a fifth to a third faster than its default level (the
# property tests: 117 s -> 79 s on two xdist workers; the suite 859 s -> 662 s
# of tests; -O1 saves only ~3%). XLA's own passes over the program (fusion,
# algebraic simplification) run as usual, but -O0 contracts no multiply-adds,
# so float32 results round differently: the few tests whose tolerances were
# measured at the default level say so where they allow for both (trajectories
# 3e-6 from the float64 references instead of 1e-6, the chaotic Rosenbrock
# valleys, 4e-6 between two programs). The subprocesses the tests start
# inherit the level, except tests/multidevice (its files choose theirs:
# test_zero1 keeps the default for ulp-level parity). Set a level yourself in
# XLA_FLAGS (or GRADTX_TESTS_DEFAULT_LEVEL=1) to test at another one.
LEVEL = "--xla_backend_optimization_level=0"
if not os.environ.get("GRADTX_TESTS_DEFAULT_LEVEL") and (
    "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", "")
):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {LEVEL}".strip()
    os.environ["GRADTX_TESTS_LEVEL_SET"] = LEVEL  # set here: others may undo it

_TESTS = pathlib.Path(__file__).resolve().parent
for _folder in sorted(p for p in _TESTS.iterdir() if p.is_dir()):
    if not _folder.name.startswith((".", "_")) and str(_folder) not in sys.path:
        sys.path.append(str(_folder))

collect_ignore = ["multihost"]
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    collect_ignore.append("multidevice")


# ------------------------------------------------ progress in the silent phases
# Each pytest-xdist worker imports JAX and collects ~5,000 tests before the
# first dot, and a few tests run subprocesses for a minute or two: the
# controller says when a worker is ready and what is still running, so that a
# quiet terminal is never a mystery.

# A test still running after this many seconds is reported, and again each time.
LONG_TEST_S = float(os.environ.get("GRADTX_LONG_TEST_S", "60"))
_started: dict = {}
_t0 = time.monotonic()


def _controller(config) -> bool:
    return not hasattr(config, "workerinput")  # xdist workers report nothing


@pytest.hookimpl(trylast=True)  # after the terminal reporter exists
def pytest_configure(config):
    if not _controller(config):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    config._gradtx_watch = threading.Event()
    thread = threading.Thread(
        target=_watch, args=(reporter, config._gradtx_watch), daemon=True
    )
    thread.start()


def pytest_unconfigure(config):
    if _controller(config) and hasattr(config, "_gradtx_watch"):
        config._gradtx_watch.set()


def _watch(reporter, stop):
    reported: dict = {}
    while not stop.wait(min(5.0, LONG_TEST_S / 2)):
        now = time.monotonic()
        for nodeid, start in list(_started.items()):
            periods = int((now - start) // LONG_TEST_S)
            if periods >= 1 and reported.get(nodeid, 0) < periods:
                reported[nodeid] = periods
                reporter.write(  # on a line of its own, amid the dots
                    f"\n  ... still running after {int(now - start)} s: {nodeid}\n"
                )


def pytest_runtest_logstart(nodeid, location):
    _started[nodeid] = time.monotonic()


def pytest_runtest_logfinish(nodeid, location):
    _started.pop(nodeid, None)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodeready(node):
    reporter = node.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"  {node.gateway.id} started after {time.monotonic() - _t0:.0f} s; "
            "importing JAX and collecting the tests"
        )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    reporter = node.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"  {node.gateway.id} collected {len(ids):,} tests after "
            f"{time.monotonic() - _t0:.0f} s"
        )
