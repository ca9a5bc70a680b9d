"""Matrix and preconditioned optimizers against their reference implementations.

Usage (from the repository root, with the ``references`` extra installed)::

    python -m benchmarks.preconditioned --quick      # about 3 minutes on 2 cores
    python -m benchmarks.preconditioned              # d = 256, more rounds
    python -m benchmarks.preconditioned --json /tmp/pre.json --only muon,soap

The tree is transformer-shaped: ``layers`` blocks of six matrices (q, k, v, o
of ``d x d``, an MLP of ``d x 4d`` and ``4d x d``) and two gains of ``(d,)``
each: 24 matrices of three shapes at 4 layers. Every optimizer runs the step a
training loop runs (update + apply, params and state donated, the same
gradients every step), against the same algorithm in its JAX reference
(``optax.contrib.muon``, precondition-opt's Shampoo, psgd-jax's Kron) or, where
JAX has none, in PyTorch (pytorch-optimizer's SOAP and NorMuon, eager). The
columns of one algorithm are timed in turns, round by round, in one process,
and the ratio gradtx / reference is taken per round, then summarised.

Preconditioned methods are timed in two regimes: refreshing the
preconditioner every step, and every ``period`` steps (the amortised cost of a
real run); the refresh's own cost is ``(t_every - t_period) · period /
(period - 1)``. Compile time is the AOT trace + lower + compile of one step;
state bytes are the optimizer state's array bytes per parameter (torch: the
tensors in ``optimizer.state`` after a step).
"""

import argparse
import contextlib
import json
import os
import pathlib
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _jax_step
from ._timing import calibrate, ratios_by_round, round_robin, summarize

LR = 1e-3


def transformer_tree(d: int, layers: int, seed: int = 0) -> tuple[dict, dict]:
    """Float32 ``(params, grads)`` of a transformer-shaped tree (NumPy)."""
    rng = np.random.default_rng(seed)
    shapes = {
        "q": (d, d),
        "k": (d, d),
        "v": (d, d),
        "o": (d, d),
        "up": (d, 4 * d),
        "down": (4 * d, d),
        "ln1": (d,),
        "ln2": (d,),
    }
    params, grads = {}, {}
    for i in range(layers):
        for name, shape in shapes.items():
            key = f"layer{i}_{name}"
            params[key] = (rng.standard_normal(shape) / np.sqrt(d)).astype(np.float32)
            grads[key] = 1e-3 * rng.standard_normal(shape).astype(np.float32)
    return params, grads


# --------------------------------------------------------------------------
# The references (test-only packages, with the shims they need on jax 0.10).


@contextlib.contextmanager
def _jax_tree_aliases():
    """``jax.tree_map`` & co. for precondition-opt (removed from jax 0.6)."""
    names = {
        "tree_map": jax.tree_util.tree_map,
        "tree_leaves": jax.tree_util.tree_leaves,
        "tree_flatten": jax.tree_util.tree_flatten,
        "tree_unflatten": jax.tree_util.tree_unflatten,
        "tree_structure": jax.tree_util.tree_structure,
    }
    added = [name for name in names if not hasattr(jax, name)]
    for name in added:
        setattr(jax, name, names[name])
    try:
        yield
    finally:
        for name in added:
            delattr(jax, name)


def _psgd_kron_module():
    import optax._src
    import optax.transforms._clipping as clipping

    sys.modules.setdefault("optax._src.clipping", clipping)
    optax._src.clipping = clipping
    from psgd_jax import kron

    return kron


class Column(NamedTuple):
    """One participant to build: a JAX transformation or a torch optimizer."""

    name: str
    library: str
    jax_tx: Callable[[], Any] | None = None  # () -> GradientTransformation
    apply: Callable[[Any, Any], Any] | None = None
    torch_opt: Callable[[list], Any] | None = None  # params -> torch optimizer
    context: Callable[[], Any] = contextlib.nullcontext


def _gradtx_column(name: str, make: Callable[[], Any]) -> Column:
    import gradtx

    return Column(name, "gradtx", jax_tx=make, apply=gradtx.apply_updates)


def _optax_apply(params, updates):
    import optax

    return optax.apply_updates(params, updates)


def algorithms(period: int) -> dict[str, list[list[Column]]]:
    """Per algorithm, the regimes (lists of columns timed together)."""
    import gradtx

    def muon():
        import optax

        return [
            [
                _gradtx_column("muon", lambda: gradtx.muon(LR)),
                Column(
                    "muon",
                    "optax.contrib",
                    jax_tx=lambda: optax.contrib.muon(LR),
                    apply=_optax_apply,
                ),
            ]
        ]

    def normuon():
        from pytorch_optimizer import NorMuon

        def torch_normuon(params):
            matrices = [p for p in params if p.ndim >= 2]
            others = [p for p in params if p.ndim < 2]
            return NorMuon(
                [
                    dict(params=matrices, use_muon=True),
                    dict(params=others, use_muon=False),
                ],
                lr=LR,
            )

        return [
            [
                _gradtx_column("normuon", lambda: gradtx.normuon(LR)),
                Column("normuon", "pytorch-optimizer", torch_opt=torch_normuon),
            ]
        ]

    def soap():
        from pytorch_optimizer import SOAP

        def regime(every: int) -> list[Column]:
            name = f"soap/{every}"
            return [
                _gradtx_column(
                    name, lambda: gradtx.soap(LR, precondition_frequency=every)
                ),
                Column(
                    name,
                    "pytorch-optimizer",
                    torch_opt=lambda p: SOAP(p, lr=LR, precondition_frequency=every),
                ),
            ]

        return [regime(1), regime(period)]

    def shampoo():
        from precondition.distributed_shampoo import distributed_shampoo

        def regime(every: int) -> list[Column]:
            name = f"shampoo/{every}"
            kwargs = dict(
                block_size=256,
                start_preconditioning_step=1,
                preconditioning_compute_steps=every,
            )
            return [
                _gradtx_column(name, lambda: gradtx.shampoo(LR, **kwargs)),
                Column(
                    name,
                    "precondition-opt",
                    jax_tx=lambda: distributed_shampoo(LR, **kwargs),
                    apply=_optax_apply,
                    context=_jax_tree_aliases,
                ),
            ]

        return [regime(1), regime(period)]

    def psgd_kron():
        kron = _psgd_kron_module()

        def regime(every: int) -> list[Column]:
            name = f"psgd_kron/{every}"
            prob = 1.0 / every
            return [
                _gradtx_column(
                    name,
                    lambda: gradtx.psgd_kron(
                        LR, preconditioner_update_probability=prob
                    ),
                ),
                Column(
                    name,
                    "psgd-jax",
                    jax_tx=lambda: kron.kron(
                        LR, preconditioner_update_probability=prob
                    ),
                    apply=_optax_apply,
                ),
            ]

        return [regime(1), regime(period)]

    return {
        "muon": muon,
        "normuon": normuon,
        "soap": soap,
        "shampoo": shampoo,
        "psgd_kron": psgd_kron,
    }


# --------------------------------------------------------------------------
# Building and timing.


class _TorchColumn:
    def __init__(self, name: str, optimizer: Any):
        self.name = name
        self.optimizer = optimizer

    def run(self, n: int) -> None:
        for _ in range(n):
            self.optimizer.step()

    def state_bytes(self) -> int:
        """Bytes of the tensors in the state, inside lists (SOAP's factors) too."""

        def nbytes(value: Any) -> int:
            if isinstance(value, (list, tuple)):
                return sum(nbytes(v) for v in value)
            if hasattr(value, "element_size"):
                return value.numel() * value.element_size()
            return 0

        return sum(
            nbytes(value)
            for per_param in self.optimizer.state.values()
            for value in per_param.values()
        )


def _build(column: Column, params_np: dict, grads_np: dict) -> tuple[Any, dict]:
    label = f"{column.name} [{column.library}]"
    if column.torch_opt is not None:
        import torch

        params = []
        for value, grad in zip(
            jax.tree.leaves(params_np), jax.tree.leaves(grads_np), strict=True
        ):
            p = torch.nn.Parameter(torch.from_numpy(np.array(value, copy=True)))
            p.grad = torch.from_numpy(np.array(grad, copy=True))
            params.append(p)
        participant = _TorchColumn(label, column.torch_opt(params))
        participant.run(1)  # torch allocates its state lazily
        return participant, {"state_bytes": participant.state_bytes()}
    with column.context():
        tx = column.jax_tx()
        params = _jax_step.fresh_copy(params_np)
        grads = jax.tree.map(jnp.asarray, grads_np)
        state = _jax_step.fresh_copy(tx.init(params))

        def step(params, state, grads):
            updates, state = tx.update(grads, state, params)
            return column.apply(params, updates), state

        compiled, phases = _jax_step.compile_step(step, params, state, grads)
    info = {"state_bytes": _jax_step.tree_bytes(state), "compile": phases}
    return _jax_step.JaxParticipant(label, compiled, params, state, grads), info


def run_regime(
    columns: list[Column], params_np: dict, grads_np: dict, rounds: int, target_s: float
) -> list[dict]:
    """Builds, calibrates and times ``columns`` together; one entry each.

    A regime named ``…/k`` refreshes every ``k`` steps: its batches are whole
    multiples of ``k`` steps, so that each holds the same number of refreshes
    (else a batch of 9 steps holds one refresh or none, by chance)."""
    every = int(columns[0].name.rsplit("/", 1)[1]) if "/" in columns[0].name else 1
    n_params = sum(x.size for x in jax.tree.leaves(params_np))
    built, entries = [], []
    for column in columns:
        entry = {"optimizer": column.name, "library": column.library, "status": "ok"}
        try:
            participant, info = _build(column, params_np, grads_np)
            iters = calibrate(participant, target_s, max_step_s=20.0)
            iters = every * -(-iters // every)
        except Exception as error:  # reported in the table, never fatal
            entry.update(status="failed", note=f"{type(error).__name__}: {error}")
            entries.append(entry)
            continue
        entry["state_bytes_per_param"] = info["state_bytes"] / n_params
        if "compile" in info:
            entry["compile_s"] = sum(info["compile"].values())
        built.append((participant, iters, entry))
        entries.append(entry)
    if not built:
        return entries
    samples, failed, _ = round_robin(
        [p for p, _, _ in built], rounds, {p.name: n for p, n, _ in built}
    )
    reference = built[-1][0].name if len(built) > 1 else None
    for participant, _, entry in built:
        entry["time_s"] = summarize(samples[participant.name])
        if participant.name in failed:
            entry.update(status="failed", note=failed[participant.name])
        if reference and participant is built[0][0]:
            entry["ratio_to_reference"] = ratios_by_round(
                samples[participant.name], samples[reference]
            )
    first, last = built[0][2], built[-1][2]
    if len(built) == 2 and "compile_s" in first and "compile_s" in last:
        first["compile_ratio"] = first["compile_s"] / last["compile_s"]
    return entries


def refresh_costs(entries: list[dict], period: int) -> dict[str, float]:
    """Per library, the cost of one refresh: (t_every - t_period)·p/(p - 1)."""
    by = {}
    for e in entries:
        if e.get("time_s") and "/" in e["optimizer"]:
            by[(e["optimizer"].split("/")[1], e["library"])] = e["time_s"]["median"]
    out = {}
    for (every, library), t in by.items():
        if every == "1" and (str(period), library) in by:
            t_period = by[(str(period), library)]
            out[library] = (t - t_period) * period / (period - 1)
    return out


def state_bytes_per_param(shape: tuple = (256, 256)) -> dict[str, float]:
    """Optimizer-state bytes per parameter of one float32 leaf, by ``init``."""
    import gradtx

    params = {"w": jax.ShapeDtypeStruct(shape, jnp.float32)}
    optimizers = {
        "adamw": gradtx.adamw(LR),
        "muon": gradtx.muon(LR),
        "normuon": gradtx.normuon(LR),
        "soap": gradtx.soap(LR),
        "shampoo (block 128, sgd graft)": gradtx.shampoo(LR, block_size=128),
        "shampoo (block 128, rmsprop graft)": gradtx.shampoo(
            LR, block_size=128, graft_type="rmsprop"
        ),
        "psgd_kron": gradtx.psgd_kron(LR),
        "laprop": gradtx.laprop(LR),
        "mars_adamw": gradtx.mars_adamw(LR),
        "adam_mini": gradtx.adam_mini(LR),
        "cautious(adamw)": gradtx.cautious(gradtx.adamw(LR)),
    }
    size = float(np.prod(shape))
    return {
        name: _jax_step.tree_bytes(jax.eval_shape(tx.init, params)) / size
        for name, tx in optimizers.items()
    }


def _fmt(summary: dict | None, scale: float = 1.0, digits: int = 2) -> str:
    if not summary:
        return "-"
    m, lo, hi = (summary[k] * scale for k in ("median", "min", "max"))
    return f"{m:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def format_table(results: dict) -> str:
    lines = [
        "| optimizer | library | step ms | gradtx / reference (per round) | "
        "compile s | compile ratio | state bytes / param |",
        "|---|---|---|---|---|---|---|",
    ]
    for algo in results["algorithms"]:
        for e in algo["entries"]:
            if e["status"] != "ok":
                lines.append(
                    f"| {e['optimizer']} | {e['library']} | {e['status']}: "
                    f"{e.get('note', '')[:80]} | | | | |"
                )
                continue
            number = lambda key, e=e: "-" if key not in e else f"{e[key]:.2f}"
            lines.append(
                f"| {e['optimizer']} | {e['library']} | {_fmt(e.get('time_s'), 1e3)} "
                f"| {_fmt(e.get('ratio_to_reference'))} | {number('compile_s')} "
                f"| {number('compile_ratio')} | {number('state_bytes_per_param')} |"
            )
        for library, cost in algo.get("refresh_s", {}).items():
            lines.append(
                f"| {algo['name']} refresh | {library} | {cost * 1e3:.2f} | | | | |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="d = 128, 3 rounds")
    parser.add_argument("--only", help="comma-separated algorithms")
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--rounds", type=int)
    args = parser.parse_args(argv)
    d, layers = (128, 4) if args.quick else (256, 4)
    rounds = args.rounds or (3 if args.quick else 7)
    target_s = 0.1 if args.quick else 0.3
    period = 10
    params_np, grads_np = transformer_tree(d, layers)
    n_params = sum(x.size for x in jax.tree.leaves(params_np))
    results = {
        "config": {
            "d": d,
            "layers": layers,
            "n_params": n_params,
            "n_matrices": sum(x.ndim == 2 for x in jax.tree.leaves(params_np)),
            "rounds": rounds,
            "period": period,
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "device": str(jax.devices()[0].device_kind),
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
        },
        "algorithms": [],
    }
    todo = algorithms(period)
    chosen = args.only.split(",") if args.only else list(todo)
    for name in chosen:
        start = time.perf_counter()
        entries = []
        try:
            regimes = todo[name]()
        except Exception as error:  # a reference that is not installed
            regimes = []
            entries.append(
                {
                    "optimizer": name,
                    "library": "-",
                    "status": "skipped",
                    "note": f"{type(error).__name__}: {error}",
                }
            )
        for columns in regimes:
            entries += run_regime(columns, params_np, grads_np, rounds, target_s)
        algo = {"name": name, "entries": entries}
        if len(regimes) > 1:
            algo["refresh_s"] = refresh_costs(entries, period)
        results["algorithms"].append(algo)
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    results["state_bytes_per_param_256x256"] = state_bytes_per_param()
    cfg = results["config"]
    print(
        f"{cfg['n_params']:,} params, {cfg['n_matrices']} matrices (d={d}, "
        f"{layers} layers), {cfg['backend']} {cfg['device']}, {rounds} rounds"
    )
    print(format_table(results))
    print("\nstate bytes per parameter, one (256, 256) float32 matrix:")
    for name, value in results["state_bytes_per_param_256x256"].items():
        print(f"  {name:36s} {value:6.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
