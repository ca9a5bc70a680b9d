"""A tour of the classic optimizers on two 2-D test functions.

Nine update rules, each written with gradtx, start from the same point on

* an ill-conditioned quadratic, f(x, y) = (x² + κ y²) / 2 with κ = 50: the
  gradient points mostly along the steep y axis, so plain gradient descent
  zig-zags across the valley and crawls along it;
* the Rosenbrock function, f(x, y) = (1 - x)² + 100 (y - x²)², whose minimum
  (1, 1) lies at the end of a long, curved, flat-bottomed valley.

The rules:

* GD: ``sgd(lr)``, θ ← θ - η g.
* Momentum in EMA form, with dampening: ``chain(ema(β, debias=False),
  scale(-η))``, v ← β v + (1 - β) g, θ ← θ - η v. The (1 - β) keeps the
  steady-state step at η g: it smooths the direction, it does not lengthen it.
* Heavy ball: ``sgd(lr, momentum=β)``, v ← β v + g, θ ← θ - η v, the same rule
  with step η / (1 - β) once v settles.
* Nesterov: ``sgd(lr, momentum=β, nesterov=True)``, the heavy ball with a
  look-ahead gradient.
* Adagrad, RMSProp, Adam and AdamW (``adagrad``, ``rmsprop``, ``adam``,
  ``adamw``): per-coordinate step sizes from running sums or averages of g².
  AdamW's decoupled weight decay pulls θ towards 0, away from Rosenbrock's
  minimum at (1, 1): its final loss there shows the bias.

Each (optimizer, problem) pair runs as one jitted ``lax.scan`` over the steps.
The script prints each optimizer's initial and final loss per problem and writes
two PNGs into ``--out``: ``optimizer_tour_trajectories.png`` (the paths over
the contour plots) and ``optimizer_tour_loss.png`` (loss against step, log
scale). Run it with::

    pip install "gradtx[examples]"
    python examples/optimizer_tour.py
    python examples/optimizer_tour.py --steps 1000 --out plots/
"""

import argparse
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import gradtx as gtx

BETA = 0.9  # momentum / EMA decay
KAPPA = 50.0  # condition number of the quadratic


def quadratic(p):
    return 0.5 * (p[0] ** 2 + KAPPA * p[1] ** 2)


def rosenbrock(p):
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


# loss, start, minimum, plot window (xmin, xmax, ymin, ymax), learning rates,
# picked by a coarse sweep per problem
PROBLEMS = {
    "ill-conditioned quadratic": dict(
        loss=quadratic,
        start=(-4.5, 1.6),
        minimum=(0.0, 0.0),
        window=(-5.0, 2.0, -2.2, 2.2),
        lr=dict(gd=0.025, adagrad=0.3, rmsprop=0.03, adam=0.1),
    ),
    "Rosenbrock": dict(
        loss=rosenbrock,
        start=(-1.2, 1.0),
        minimum=(1.0, 1.0),
        window=(-1.8, 1.6, -0.7, 1.8),
        lr=dict(gd=1e-3, adagrad=0.3, rmsprop=0.01, adam=0.1),
    ),
}


def optimizers(lr):
    """(name, optimizer) for each rule, with this problem's learning rates."""
    gd = lr["gd"]
    return [
        ("GD", gtx.sgd(gd)),
        (
            "momentum, EMA form",
            gtx.chain(gtx.ema(BETA, debias=False), gtx.scale(-gd)),
        ),
        ("heavy ball", gtx.sgd(gd, momentum=BETA)),
        ("Nesterov", gtx.sgd(gd, momentum=BETA, nesterov=True)),
        ("Adagrad", gtx.adagrad(lr["adagrad"])),
        ("RMSProp", gtx.rmsprop(lr["rmsprop"], decay=BETA)),
        ("Adam", gtx.adam(lr["adam"])),
        ("AdamW", gtx.adamw(lr["adam"], weight_decay=0.1)),
    ]


def run(optimizer, loss, start, steps):
    """The path (steps + 1, 2) and the loss at each point, in one jitted scan."""
    value_and_grad = jax.value_and_grad(loss)

    @jax.jit
    def descend(params):
        def step(carry, _):
            params, state = carry
            value, grad = value_and_grad(params)
            updates, state = optimizer.update(grad, state, params)
            return (gtx.apply_updates(params, updates), state), (params, value)

        carry = (params, optimizer.init(params))
        (params, _), (path, values) = jax.lax.scan(step, carry, length=steps)
        path = jnp.concatenate([path, params[None]])
        return path, jnp.append(values, loss(params))

    return descend(jnp.asarray(start, jnp.float32))


def plot_trajectories(results, path):
    fig, axes = plt.subplots(1, len(PROBLEMS), figsize=(12, 5), dpi=80)
    for ax, (problem, spec) in zip(axes, PROBLEMS.items(), strict=True):
        x0, x1, y0, y1 = spec["window"]
        xs, ys = jnp.meshgrid(jnp.linspace(x0, x1, 200), jnp.linspace(y0, y1, 200))
        zs = jax.vmap(spec["loss"])(jnp.stack([xs.ravel(), ys.ravel()], axis=1))
        zs = zs.reshape(xs.shape)
        levels = jnp.geomspace(max(float(zs.min()), 1e-3), float(zs.max()), 15)
        ax.contour(xs, ys, zs, levels=levels, colors="0.75", linewidths=0.7)
        for (name, (traj, _)), color in zip(
            results[problem].items(), plt.cm.tab10.colors, strict=False
        ):
            ax.plot(traj[:, 0], traj[:, 1], "-", color=color, lw=1.2, label=name)
            ax.plot(traj[-1, 0], traj[-1, 1], "o", color=color, ms=4)
        ax.plot(*spec["start"], "k^", ms=7)
        ax.plot(*spec["minimum"], "k*", ms=10)
        ax.set(xlim=(x0, x1), ylim=(y0, y1), title=problem, xlabel="x", ylabel="y")
    axes[1].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_losses(results, path, steps):
    fig, axes = plt.subplots(1, len(PROBLEMS), figsize=(12, 4.5), dpi=80)
    for ax, problem in zip(axes, PROBLEMS, strict=True):
        for (name, (_, values)), color in zip(
            results[problem].items(), plt.cm.tab10.colors, strict=False
        ):
            # An exact 0 (Adagrad on the quadratic) has no log: floor it.
            values = jnp.maximum(values, 1e-30)
            ax.semilogy(jnp.arange(steps + 1), values, color=color, label=name)
        ax.set(title=problem, xlabel="step", ylabel="loss")
        ax.grid(True, which="major", alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the PNGs (default: a temp)"
    )
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="optimizer_tour_"))
    out.mkdir(parents=True, exist_ok=True)

    begin = time.perf_counter()
    results = {}
    for problem, spec in PROBLEMS.items():
        results[problem] = {}
        print(f"{problem}: {args.steps} steps from {spec['start']}")
        print(f"  {'optimizer':20s} {'initial loss':>12s} {'final loss':>12s}")
        for name, optimizer in optimizers(spec["lr"]):
            path, values = run(optimizer, spec["loss"], spec["start"], args.steps)
            results[problem][name] = (path, values)
            print(f"  {name:20s} {float(values[0]):12.4g} {float(values[-1]):12.4g}")

    plot_trajectories(results, out / "optimizer_tour_trajectories.png")
    plot_losses(results, out / "optimizer_tour_loss.png", args.steps)
    print(f"wrote {out / 'optimizer_tour_trajectories.png'}")
    print(f"wrote {out / 'optimizer_tour_loss.png'}")
    print(f"took {time.perf_counter() - begin:.1f} s")


if __name__ == "__main__":
    main()
