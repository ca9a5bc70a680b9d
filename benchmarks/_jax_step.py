"""A JAX training step as the benchmark runs it: update + apply, donated.

The step is ``(params, state, grads) -> (params, state)`` with params and
state donated (without donation every step pays page faults on fresh output
buffers) and the same gradients fed every step. It is compiled ahead of time
so that tracing, lowering and compiling are timed separately, and XLA's
memory analysis of the compiled step is read from the same object.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._engines import Engine

# Scalar state (Adam's step count) often cannot reuse a donated buffer; that is
# expected and not worth a warning per compile.
warnings.filterwarnings("ignore", message="Some donated buffers were not usable")


def make_step(engine: Engine, tx: Any):
    """The function that is jitted: one optimizer update applied to params."""
    if engine.fuse is not None:
        return engine.fuse(tx)

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return engine.apply_updates(params, updates), state

    return step


def compile_step(step, params, state, grads) -> tuple[Any, dict[str, float]]:
    """AOT-compiles ``step`` with donation; returns it and the phase times.

    The arguments may be arrays or :class:`jax.ShapeDtypeStruct` trees.
    """
    jitted = jax.jit(step, donate_argnums=(0, 1))
    start = time.perf_counter()
    traced = jitted.trace(params, state, grads)
    traced_at = time.perf_counter()
    lowered = traced.lower()
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    compiled_at = time.perf_counter()
    return compiled, {
        "trace_s": traced_at - start,
        "lower_s": lowered_at - traced_at,
        "compile_s": compiled_at - lowered_at,
    }


def memory_stats(compiled: Any) -> dict[str, int] | None:
    """XLA's memory analysis of a compiled step, as it reports it.

    ``peak_bytes`` is arguments + outputs + temporaries - aliased (donated
    inputs whose buffers the outputs reuse): the live bytes while the step
    runs, by XLA's own accounting.
    """
    try:
        stats = compiled.memory_analysis()
    except Exception:  # not every backend implements it
        return None
    if stats is None:
        return None
    fields = {
        "argument_bytes": "argument_size_in_bytes",
        "output_bytes": "output_size_in_bytes",
        "alias_bytes": "alias_size_in_bytes",
        "temp_bytes": "temp_size_in_bytes",
        "generated_code_bytes": "generated_code_size_in_bytes",
    }
    out = {key: int(getattr(stats, name, 0) or 0) for key, name in fields.items()}
    out["peak_bytes"] = (
        out["argument_bytes"]
        + out["output_bytes"]
        + out["temp_bytes"]
        - out["alias_bytes"]
    )
    return out


def tree_bytes(tree: Any) -> int:
    """Total bytes of the array leaves of a tree (Python scalars count 0).

    A typed PRNG key counts the bytes of its key data.
    """

    def nbytes(leaf: Any) -> int:
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        return int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize

    return sum(
        nbytes(leaf)
        for leaf in jax.tree.leaves(tree)
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype")
    )


def fresh_copy(tree: Any) -> Any:
    """Device arrays owned by the caller alone, safe to donate."""
    return jax.tree.map(lambda leaf: jnp.array(leaf, copy=True), tree)


class JaxParticipant:
    """A compiled step that owns its params and state and steps them in place."""

    def __init__(self, name: str, compiled: Any, params: Any, state: Any, grads: Any):
        self.name = name
        self._compiled = compiled
        self._params = params
        self._state = state
        self._grads = grads

    def run(self, n: int) -> None:
        params, state = self._params, self._state
        for _ in range(n):
            params, state = self._compiled(params, state, self._grads)
        jax.block_until_ready((params, state))
        self._params, self._state = params, state


def build(
    name: str, engine: Engine, recipe: Any, params_np: Any, grads: Any
) -> tuple[JaxParticipant, dict[str, Any]]:
    """A ready-to-time participant and what was measured while building it.

    The second value holds the phase times of its compilation, XLA's memory
    analysis and the bytes of optimizer state.
    """
    if engine.prepare is not None:
        params_np, grads = engine.prepare(params_np), engine.prepare(grads)
    tx = engine.make(recipe)
    params = fresh_copy(params_np)
    state = fresh_copy(tx.init(params))
    compiled, phases = compile_step(make_step(engine, tx), params, state, grads)
    info = {
        "compile": phases,
        "memory": memory_stats(compiled),
        "state_bytes": tree_bytes(state),
    }
    return JaxParticipant(name, compiled, params, state, grads), info
