"""The guards section: step-time cost of skip_on_spike and monitor_layers.

gradtx only: AdamW on the transformer-like tree, plain, wrapped in
``skip_on_spike`` (loss and gradient norm watched; no step is skipped, so
the full step is timed), wrapped in ``monitor_layers`` (per-leaf norms of
gradient, update and parameter, and their ratios, kept in the state; and
grouped per block by path), and in both. Every row is timed round-robin with
the others in one process (jitted update + apply, params and state donated,
the loss passed as an argument); ratios are to the plain row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from . import _cases, _jax_step, _timing
from ._recipes import BETAS, EPS, LEARNING_RATE, WEIGHT_DECAY


def _per_block(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:2]) if parts[0] == "blocks" else parts[0]


def _options(gradtx: Any) -> list[tuple[str, Callable[[], Any]]]:
    adamw = lambda: gradtx.adamw(
        LEARNING_RATE, b1=BETAS[0], b2=BETAS[1], eps=EPS, weight_decay=WEIGHT_DECAY
    )
    return [
        ("adamw", adamw),
        ("skip_on_spike(adamw)", lambda: gradtx.skip_on_spike(adamw())),
        ("monitor_layers(adamw), per leaf", lambda: gradtx.monitor_layers(adamw())),
        (
            "monitor_layers(adamw), per block",
            lambda: gradtx.monitor_layers(adamw(), groups=_per_block),
        ),
        (
            "skip_on_spike(monitor_layers(adamw))",
            lambda: gradtx.skip_on_spike(gradtx.monitor_layers(adamw())),
        ),
    ]


def _step(tx: Any, apply_updates: Callable[[Any, Any], Any]):
    def step(params, state, batch):
        grads, loss = batch
        updates, state = tx.update(grads, state, params, value=loss)
        return apply_updates(params, updates), state

    return step


def run_guards(
    tree: Any, rounds: int, target_batch_s: float, log: Callable[[str], None]
) -> dict[str, Any]:
    """Times every option on ``tree`` (of shapes); JSON-ready rows."""
    import gradtx

    n_leaves, n_params = _cases.count(tree)
    params_np = _cases.make_arrays(tree, seed=0)
    grads = jax.tree.map(jnp.asarray, _cases.make_arrays(tree, seed=1, scale=1e-3))
    batch = (grads, jnp.float32(2.5))
    rows: list[dict[str, Any]] = []
    participants = []
    for label, build in _options(gradtx):
        tx = build()
        row: dict[str, Any] = {"option": label}
        rows.append(row)
        params = _jax_step.fresh_copy(params_np)
        state = _jax_step.fresh_copy(tx.init(params))
        row["state_bytes_per_param"] = _jax_step.tree_bytes(state) / n_params
        compiled, phases = _jax_step.compile_step(
            _step(tx, gradtx.apply_updates), params, state, batch
        )
        row["compile_s"] = sum(phases.values())
        participants.append(
            _jax_step.JaxParticipant(label, compiled, params, state, batch)
        )
        row["status"] = "ok"
        log(f"guards: built {label}")
    _timing.time_rows(rows, participants, rounds, target_batch_s)
    return {"n_leaves": n_leaves, "n_params": n_params, "rows": rows}


def format_guards(section: dict[str, Any]) -> str:
    """The section as a text table."""
    lines = [
        f"== guards: adamw on a {section['n_leaves']}-leaf, "
        f"{section['n_params']:,}-parameter tree; ratio to plain adamw ==",
        f"{'option':40} {'median ms':>10} {'ratio':>6} {'min–max':>12} "
        f"{'compile s':>9}",
    ]
    for row in section["rows"]:
        if row["status"] != "ok":
            lines.append(f"{row['option']:40} {row['status']}")
            continue
        ratio = row["ratio"]
        lines.append(
            f"{row['option']:40} {row['time']['median'] * 1e3:10.2f} "
            f"{ratio['median']:6.2f} {ratio['min']:5.2f}–{ratio['max']:<5.2f} "
            f"{row['compile_s']:9.2f}"
        )
    return "\n".join(lines)
