"""Probe: the native one-pass Adam(W) kernel on one large float32 leaf.

Run from the repository root (a script, not a test)::

    python -m benchmarks.native_probe [--n 16777216] [--rounds 15]

Four columns, each stepping its own copy of one leaf of ``n`` float32
parameters (2^24 by default, ~16.8M) with fixed gradients, jitted and donated:

- ``optax``: ``optax.adamw`` update + ``optax.apply_updates`` (the reference);
- ``jnp``: ``gradtx.adamw`` update + ``gradtx.apply_updates`` (XLA's loops);
- ``native``: ``gradtx.fused_step(gradtx.adamw(...))``, whose large leaves go
  through :func:`gradtx.engines.native.adam_leaf_step` (one pass, in place);
- ``torch-fused``: ``torch.optim.AdamW(fused=True)``, when torch imports.

Columns are timed round-robin in one process (``A B C D A B C D ...``); the
ratio to ``optax`` is taken round by round, then its median reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import jax
import jax.numpy as jnp

import gradtx
from gradtx.engines import native as _native

warnings.filterwarnings("ignore", message="Some donated buffers were not usable")

LR, B1, B2, EPS, WD = 1e-3, 0.9, 0.999, 1e-8, 1e-4


class JaxColumn:
    """A jitted step ``(carry, g) -> carry`` with the carry donated."""

    def __init__(self, name, step, carry, g):
        self.name = name
        self.g = g
        self.carry = carry
        self._step = jax.jit(step, donate_argnums=0)
        self.run(2)

    def run(self, steps):
        carry = self.carry
        for _ in range(steps):
            carry = self._step(carry, self.g)
        self.carry = jax.block_until_ready(carry)


def gradtx_column(name, n, key, g, fused):
    tx = gradtx.adamw(LR, B1, B2, EPS, weight_decay=WD)
    if fused:
        step_fn = gradtx.fused_step(tx, min_size=1)
        if not step_fn.native:
            raise SystemExit("fused_step did not recognise adamw")
    else:

        def step_fn(p, state, g):
            updates, state = tx.update(g, state, p)
            return gradtx.apply_updates(p, updates), state

    def step(carry, g):
        return step_fn(*carry, g)

    p = jax.random.normal(key, (n,), jnp.float32)
    return JaxColumn(name, step, (p, tx.init(p)), g)


def optax_column(n, key, g):
    import optax

    tx = optax.adamw(LR, B1, B2, EPS, weight_decay=WD)

    def step(carry, g):
        p, state = carry
        updates, state = tx.update(g, state, p)
        return optax.apply_updates(p, updates), state

    p = jax.random.normal(key, (n,), jnp.float32)
    return JaxColumn("optax", step, (p, tx.init(p)), g)


class TorchColumn:
    """``torch.optim.AdamW(fused=True)`` stepping one leaf on fixed grads."""

    def __init__(self, n):
        import torch

        self.name = "torch-fused"
        self.p = torch.nn.Parameter(torch.randn(n, dtype=torch.float32))
        self.p.grad = 1e-3 * torch.randn(n, dtype=torch.float32)
        self.opt = torch.optim.AdamW(
            [self.p], lr=LR, betas=(B1, B2), eps=EPS, weight_decay=WD, fused=True
        )
        self.run(2)

    def run(self, steps):
        for _ in range(steps):
            self.opt.step()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1 << 24)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5, help="steps per sample")
    args = parser.parse_args()
    if not _native.available():
        raise SystemExit(f"native kernel unavailable: {_native.why_unavailable()}")

    key, kg = jax.random.split(jax.random.key(0))
    g = 1e-3 * jax.random.normal(kg, (args.n,), jnp.float32)
    columns = [
        optax_column(args.n, key, g),
        gradtx_column("jnp", args.n, key, g, fused=False),
        gradtx_column("native", args.n, key, g, fused=True),
    ]
    try:
        columns.append(TorchColumn(args.n))
        import torch

        torch_note = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except Exception as error:  # torch is optional
        torch_note = f"torch column skipped: {type(error).__name__}: {error}"

    times = {c.name: [] for c in columns}
    for _ in range(args.rounds):
        for column in columns:
            start = time.perf_counter()
            column.run(args.steps)
            times[column.name].append((time.perf_counter() - start) / args.steps)

    print(
        f"n={args.n} float32, {args.rounds} rounds x {args.steps} steps, "
        f"jax {jax.__version__}, {jax.devices()[0].platform}; {torch_note}"
    )
    bytes_min = 28 * args.n
    for name, samples in times.items():
        ratio = statistics.median(
            s / o for s, o in zip(samples, times["optax"], strict=True)
        )
        median = statistics.median(samples)
        print(
            f"  {name:12s} median {median * 1e3:7.2f} ms/step  ratio to optax "
            f"{ratio:5.3f}  ({bytes_min / median / 1e9:5.1f} GB/s at 28 B/param)"
        )


if __name__ == "__main__":
    main()
