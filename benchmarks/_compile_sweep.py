"""Compile time against number of leaves: trace, lower and compile apart.

Each point (engine, number of leaves) is measured in a fresh child process of
the same interpreter (``python -m benchmarks._compile_sweep ...``), for two
reasons: compile times are not comparable when one library runs after another
has warmed JAX's caches in the same process, and a child can be stopped at the
time cap. The largest Optax points are slow (``chain(clip_by_global_norm,
adamw(schedule))`` took 213 s at 4,000 leaves on the issue's machine), so:

- a point still compiling ``cap_s`` seconds after the child is ready is
  stopped and reported as ``over_cap`` (``>cap``), with the phases that did
  finish;
- an engine that went over the cap is not run at larger sizes (``skipped``);
- a ratio to Optax is exact when both finished, an upper bound (``<r``) when
  only Optax went over the cap, a lower bound (``>r``) when only the other did.

The child first compiles the same recipe on a one-leaf tree, so one-time costs
(imports, backend start-up, first trace of each primitive) are left out and
the numbers scale with the tree. Inputs are abstract
(:class:`jax.ShapeDtypeStruct`): no arrays are allocated.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 120.0
PHASES = ("trace_s", "lower_s", "compile_s")


def measure(
    engine_spec: str,
    recipe_name: str,
    n_leaves: int,
    leaf_size: int,
    emit: Callable[[dict[str, Any]], None],
    warm_up: bool = True,
) -> None:
    """Measures one point, calling ``emit`` after the warm-up and each phase."""
    import jax

    from . import _cases, _engines, _jax_step, _recipes

    engine = _engines.by_spec(engine_spec)
    recipe = _recipes.RECIPES[recipe_name]

    def abstract_step(n):
        """The jitted step, its (abstract) params and state for ``n`` leaves."""
        tree = _cases.flat_tree(n, leaf_size)
        if engine.prepare is not None:
            tree = jax.eval_shape(engine.prepare, tree)
        tx = engine.make(recipe)
        state = jax.eval_shape(tx.init, tree)
        step = jax.jit(_jax_step.make_step(engine, tx), donate_argnums=(0, 1))
        return step, tree, state

    if warm_up:
        warm_step, one, warm_state = abstract_step(1)
        warm_step.trace(one, warm_state, one).lower().compile()
    emit({"event": "ready"})

    step, tree, state = abstract_step(n_leaves)
    start = time.perf_counter()
    traced = step.trace(tree, state, tree)
    emit({"event": "phase", "phase": "trace_s", "seconds": time.perf_counter() - start})
    start = time.perf_counter()
    lowered = traced.lower()
    emit({"event": "phase", "phase": "lower_s", "seconds": time.perf_counter() - start})
    start = time.perf_counter()
    lowered.compile()
    emit(
        {"event": "phase", "phase": "compile_s", "seconds": time.perf_counter() - start}
    )


def _point_from_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    point: dict[str, Any] = {phase: None for phase in PHASES}
    for event in events:
        if event.get("event") == "phase":
            point[event["phase"]] = event["seconds"]
    done = all(point[phase] is not None for phase in PHASES)
    point["total_s"] = sum(point[phase] for phase in PHASES) if done else None
    return point


def measure_inline(
    engine_spec: str, recipe_name: str, n_leaves: int, leaf_size: int
) -> dict[str, Any]:
    """Measures one point in this process: no cap, no warm-up, warm caches.

    For the smoke test only: the numbers are not comparable across libraries.
    """
    events: list[dict[str, Any]] = []
    try:
        measure(engine_spec, recipe_name, n_leaves, leaf_size, events.append, False)
    except Exception as error:
        return {**_point_from_events(events), "status": "error", "note": repr(error)}
    return {**_point_from_events(events), "status": "ok"}


def _follow(child: subprocess.Popen, cap_s: float) -> tuple[list[dict[str, Any]], bool]:
    """The child's events, and whether it ended by itself (else it is killed).

    The child has ``STARTUP_TIMEOUT_S`` to report ``ready`` and then ``cap_s``
    to finish; its stdout is read on a thread so that the wait can time out.
    """
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            child.kill()
            return events, False
        if line is None:
            return events, True
        if line.startswith("{"):
            events.append(json.loads(line))
            if events[-1].get("event") == "ready":
                deadline = time.monotonic() + cap_s


def measure_in_child(
    engine_spec: str, recipe_name: str, n_leaves: int, leaf_size: int, cap_s: float
) -> dict[str, Any]:
    """Measures one point in a child process, stopping it ``cap_s`` after ready."""
    command = [
        sys.executable, "-m", "benchmarks._compile_sweep",
        "--engine", engine_spec, "--recipe", recipe_name,
        "--leaves", str(n_leaves), "--leaf-size", str(leaf_size),
    ]  # fmt: skip
    with tempfile.TemporaryFile(mode="w+") as errors:
        child = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        events, ended = _follow(child, cap_s)
        child.wait()
        errors.seek(0)
        stderr = errors.read()
    point = _point_from_events(events)
    ready = any(event.get("event") == "ready" for event in events)
    if point["total_s"] is not None:
        point["status"] = "ok"
    elif not ended and ready:
        point["status"] = "over_cap"
        point["note"] = f">{cap_s:g} s: stopped at the cap"
    else:
        tail = stderr.strip().splitlines()[-1:] or ["no output"]
        point["status"] = "error"
        point["note"] = (tail[0] if ended else "did not start in time")[:300]
    return point


def _ratio(point: dict[str, Any], reference: dict[str, Any], cap_s: float):
    """``(kind, value)``: kind is "=", "<" or ">", or ``None`` if unknown."""
    mine, theirs = point.get("total_s"), reference.get("total_s")
    if mine is not None and theirs is not None and theirs > 0:
        return "=", mine / theirs
    if mine is not None and reference.get("status") == "over_cap":
        return "<", mine / cap_s
    if theirs and point.get("status") == "over_cap":
        return ">", cap_s / theirs
    return None


def run_sweep(
    engine_specs: Sequence[tuple[str, str]],
    recipe_name: str,
    leaves: Sequence[int],
    leaf_size: int,
    cap_s: float,
    isolation: str,
    reference: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """All points, smallest trees first; ``engine_specs`` is (name, spec) pairs."""
    points: list[dict[str, Any]] = []
    stopped: dict[str, int] = {}
    for n in leaves:
        row: dict[str, dict[str, Any]] = {}
        for name, spec in engine_specs:
            if name in stopped:
                point = {phase: None for phase in PHASES}
                point.update(total_s=None, status="skipped")
                point["note"] = f"over the cap at {stopped[name]} leaves"
            elif isolation == "inline":
                point = measure_inline(spec, recipe_name, n, leaf_size)
            else:
                point = measure_in_child(spec, recipe_name, n, leaf_size, cap_s)
            if point["status"] in ("over_cap", "error"):
                stopped[name] = n
            point.update(leaves=n, library=name)
            row[name] = point
            log(f"compile {recipe_name} {n} leaves {name}: {_brief(point)}")
        for point in row.values():
            ratio = _ratio(point, row[reference], cap_s) if reference in row else None
            point["ratio_to_reference"] = (
                None if ratio is None else {"kind": ratio[0], "value": ratio[1]}
            )
            points.append(point)
    return {
        "optimizer": recipe_name,
        "leaf_shape": [leaf_size],
        "cap_s": cap_s,
        "isolation": isolation,
        "reference": reference,
        "points": points,
    }


def _brief(point: dict[str, Any]) -> str:
    if point["status"] == "ok":
        return f"{point['total_s']:.2f} s"
    return f"{point['status']} ({point.get('note', '')})"


def _child_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--leaves", type=int, required=True)
    parser.add_argument("--leaf-size", type=int, default=64)
    args = parser.parse_args(argv)

    def emit(event: dict[str, Any]) -> None:
        print(json.dumps(event), flush=True)

    measure(args.engine, args.recipe, args.leaves, args.leaf_size, emit)


if __name__ == "__main__":
    _child_main()
