"""Several processes: 2 JAX processes of 4 CPU devices against 1 process of 8.

``tests/multihost/worker.py`` runs as two processes joined by
``jax.distributed`` (gloo collectives over localhost, started by the launcher
of ``examples/local_cluster.py``) on a (2, 4) mesh whose ``data`` axis spans
them, and as one process of 8 devices (the reference), at the same time.
Each asserts what it can see by itself and writes every shard it addresses;
here the two processes' shards must be the reference's, device by device:

* 3 steps of AdamW after clipping, LAMB, Muon, Adafactor, 8-bit Adam, Kahan
  summation and MultiSteps on params split over ``data``, ``model``, both
  and neither, state placed by ``state_shardings`` (and eager ``init`` puts
  it there too);
* ``state_shardings`` and ``per_device_bytes`` answered on each process, for
  its own 4 devices, with the bytes of the shards it holds;
* ZeRO-1: ``zero1_shardings`` splits the state of replicated params over
  ``data``: each process holds one half (half the bytes), and the numbers
  are those of the replicated state;
* an Orbax checkpoint of params and state written by both processes,
  restored into ``state_shardings`` (or the ZeRO-1 shardings), or without a
  target, through ``restore_state``, resumes bit for bit;
* a process that dies makes the run fail, naming it, within seconds: the
  survivor is stopped by JAX itself (missed heartbeats, or the coordinator
  gone), and the launcher's bound is the backstop.

Run it alone with ``python -m pytest tests/test_multihost.py``.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import pathlib
import re
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The launcher the example uses, loaded from its file: putting examples/ on
# sys.path would shadow modules of the same names (schedules, …).
_spec = importlib.util.spec_from_file_location(
    "local_cluster", ROOT / "examples" / "local_cluster.py"
)
local_cluster = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(local_cluster)

WORKER = ROOT / "tests" / "multihost" / "worker.py"
# Unoptimised code generation compiles the ~40 small programs of each process
# faster; both runs use it, so they compile the same programs.
FLAGS = "--xla_backend_optimization_level=0"
TIMEOUT = 240  # s; the run takes ~25 s alone on 2 cores


def _launch(processes: int, *args, grace: float = 0.0, nice: int = 0):
    return local_cluster.launch(
        [str(WORKER), *map(str, args)],
        processes,
        8 // processes,
        timeout=TIMEOUT,
        grace=grace,
        xla_flags=FLAGS,
        nice=nice,
        cwd=str(ROOT),
    )


def _load(folder: pathlib.Path, processes: int) -> list:
    return [
        (
            dict(np.load(folder / f"process{i}.npz")),
            json.loads((folder / f"process{i}.json").read_text()),
        )
        for i in range(processes)
    ]


def _position(key: str) -> int:
    return int(key.rsplit("@", 1)[1])


def test_two_processes_give_the_one_process_run(tmp_path):
    """One test, so that ``pytest -n`` runs the launch once: the two-process
    run and the one-process reference side by side, then every check."""
    two, one = tmp_path / "two", tmp_path / "one"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        # The reference yields the cores to the two processes, which wait
        # on each other at every collective, and takes them when they wait.
        jobs = [
            pool.submit(_launch, 2, "check", "--out", two),
            pool.submit(_launch, 1, "check", "--out", one, nice=10),
        ]
        for job in jobs:
            job.result()
    processes, reference = _load(two, 2), _load(one, 1)[0]
    for i, (_, meta) in enumerate(processes):
        assert (meta["process"], meta["processes"]) == (i, 2)
    assert (reference[1]["process"], reference[1]["processes"]) == (0, 1)
    _same_numbers(processes, reference)
    _bytes_per_process(processes, reference)
    _zero1_split(processes, reference)


def _same_numbers(processes, reference):
    """Every shard of the two processes is the reference's at the same place
    in the mesh: params and state after 3 steps, and after resuming from the
    checkpoint (which each process also checks bit for bit against its
    uninterrupted run)."""
    want, want_meta = reference
    # Devices 0-3 of the mesh belong to process 0, 4-7 to process 1: each
    # process wrote the shards of its own devices, the same pieces of each
    # array as the reference's devices at those places in the mesh.
    keys = [set(arrays) for arrays, _ in processes]
    assert keys[0].isdisjoint(keys[1])
    assert keys[0] | keys[1] == set(want)
    for name in ("clip+adamw/resumed", "zero1/resumed", "multisteps/state"):
        assert all(any(k.startswith(name) for k in ks) for ks in keys), name
    worst = {}
    for key, expected in want.items():
        arrays, meta = processes[_position(key) // 4]
        assert key in arrays, key
        assert meta["index"][key] == want_meta["index"][key], key
        got = arrays[key]
        assert got.dtype == expected.dtype, key
        if not np.issubdtype(expected.dtype, np.floating):
            np.testing.assert_array_equal(got, expected, err_msg=key)
            continue
        leaf = key.rsplit("@", 1)[0]
        worst[leaf] = max(
            worst.get(leaf, 0.0), float(np.max(np.abs(got - expected), initial=0))
        )
    # Reductions over devices (global norms, trust ratios, Muon's products,
    # Adafactor's row and column means, the loss's sum of every shard) add
    # the 8 partial results in another order over gloo than in one process:
    # leaves agree to 2 float32 ulp of their largest entry (measured: <= 1).
    # Kahan's compensation *is* the rounding error of the params, so it is
    # compared at the params' scale (2 ulp of |params| <= 4).
    for leaf, diff in worst.items():
        entries = [v for k, v in want.items() if k.rsplit("@", 1)[0] == leaf]
        scale = (
            4.0 if "compensation" in leaf else max(np.max(np.abs(v)) for v in entries)
        )
        assert diff <= 2 * np.finfo(np.float32).eps * scale, (leaf, diff, scale)
        # Data parallel over the 2 processes reduces 2 partial results,
        # a + b in either order: ZeRO-1's run is equal to the bit.
        assert diff == 0 or not leaf.startswith("zero1"), (leaf, diff)


def _bytes_per_process(processes, reference):
    """``state_shardings`` gives the same specs on each process; each
    process's ``per_device_bytes`` names its own 4 devices, with what the
    reference's devices at those places hold."""
    want_meta = reference[1]
    for _, meta in processes:
        assert meta["specs"] == want_meta["specs"]
    names = set(want_meta["bytes"])
    assert {"clip+adamw", "muon", "adafactor", "zero1", "replicated"} <= names
    for name in names:
        mine = [meta["bytes"][name] for _, meta in processes]
        assert set(mine[0]) == {"0", "1", "2", "3"}, (name, mine[0])
        assert set(mine[1]) == {"4", "5", "6", "7"}, (name, mine[1])
        assert {**mine[0], **mine[1]} == want_meta["bytes"][name], name


def _zero1_split(processes, reference):
    """Each split state leaf: the two processes hold different halves."""
    halves = 0
    leaves = {k.rsplit("@", 1)[0] for k in reference[0] if k.startswith("zero1/state")}
    for leaf in leaves:
        held = [
            {
                tuple(map(tuple, meta["index"][k]))
                for k in arrays
                if k.startswith(leaf + "@")
            }
            for arrays, meta in processes
        ]
        halves += held[0].isdisjoint(held[1])
    assert halves == 6, halves  # AdamW's mu and nu of the three layers
    z, r = (processes[0][1]["bytes"][k]["0"] for k in ("zero1", "replicated"))
    assert z < 0.6 * r, (z, r)


def test_a_crashed_process_stops_the_run():
    """Either process dies after a first collective while the other keeps
    running collectives: the run fails within seconds, naming it. The
    survivor is stopped by JAX (after 4 s of missed heartbeats, or at once
    when the coordinator, process 0, is gone) before the launcher's grace
    of 30 s would kill it."""

    def crash(which: int):
        start = time.monotonic()
        with pytest.raises(local_cluster.WorkerFailed) as failed:
            _launch(2, "crash", "--crash", which, grace=30)
        return str(failed.value), time.monotonic() - start

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(crash, (1, 0)))
    for which, (message, elapsed) in zip((1, 0), outcomes, strict=True):
        other = 1 - which
        assert message.startswith(f"process {which} of 2 exited with status 3"), message
        # The survivor stopped by itself, not killed by the launcher: JAX's
        # coordination service aborted it (seen every time), or an error
        # from a collective with the dead process ended it.
        assert f"process {other} (killed)" not in message, message
        assert (
            f"process {other} (signal SIGABRT)" in message
            and "Terminating process because the JAX distributed service" in message
        ) or (f"process {other} (status 1)" in message and "RuntimeError" in message), (
            message
        )
        assert elapsed < 25, (elapsed, message)


def _sleepers(codes: str, timeout: float):
    """Plain Python processes: process ``i`` sleeps, or exits with ``codes[i]``."""
    script = (
        "import os, sys, time\n"
        f"code = {codes!r}[int(os.environ[{local_cluster.ID!r}])]\n"
        "print('to stderr', file=sys.stderr)\n"
        "sys.exit(int(code)) if code != 's' else time.sleep(60)\n"
    )
    return local_cluster.launch(["-c", script], len(codes), 1, timeout=timeout)


def test_the_launcher_kills_the_others_when_one_fails():
    start = time.monotonic()
    with pytest.raises(local_cluster.WorkerFailed) as failed:
        _sleepers("s3s", timeout=60)
    assert time.monotonic() - start < 10
    message = str(failed.value)
    assert re.match(
        r"process 1 of 3 exited with status 3 after [\d.]+ s; "
        r"killed process\(es\) \[0, 2\]\.",
        message,
    ), message
    assert "process 1 (status 3); its stderr ends:\n    to stderr" in message
    assert "process 0 (killed)" in message


def test_the_launcher_bounds_the_run():
    start = time.monotonic()
    with pytest.raises(local_cluster.WorkerFailed, match=r"timed out after 1 s"):
        _sleepers("s0", timeout=1)
    assert time.monotonic() - start < 10
    results = _sleepers("00", timeout=30)
    assert [(r.process, r.returncode) for r in results] == [(0, 0), (1, 0)]
