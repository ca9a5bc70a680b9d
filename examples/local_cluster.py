"""Several JAX processes on one machine: a launcher and the worker's side.

JAX runs on several hosts as one program per process (multi-controller):
every process runs the same script, sees all devices (``jax.devices()``),
addresses its own (``jax.local_devices()``) and joins the others through
``jax.distributed.initialize``. This module makes such a run on one machine,
with ``n`` processes of ``k`` simulated CPU devices each, their collectives
over gloo (TCP on localhost):

* :func:`launch` (the parent) starts the processes with a free coordinator
  port in their environment, waits for them under a wall-clock bound, and
  when one fails stops the others and raises :class:`WorkerFailed` naming it,
  with the end of its stderr: a crashed process never leaves the rest
  hanging in a collective;
* :func:`initialize` (in each process, before anything else touches JAX)
  joins the run the launcher described, with short timeouts: a process whose
  peer died stops by itself once the peer's heartbeats are missed.

``examples/data_parallel.py --processes 2`` and ``tests/test_multihost.py``
use it. The parent imports no JAX. This is a test and demonstration harness
for one machine; on a cluster, start one process per host with your
scheduler and call ``jax.distributed.initialize()``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

ID, COUNT, COORDINATOR = (
    "LOCAL_CLUSTER_PROCESS",
    "LOCAL_CLUSTER_PROCESSES",
    "LOCAL_CLUSTER_COORDINATOR",
)


class WorkerFailed(RuntimeError):
    """A launched process failed (or the run timed out); the others were stopped."""


class Result(NamedTuple):
    """How one process ended: its id, exit status and output."""

    process: int
    returncode: int
    stdout: str
    stderr: str


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


_FRAME = re.compile(r"\s*@\s+0x")


def _tail(text: str, lines: int = 25) -> str:
    kept = [  # not blank lines, nor the addresses of a native stack trace
        line for line in text.splitlines() if line.strip() and not _FRAME.match(line)
    ][-lines:]
    return "\n".join("    " + line for line in kept) or "    (nothing)"


def launch(
    argv: list[str],
    processes: int,
    local_devices: int,
    *,
    timeout: float,
    grace: float = 0.0,
    xla_flags: str = "",
    nice: int = 0,
    env: dict | None = None,
    cwd: str | None = None,
) -> list[Result]:
    """Runs ``python argv`` as ``processes`` JAX processes and waits for them.

    Each process gets ``local_devices`` CPU devices (``XLA_FLAGS``), its id
    and the coordinator's address in its environment (read by
    :func:`initialize`). The processes' stdout and stderr go to temporary
    files, so a chatty process never blocks on a full pipe.

    Args:
      argv: the script and its arguments (run with this Python).
      processes: how many processes.
      local_devices: CPU devices per process.
      timeout: seconds the whole run may take; then every process is killed.
      grace: once a process has failed, seconds the others get to stop by
        themselves (JAX's own failure detection) before they are killed.
      xla_flags: more ``XLA_FLAGS`` for every process.
      nice: added to the processes' niceness (a lower CPU priority), so
        another run on the same cores goes first.
      env: the environment to start from (default: this one's).
      cwd: the processes' working directory.

    Returns:
      One :class:`Result` per process, in process order, all successful.

    Raises:
      WorkerFailed: a process exited with a non-zero status (the first to
        fail is named, with the end of its stderr, then any other that
        failed), or the run took longer than ``timeout``.
    """
    env = dict(os.environ if env is None else env)
    flags = re.sub(
        r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", "")
    )
    env["XLA_FLAGS"] = " ".join(
        [
            *flags.split(),
            f"--xla_force_host_platform_device_count={local_devices}",
            *xla_flags.split(),
        ]
    )
    env["JAX_PLATFORMS"] = "cpu"
    env[COUNT] = str(processes)
    env[COORDINATOR] = f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        files, procs = [], []
        try:
            for i in range(processes):
                out = stack.enter_context(tempfile.TemporaryFile("w+"))
                err = stack.enter_context(tempfile.TemporaryFile("w+"))
                files.append((out, err))
                procs.append(
                    subprocess.Popen(
                        [sys.executable, *argv],
                        env={**env, ID: str(i)},
                        cwd=cwd,
                        stdout=out,
                        stderr=err,
                        text=True,
                        preexec_fn=(lambda: os.nice(nice)) if nice else None,
                    )
                )
            failed, failed_after = _wait(procs, start, timeout, grace)
        finally:
            killed = {i for i, p in enumerate(procs) if p.poll() is None}
            for i in killed:
                procs[i].kill()
            for p in procs:
                p.wait()
        results = []
        for i, (p, (out, err)) in enumerate(zip(procs, files, strict=True)):
            out.seek(0)
            err.seek(0)
            results.append(Result(i, p.returncode, out.read(), err.read()))
    if failed is None and not killed:
        return results
    if failed is None:
        head = f"timed out after {timeout:.0f} s: killed process(es) {sorted(killed)}."
        order = results
    else:
        first = results[failed]
        head = (
            f"process {failed} of {processes} exited with {_status(first.returncode)} "
            f"after {failed_after:.1f} s; "
            + (f"killed process(es) {sorted(killed)}." if killed else "")
        )
        order = [first, *(r for r in results if r.process != failed)]
    parts = [head.rstrip("; ")]
    for r in order:
        if r.returncode != 0:
            how = "killed" if r.process in killed else _status(r.returncode)
            parts.append(
                f"process {r.process} ({how}); its stderr ends:\n" + _tail(r.stderr)
            )
    raise WorkerFailed("\n".join(parts))


def _wait(
    procs: list, start: float, timeout: float, grace: float
) -> tuple[int | None, float]:
    """Polls until all exit, one fails (then ``grace``) or time is up:
    ``(index of the first to fail or None, seconds from start to then)``."""
    failed, failed_after, deadline = None, 0.0, start + timeout
    while time.monotonic() < deadline:
        codes = [p.poll() for p in procs]
        if failed is None:
            bad = [i for i, c in enumerate(codes) if c not in (None, 0)]
            if bad:
                failed, failed_after = bad[0], time.monotonic() - start
                deadline = min(deadline, time.monotonic() + grace)
        if all(c is not None for c in codes):
            break
        time.sleep(0.05)
    return failed, failed_after


def process_id() -> int | None:
    """This process's id in a launched run, or ``None`` outside one."""
    value = os.environ.get(ID)
    return None if value is None else int(value)


def initialize(heartbeat_timeout: int = 10, init_timeout: int = 60) -> None:
    """Joins the run :func:`launch` started (call it before using JAX).

    Collectives between processes go over gloo. When a process stops
    sending heartbeats for ``heartbeat_timeout`` seconds, JAX's coordination
    service aborts the others (naming the unhealthy task), and when the
    coordinator (process 0) dies they abort at once, so a crash never leaves
    the others waiting in a collective. A run of one process initialises
    nothing but gloo.
    """
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    count = int(os.environ.get(COUNT, "1"))
    if count == 1:
        return
    jax.distributed.initialize(
        coordinator_address=os.environ[COORDINATOR],
        num_processes=count,
        process_id=int(os.environ[ID]),
        cluster_detection_method="deactivate",
        initialization_timeout=init_timeout,
        heartbeat_timeout_seconds=heartbeat_timeout,
        shutdown_timeout_seconds=init_timeout,
    )
