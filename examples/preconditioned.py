"""Matrix and preconditioned optimizers on the quickstart's digits MLP.

Trains the same 64-128-128-10 MLP (scikit-learn's 8x8 digits, mini-batches of
64) from the same start with AdamW, Muon, SOAP, Shampoo and PSGD-Kron, and
plots the training loss against steps and against wall-clock time (compile
time excluded: each step function is compiled before the clock starts). Every
optimizer is one line of gradtx; the matrix methods precondition the weight
matrices and treat the biases as their alias documents (Muon: AdamW; SOAP:
Adam; Shampoo: a full-matrix factor; PSGD-Kron: a diagonal factor).

Run it with::

    pip install "gradtx[examples]"
    python examples/preconditioned.py                    # about a minute
    python examples/preconditioned.py --steps 600 --out docs/

The learning rates are each method's usual order of magnitude, lightly tuned
on this problem, not a fair hyperparameter search: the plot shows how each
behaves, and what a step costs, not which one is best.
"""

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from quickstart import (  # the same data, network and training step
    init_mlp,
    load_data,
    loss_and_accuracy,
    make_train_step,
)

import gradtx as gtx

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def optimizers(total_steps):
    """The contenders, each with a cosine decay over the run."""

    def cosine(peak):
        return gtx.cosine_decay_schedule(peak, total_steps, alpha=0.05)

    return {
        "AdamW": gtx.adamw(cosine(3e-3), weight_decay=1e-4),
        "Muon": gtx.muon(cosine(2e-2), adam_learning_rate=cosine(3e-3)),
        "SOAP": gtx.soap(cosine(3e-3), weight_decay=1e-4, precondition_frequency=10),
        "Shampoo": gtx.shampoo(
            cosine(1e-2),
            block_size=128,
            graft_type="adagrad",
            start_preconditioning_step=10,
            preconditioning_compute_steps=10,
        ),
        # Q starts at 10·I: the gradients here are ~1e-2, and from Q = I the
        # first steps would be plain SGD at 1e-3 until Q has grown.
        "PSGD-Kron": gtx.psgd_kron(cosine(1e-3), preconditioner_init_scale=10.0),
    }


def train(optimizer, params, train_data, batches):
    """Losses and wall-clock seconds after each step (compilation excluded)."""
    step = make_train_step(optimizer)
    params = jax.tree.map(jnp.copy, params)
    opt_state = optimizer.init(params)
    x, y = train_data
    compile_start = time.perf_counter()
    step = step.lower(params, opt_state, (x[batches[0]], y[batches[0]])).compile()
    compile_s = time.perf_counter() - compile_start
    losses, seconds = [], []
    start = time.perf_counter()
    for idx in batches:
        params, opt_state, loss = step(params, opt_state, (x[idx], y[idx]))
        losses.append(loss)
        # the clock reads after the step has run, not when it was dispatched
        jax.block_until_ready(loss)
        seconds.append(time.perf_counter() - start)
    return params, np.asarray(losses, np.float64), np.asarray(seconds), compile_s


def smooth(x, width=20):
    """A trailing mean, so mini-batch noise does not hide the trend."""
    return np.array([x[max(0, i - width + 1) : i + 1].mean() for i in range(len(x))])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."))
    args = parser.parse_args()

    train_data, test_data = load_data(args.seed)
    n_train = train_data[0].shape[0]
    rng = np.random.default_rng(args.seed)
    batches = [
        rng.choice(n_train, args.batch_size, replace=False) for _ in range(args.steps)
    ]
    params = init_mlp(jax.random.key(args.seed), [64, 128, 128, 10])
    evaluate = jax.jit(loss_and_accuracy)

    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4))
    print(
        f"{'optimizer':10s} {'train loss':>10s} {'test acc':>8s} "
        f"{'ms/step':>8s} {'compile s':>9s}"
    )
    for name, optimizer in optimizers(args.steps).items():
        final, losses, seconds, compile_s = train(
            optimizer, params, train_data, batches
        )
        if not np.all(np.isfinite(losses)):
            raise SystemExit(f"{name}: the loss is not finite")
        loss, _ = evaluate(final, train_data)
        _, accuracy = evaluate(final, test_data)
        ms = 1e3 * seconds[-1] / args.steps
        print(
            f"{name:10s} {float(loss):10.4f} {float(accuracy):8.4f} "
            f"{ms:8.2f} {compile_s:9.2f}"
        )
        curve = smooth(losses)
        by_step.plot(np.arange(1, args.steps + 1), curve, label=name)
        by_time.plot(seconds, curve, label=name)
    for ax, label in [
        (by_step, "step"),
        (by_time, "wall-clock seconds (after compiling)"),
    ]:
        ax.set_xlabel(label)
        ax.set_ylabel("training loss (trailing mean of 20 steps)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    by_step.legend()
    fig.suptitle("digits MLP, batch 64: loss against steps and against time")
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "preconditioned_loss.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
