"""The precision section: state bytes per parameter and step time per option.

gradtx only (Optax has no counterpart for most rows): AdamW on one leaf, with
float32 params and moments, bfloat16 moments, 8-bit block-wise moments, and
bfloat16 params stepped plainly, with Kahan-compensated updates and with
stochastic rounding. Every row is timed round-robin with the others in one
process (jitted update + apply, params and state donated); ratios are to the
float32 row. An option gradtx does not have is reported as skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from . import _jax_step, _timing
from ._recipes import BETAS, EPS, LEARNING_RATE, WEIGHT_DECAY

_ADAMW = dict(learning_rate=LEARNING_RATE, b1=BETAS[0], b2=BETAS[1], eps=EPS)


def _options(gradtx: Any) -> list[tuple[str, Any, Callable[[], Any]]]:
    """``(label, params dtype, build)``; ``build`` raises AttributeError if absent."""
    adamw = lambda **kw: gradtx.adamw(**_ADAMW, weight_decay=WEIGHT_DECAY, **kw)
    bf16 = dict(mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16)
    return [
        ("adamw, float32 state", jnp.float32, adamw),
        ("adamw, bfloat16 moments", jnp.float32, lambda: adamw(**bf16)),
        (
            "adamw_8bit (block-wise)",
            jnp.float32,
            lambda: gradtx.adamw_8bit(**_ADAMW, weight_decay=WEIGHT_DECAY),
        ),
        ("adamw, bfloat16 params", jnp.bfloat16, adamw),
        (
            "kahan_summation(adamw), bf16 params",
            jnp.bfloat16,
            lambda: gradtx.kahan_summation(adamw()),
        ),
        (
            "stochastic_rounding(adamw), bf16 params",
            jnp.bfloat16,
            lambda: gradtx.stochastic_rounding(adamw(), 0),
        ),
    ]


def _step(tx: Any, apply_updates: Callable[[Any, Any], Any]):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply_updates(params, updates), state

    return step


def run_precision(
    n_params: int, rounds: int, target_batch_s: float, log: Callable[[str], None]
) -> dict[str, Any]:
    """Times every option on one leaf of ``n_params``; JSON-ready rows."""
    import gradtx

    key = jax.random.key(0)
    values = jax.random.normal(key, (n_params,), jnp.float32)
    grads32 = values * 1e-3
    rows: list[dict[str, Any]] = []
    participants = []
    for label, dtype, build in _options(gradtx):
        row: dict[str, Any] = {"option": label, "params": jnp.dtype(dtype).name}
        rows.append(row)
        try:
            tx = build()
        except AttributeError as error:
            row["status"] = f"skipped: {error}"
            continue
        params = _jax_step.fresh_copy(values.astype(dtype))
        grads = grads32.astype(dtype)
        state = _jax_step.fresh_copy(tx.init(params))
        row["state_bytes_per_param"] = _jax_step.tree_bytes(state) / n_params
        step = _step(tx, gradtx.apply_updates)
        compiled, _ = _jax_step.compile_step(step, params, state, grads)
        participants.append(
            _jax_step.JaxParticipant(label, compiled, params, state, grads)
        )
        row["status"] = "ok"
        log(f"precision: built {label}")
    _timing.time_rows(rows, participants, rounds, target_batch_s)
    return {"n_params": n_params, "rows": rows}


def format_precision(section: dict[str, Any]) -> str:
    """The section as a text table."""
    lines = [
        f"== precision: adamw on one {section['n_params']:,}-parameter leaf, "
        "gradtx options; ratio to the float32 row ==",
        f"{'option':42} {'params':9} {'state B/p':>9} {'median ms':>10} {'ratio':>6}",
    ]
    for row in section["rows"]:
        if row["status"] != "ok":
            lines.append(f"{row['option']:42} {row['params']:9} {row['status']}")
            continue
        lines.append(
            f"{row['option']:42} {row['params']:9} "
            f"{row['state_bytes_per_param']:9.2f} "
            f"{row['time']['median'] * 1e3:10.2f} {row['ratio']['median']:6.2f}"
        )
    return "\n".join(lines)
