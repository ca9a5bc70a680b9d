"""Full-batch gradient descent vs SGD (batch size 1) vs mini-batch SGD.

The same rule, θ ← θ - η ∇L_B(θ) (``gradtx.sgd``), fed batches B of three
sizes, trains a binary logistic regression with the cross-entropy loss

    L(w, b) = -(1/N) Σ_i [y_i log ŷ_i + (1 - y_i) log(1 - ŷ_i)],
    ŷ_i = sigmoid(w · x_i + b),

on a synthetic data set: two overlapping Gaussian classes in 20 dimensions,
N = 2,048 points, generated from a fixed seed, with features on scales from
3 down to 0.1 (an ill-conditioned loss, as unnormalised features give).

* Full batch (B = N): one exact gradient, one update per epoch.
* SGD (B = 1): N noisy updates per epoch; the cheapest per update, but each
  update is a separate step of the scan.
* Mini-batch (B = 32): N / 32 updates per epoch, each averaging 32 gradients.

One epoch is one jitted function (a ``lax.scan`` over the shuffled batches), so
batch size 1 is not slowed down by a Python loop; the first call of each is a
warm-up, so the clocks measure running, not compiling. The script prints the
final training loss and the total time of each, and writes one PNG with two
panels, loss against epochs and loss against wall-clock time, into ``--out``.
Run it with::

    pip install "gradtx[examples]"
    python examples/batch_vs_minibatch.py
    python examples/batch_vs_minibatch.py --epochs 50 --out plots/
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

N_TRAIN = 2048
N_FEATURES = 20
# (name, batch size, learning rate): rates from a coarse sweep, the largest whose
# curve stays smooth; smaller batches are noisier and need smaller steps.
RUNS = [
    ("full-batch GD", N_TRAIN, 0.8),
    ("SGD (batch 1)", 1, 0.003),
    ("mini-batch (32)", 32, 0.1),
]


def make_data(key):
    """Two Gaussian classes whose means are 1.5 standard deviations apart.

    The features are then scaled by factors from 3 down to 0.1: the loss is
    ill-conditioned, as raw features often make it, so full-batch GD, whose
    step is capped by the steepest direction, crawls along the flattest.
    """
    k_dir, k_x, k_y = jax.random.split(key, 3)
    direction = jax.random.normal(k_dir, (N_FEATURES,))
    direction = direction / jnp.linalg.norm(direction)
    y = jax.random.bernoulli(k_y, 0.5, (N_TRAIN,)).astype(jnp.float32)
    x = jax.random.normal(k_x, (N_TRAIN, N_FEATURES))
    x = x + 0.75 * (2 * y[:, None] - 1) * direction
    return x * jnp.geomspace(3.0, 0.1, N_FEATURES), y


def loss_fn(params, x, y):
    logits = x @ params["w"] + params["b"]
    # log sigmoid(z) = -softplus(-z), log(1 - sigmoid(z)) = -softplus(z)
    return jnp.mean(y * jax.nn.softplus(-logits) + (1 - y) * jax.nn.softplus(logits))


def make_epoch(optimizer, batch_size):
    """One jitted pass over the shuffled data set, ``N / batch_size`` updates."""
    grad_fn = jax.grad(loss_fn)
    n_batches = N_TRAIN // batch_size

    @jax.jit
    def epoch(params, opt_state, key, x, y):
        order = jax.random.permutation(key, N_TRAIN)[: n_batches * batch_size]
        xb = x[order].reshape(n_batches, batch_size, N_FEATURES)
        yb = y[order].reshape(n_batches, batch_size)

        def step(carry, batch):
            params, opt_state = carry
            grads = grad_fn(params, *batch)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (gtx.apply_updates(params, updates), opt_state), None

        (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), (xb, yb))
        return params, opt_state, loss_fn(params, x, y)

    return epoch


def train(batch_size, lr, epochs, x, y, seed):
    """Losses after 0..epochs epochs and the cumulative seconds at each."""
    optimizer = gtx.sgd(lr)
    params = {"w": jnp.zeros(N_FEATURES), "b": jnp.zeros(())}
    opt_state = optimizer.init(params)
    epoch = make_epoch(optimizer, batch_size)
    key = jax.random.key(seed)
    jax.block_until_ready(epoch(params, opt_state, key, x, y))  # compile
    losses, times, elapsed = [float(loss_fn(params, x, y))], [0.0], 0.0
    for _ in range(epochs):
        key, sub = jax.random.split(key)
        start = time.perf_counter()
        params, opt_state, loss = jax.block_until_ready(
            epoch(params, opt_state, sub, x, y)
        )
        elapsed += time.perf_counter() - start
        losses.append(float(loss))
        times.append(elapsed)
    return losses, times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the PNG (default: a temp)"
    )
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="batch_vs_minibatch_"))
    out.mkdir(parents=True, exist_ok=True)

    x, y = make_data(jax.random.key(args.seed))
    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=80)
    print(f"logistic regression, N = {N_TRAIN}, {args.epochs} epochs")
    print(f"{'method':16s} {'batch':>5s} {'lr':>5s} {'final loss':>10s} {'time':>8s}")
    for name, batch_size, lr in RUNS:
        losses, times = train(batch_size, lr, args.epochs, x, y, args.seed)
        label = f"{name}, lr {lr:g}"
        by_epoch.plot(range(args.epochs + 1), losses, ".-", ms=3, label=label)
        by_time.plot(times, losses, ".-", ms=3, label=label)
        print(
            f"{name:16s} {batch_size:5d} {lr:5g} {losses[-1]:10.4f} {times[-1]:7.3f}s"
        )
    for ax, xlabel in [(by_epoch, "epoch"), (by_time, "wall-clock time (s)")]:
        ax.set(xlabel=xlabel, ylabel="training loss (cross-entropy)")
        ax.grid(True, alpha=0.3)
    by_epoch.set_title("loss against epochs")
    by_time.set_title("loss against time (compilation excluded)")
    by_epoch.legend()
    fig.tight_layout()
    path = out / "batch_vs_minibatch.png"
    fig.savefig(path)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
