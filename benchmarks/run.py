"""Benchmarks gradtx against Optax and torch.optim, in one process, round-robin.

Usage (from the repository root)::

    python -m benchmarks.run --quick             # under 3 minutes on 2 cores
    python -m benchmarks.run                     # the full run, under 15
    python -m benchmarks.run --only large,compile --json /tmp/out.json

For each case (one large leaf, a transformer-like tree, many small leaves)
every library's step is compiled, warmed up and then timed in turns with the
others and with a bandwidth probe; the tables give medians, min–max, ratios to
Optax taken round by round, the fraction of the bandwidth bound, optimizer
state bytes per parameter, XLA's peak memory of the step and its compile
phases. A compile-time sweep against number of leaves follows, then the
precision options of gradtx (state bytes per parameter, step time). See
``benchmarks/README.md`` for what every column means.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from . import (
    _cases,
    _compile_sweep,
    _engines,
    _guards,
    _jax_step,
    _precision,
    _probe,
    _recipes,
)
from . import _torch_step as _torch
from ._report import format_report
from ._timing import (
    TooSlow,
    calibrate,
    describe_error,
    ratios_by_round,
    round_robin,
    summarize,
)

SECTIONS = ("large", "transformer", "many", "compile", "precision", "guards")


def _entry(recipe: _recipes.Recipe, library: str, kind: str) -> dict[str, Any]:
    return {
        "optimizer": recipe.name,
        "label": recipe.label,
        "library": library,
        "kind": kind,
        "status": "ok",
        "note": "",
        "bytes_per_param": recipe.bytes_per_param,
    }


def _participants(
    case: _cases.Case,
    engines: Sequence[_engines.Engine],
    use_torch: bool,
    log: Callable[[str], None],
) -> tuple[list[Any], list[dict[str, Any]], int, int]:
    """Builds (and compiles) every column of a case; failures become notes."""
    tree = case.tree()
    n_leaves, n_params = _cases.count(tree)
    params_np = _cases.make_arrays(tree, seed=0)
    grads_np = _cases.make_arrays(tree, seed=1, scale=1e-3)
    grads = jax.tree.map(jnp.asarray, grads_np)
    participants: list[Any] = []
    entries: list[dict[str, Any]] = []
    for recipe in (_recipes.RECIPES[name] for name in case.optimizers):
        for engine in engines:
            entry = _entry(recipe, engine.name, "jax")
            name = f"{recipe.name}/{engine.name}"
            try:
                participant, info = _jax_step.build(
                    name, engine, recipe, params_np, grads
                )
            except Exception as error:
                entry.update(status="error", note=describe_error(error))
            else:
                participants.append(participant)
                entry.update(info, state_bytes_per_param=info["state_bytes"] / n_params)
                phases = info["compile"]
                log(f"{case.name}: compiled {name} in {sum(phases.values()):.2f} s")
            entries.append(entry)
        for mode in _recipes.TORCH_MODES if use_torch else ():
            library = "torch" if mode == "default" else f"torch-{mode}"
            if recipe.torch is None:
                continue
            entry = _entry(recipe, library, "torch")
            try:
                participant = _torch.build(
                    f"{recipe.name}/{library}", recipe, mode, params_np, grads_np
                )
            except Exception as error:
                entry.update(status="error", note=describe_error(error))
            else:
                participants.append(participant)
            entries.append(entry)
    return participants, entries, n_leaves, n_params


def run_case(
    case: _cases.Case,
    config: _cases.Config,
    engines: Sequence[_engines.Engine],
    use_torch: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Compiles, warms up and times every column of one case, round-robin."""
    participants, entries, n_leaves, n_params = _participants(
        case, engines, use_torch, log
    )
    probe = _probe.BandwidthProbe(config.probe_params)
    iters = {probe.name: calibrate(probe, config.target_batch_s)}
    everyone = [probe]
    by_name = {f"{e['optimizer']}/{e['library']}": e for e in entries}
    for participant in participants:
        start = time.perf_counter()
        try:
            iters[participant.name] = calibrate(
                participant, config.target_batch_s, config.max_step_s
            )
        except TooSlow as slow:
            entry = by_name[participant.name]
            hint = " (torch threads on a busy core? try --torch-threads 1)"
            entry.update(
                status="too_slow",
                note=f"left out: {slow}" + (hint if entry["kind"] == "torch" else ""),
                warmup_step_s=slow.seconds,
            )
            log(f"{case.name}: {participant.name} left out: {slow}")
            continue
        except Exception as error:
            by_name[participant.name].update(status="error", note=describe_error(error))
            continue
        everyone.append(participant)
        seconds = time.perf_counter() - start
        log(
            f"{case.name}: warmed up {participant.name} in {seconds:.2f} s, "
            f"{iters[participant.name]} steps per batch"
        )
    log(f"{case.name}: timing {len(everyone)} columns for {config.rounds} rounds")
    samples, failed, stopped = round_robin(
        everyone, config.rounds, iters, config.max_step_s
    )
    probe_s = samples["probe"]
    result = {
        "name": case.name,
        "description": case.description,
        "n_leaves": n_leaves,
        "n_params": n_params,
        "rounds": config.rounds,
        "probe": {
            "n_elements": probe.n_elements,
            "bytes_per_step": probe.bytes_per_step,
            "iters": iters["probe"],
            "samples_s": probe_s,
            "gbps": summarize([probe.bytes_per_step / s / 1e9 for s in probe_s]),
        },
        "results": entries,
    }
    for participant in participants:
        entry = by_name[participant.name]
        if participant.name in failed:
            entry.update(status="error", note=failed[participant.name])
        if participant.name in stopped:
            entry["note"] = stopped[participant.name]
        if entry["status"] != "ok":
            continue
        times = samples[participant.name]
        reference = samples.get(f"{entry['optimizer']}/{_engines.REFERENCE}", [])
        fractions = _probe.bound_fractions(
            times, probe_s, probe.bytes_per_step, entry["bytes_per_param"] * n_params
        )
        entry.update(
            iters=iters[participant.name],
            samples_s=times,
            time_s=summarize(times),
            ratio_to_optax=ratios_by_round(times, reference),
            bound_fraction=summarize(fractions),
        )
        if isinstance(participant, _torch.TorchParticipant):
            state = participant.state_bytes()
            entry.update(state_bytes=state, state_bytes_per_param=state / n_params)
    result["clip_over_plain"] = _clip_over_plain(entries, samples)
    return result


def _clip_over_plain(
    entries: list[dict[str, Any]], samples: dict[str, list[float]]
) -> dict[str, Any]:
    """Per library: the clipped step's time over the plain one's, by round."""
    out = {}
    for entry in entries:
        if entry["optimizer"] != "clip_adamw" or entry["status"] != "ok":
            continue
        plain = samples.get(f"adamw/{entry['library']}")
        clipped = samples.get(f"clip_adamw/{entry['library']}")
        ratio = ratios_by_round(clipped or [], plain or [])
        if ratio:
            out[entry["library"]] = ratio
    return out


def run_benchmarks(
    config: _cases.Config,
    engine_specs: Sequence[str] = _engines.DEFAULT_ENGINES,
    only: Sequence[str] = SECTIONS,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Runs the selected sections of ``config``; returns the JSON-ready results."""
    started = time.perf_counter()
    load_start = os.getloadavg()
    engines, notes = _engines.resolve(engine_specs)
    if not any(engine.name == _engines.REFERENCE for engine in engines):
        notes.append(f"no {_engines.REFERENCE} column: ratios are left empty")
    torch_meta = _torch.torch_info(config.torch_threads) if config.torch else None
    if config.torch and torch_meta is None:
        notes.append("torch is not importable: torch columns skipped")
    cpus = len(os.sched_getaffinity(0))
    if load_start[0] > 0.5:
        notes.append(
            f"the machine was busy at the start (load average {load_start[0]:.2f} "
            f"on {cpus} CPUs): ratios within a round stay meaningful, absolute "
            "times do not; torch's OpenMP threads suffer most from a busy core "
            "(compare --torch-threads 1)"
        )
    cases = []
    for case in config.cases:
        if case.name in only:
            log(f"{case.name}: building columns")
            cases.append(run_case(case, config, engines, torch_meta is not None, log))
    sweep = None
    if "compile" in only and engines:
        recipe = _recipes.RECIPES[config.sweep_optimizer]
        sweep = _compile_sweep.run_sweep(
            [(engine.name, engine.spec or engine.name) for engine in engines],
            recipe.name,
            config.sweep_leaves,
            config.sweep_leaf_size,
            config.compile_cap_s,
            config.compile_isolation,
            _engines.REFERENCE,
            log,
        )
        sweep["label"] = recipe.label
    precision = None
    if "precision" in only:
        precision = _precision.run_precision(
            config.precision_params, config.rounds, config.target_batch_s, log
        )
    guards = None
    if "guards" in only:
        guards = _guards.run_guards(
            config.guards_tree(), config.rounds, config.target_batch_s, log
        )
    versions = {engine.name: engine.version for engine in engines}
    meta = {
        "mode": config.mode,
        "jax": jax.__version__,
        "optax": versions.get("optax"),
        "gradtx": versions.get("gradtx"),
        "engines": [engine.name for engine in engines],
        "torch": torch_meta,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": cpus,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "rounds": config.rounds,
        "target_batch_s": config.target_batch_s,
        "max_step_s": config.max_step_s,
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "wall_s": time.perf_counter() - started,
    }
    return {
        "meta": meta,
        "notes": notes,
        "cases": cases,
        "compile_sweep": sweep,
        "precision": precision,
        "guards": guards,
    }


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="the 3-minute run")
    parser.add_argument(
        "--json",
        type=pathlib.Path,
        help="where to write the results (default benchmarks/results/<mode>.json)",
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections among {','.join(SECTIONS)} (default all)",
    )
    parser.add_argument(
        "--engine",
        action="append",
        help="a JAX column: "
        + ", ".join(_engines.FACTORIES)
        + " or package.module:factory; repeat for several "
        + f"(default {' '.join(_engines.DEFAULT_ENGINES)}; optax is the reference)",
    )
    parser.add_argument("--no-torch", action="store_true", help="skip torch.optim")
    parser.add_argument(
        "--torch-threads", type=int, help="torch.set_num_threads (default: torch's)"
    )
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument(
        "--compile-cap", type=float, help="seconds per compile point before '>cap'"
    )
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose among {SECTIONS}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The command line: runs, prints the tables, writes the JSON file."""
    args = _parse(argv)
    config = _cases.quick_config() if args.quick else _cases.full_config()
    overrides: dict[str, Any] = {}
    if args.rounds:
        overrides["rounds"] = args.rounds
    if args.compile_cap:
        overrides["compile_cap_s"] = args.compile_cap
    if args.no_torch:
        overrides["torch"] = False
    if args.torch_threads:
        overrides["torch_threads"] = args.torch_threads
    if overrides:
        import dataclasses

        config = dataclasses.replace(config, **overrides)
    start = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {message}", file=sys.stderr)

    results = run_benchmarks(
        config,
        engine_specs=args.engine or _engines.DEFAULT_ENGINES,
        only=args.only.split(","),
        log=log,
    )
    print(format_report(results))
    path = (
        args.json or pathlib.Path(__file__).parent / "results" / f"{config.mode}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    print(f"results written to {path}")
    return results


if __name__ == "__main__":
    main()
