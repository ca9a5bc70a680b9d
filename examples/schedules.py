"""A gallery of every learning-rate schedule gradtx exports.

A schedule is a function from the step count to a value, ``step -> lr``; pass
one wherever gradtx takes a learning rate (``gtx.adam(schedule)``). This script
draws each exported schedule over ``--steps`` steps in a small panel of its
own, titled with the call that built it, and writes ``schedules.png`` into
``--out``. It finds the schedules in ``gradtx.__all__`` (the functions of
``gradtx.schedules`` and of the extra schedules module) and stops with an error
if one has no panel here, so the gallery stays complete.

Run it with::

    pip install "gradtx[examples]"
    python examples/schedules.py
    python examples/schedules.py --steps 1000 --out plots/
"""

import argparse
import inspect
import tempfile
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import gradtx as gtx

SCHEDULE_PACKAGE = "gradtx.schedules."


def exported_schedules():
    """The names in ``gradtx.__all__`` that are schedule factories."""
    return sorted(
        name
        for name in gtx.__all__
        if inspect.isfunction(getattr(gtx, name))
        and getattr(gtx, name).__module__.startswith(SCHEDULE_PACKAGE)
    )


class Call:
    """A factory call that knows its own source text: ``gtx.name(arg=...)``."""

    def __init__(self, name, *args, **kwargs):
        self.name, self.args, self.kwargs = name, args, kwargs

    def build(self):
        args = [_build(a) for a in self.args]
        kwargs = {k: _build(v) for k, v in self.kwargs.items()}
        return getattr(gtx, self.name)(*args, **kwargs)

    def __repr__(self):
        items = [repr(a) for a in self.args]
        items += [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"gtx.{self.name}({', '.join(items)})"


class Source:
    """An argument shown as ``text`` (shorter than its repr), passed as ``value``."""

    def __init__(self, text, value):
        self.text, self.value = text, value

    def __repr__(self):
        return self.text


def _build(value):
    """Builds the ``Call``s in ``value``, also inside lists."""
    if isinstance(value, Source):
        return value.value
    if isinstance(value, Call):
        return value.build()
    if isinstance(value, list):
        return [_build(v) for v in value]
    return value


def gallery(steps):
    """One ``Call`` per exported schedule, scaled to ``steps`` steps."""
    n, q = steps, steps // 4
    # one warm restart: a short warmup, then a cosine decay
    cycle = dict(init_value=0.0, peak_value=1.0, warmup_steps=q // 4, decay_steps=q)
    cycle_text = ", ".join(f"{k}={v!r}" for k, v in cycle.items())
    return [
        Call("constant_schedule", 0.5),
        Call("linear_schedule", 1.0, 0.1, transition_steps=n // 2, transition_begin=q),
        Call("polynomial_schedule", 1.0, 0.0, power=2, transition_steps=n),
        Call("exponential_decay", 1.0, transition_steps=q, decay_rate=0.5),
        Call(
            "exponential_decay",
            1.0,
            transition_steps=q,
            decay_rate=0.5,
            staircase=True,
        ),
        Call("cosine_decay_schedule", 1.0, decay_steps=n, alpha=0.1),
        Call("piecewise_constant_schedule", 1.0, {q: 0.5, 2 * q: 0.5, 3 * q: 0.1}),
        Call(
            "piecewise_interpolate_schedule",
            "cosine",
            1.0,
            {q: 0.5, 2 * q: 0.5, 3 * q: 0.1},
        ),
        Call(
            "join_schedules",
            [
                Call("linear_schedule", 0.0, 1.0, transition_steps=q),
                Call("cosine_decay_schedule", 1.0, decay_steps=n - q),
            ],
            boundaries=[q],
        ),
        Call("warmup_constant_schedule", 0.0, 1.0, warmup_steps=q),
        Call("warmup_cosine_decay_schedule", 0.0, 1.0, warmup_steps=q, decay_steps=n),
        Call(
            "warmup_exponential_decay_schedule",
            0.0,
            1.0,
            warmup_steps=q,
            transition_steps=q,
            decay_rate=0.3,
        ),
        Call("sgdr_schedule", Source(f"[dict({cycle_text})] * 4", [cycle] * 4)),
        Call("linear_onecycle_schedule", n, 1.0),
        Call("cosine_onecycle_schedule", n, 1.0),
        Call(
            "precond_update_prob_schedule",
            min_prob=0.1,
            decay=round(8 / n, 4),
            flat_start=q,
        ),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the PNG (default: a temp)"
    )
    args = parser.parse_args()
    if args.steps < 16:
        parser.error("--steps must be at least 16")
    out = args.out or Path(tempfile.mkdtemp(prefix="schedules_"))
    out.mkdir(parents=True, exist_ok=True)

    calls = gallery(args.steps)
    missing = set(exported_schedules()) - {call.name for call in calls}
    if missing:
        raise SystemExit(f"schedules without a panel: {sorted(missing)}")

    cols = 4
    rows = -(-len(calls) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), dpi=80)
    count = jnp.arange(args.steps + 1)
    for ax, call in zip(axes.flat, calls, strict=False):
        values = jax.vmap(call.build())(count)
        ax.plot(count, values, lw=1.5)
        ax.set_title("\n".join(textwrap.wrap(repr(call), 48)), fontsize=7.5)
        ax.set_ylim(-0.05, 1.1)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
        print(f"panel {call.name}: {call!r}  final {float(values[-1]):.4g}")
    for ax in axes.flat[len(calls) :]:
        ax.axis("off")
    fig.suptitle(f"gradtx schedules over {args.steps} steps (x: step, y: value)")
    fig.tight_layout()
    path = out / "schedules.png"
    fig.savefig(path)
    plt.close(fig)
    print(f"{len(calls)} panels, {len(exported_schedules())} schedules exported")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
