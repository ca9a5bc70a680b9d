"""bf16 training without a float32 master copy: Kahan summation, stochastic rounding.

The MLP of ``examples/quickstart.py`` (64-128-128-10 on scikit-learn's 8x8
digits) is trained four times from the same initial weights, on the same
mini-batches, with ``gtx.adam(1e-4, nu_dtype=jnp.float32)``:

* float32: parameters, gradients and updates in float32 (the reference);
* bf16: parameters stored in bfloat16 and the forward pass in bfloat16 (the
  loss in float32). Adam's steps of about 1e-4 are below half a unit in the
  last place of most weights (bfloat16 keeps 8 significant bits: 1e-4 is lost
  on any weight above ~0.05), so they round away and the run stalls;
* bf16 + Kahan: the same, with ``kahan_summation(adam)``: the rounding error
  of each step is kept in a bfloat16 compensation buffer and added back;
* bf16 + stochastic rounding: ``stochastic_rounding(adam, key)`` rounds each
  new weight up or down at random, unbiased.

Every ``--eval-every`` steps the full training set's loss is evaluated in
float32 from the current weights; the curves go to one PNG (``--out``) and the
final losses and test accuracies are printed. Measured (1,500 steps): float32
0.0483, bf16 1.559 (stalled), bf16 + Kahan 0.0483, bf16 + stochastic rounding
0.0484; test accuracy 0.971, 0.536, 0.971, 0.971.

Adam's second moment follows the params' dtype unless told otherwise. In
bfloat16 its update ``(1 - b2)·(g² - v)``, 0.1% of ``v``, is itself below
bfloat16's resolution, so ``v`` is wrong and, with bfloat16 moments, both
wrappers end at 0.0574 instead of 0.0483. Hence ``nu_dtype=jnp.float32``
(``--bf16-moments`` shows the other case). Run it with::

    pip install "gradtx[examples]"
    python examples/bf16_training.py
    python examples/bf16_training.py --steps 200 --out /tmp/bf16.png
"""

import argparse
import functools

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from quickstart import init_mlp, load_data  # the same data and network

import gradtx as gtx

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# The wrapped runs overlap the float32 curve: dashes and dots let it show through.
STYLES = {
    "float32": "k-",
    "bf16": "C1-",
    "bf16 + Kahan": "C0--",
    "bf16 + stochastic rounding": "C3:",
}


def loss_and_accuracy(params, batch):
    """Cross-entropy; the network runs in the params' dtype, the loss in float32."""
    x, y = batch
    h = x.astype(params[0]["w"].dtype)
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    logits = (h @ params[-1]["w"] + params[-1]["b"]).astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits)
    loss = -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))
    return loss, jnp.mean(jnp.argmax(log_probs, axis=1) == y)


def float32_loss(params, data):
    """The loss of ``params`` on ``data``, evaluated in float32."""
    return loss_and_accuracy(
        jax.tree.map(lambda p: p.astype(jnp.float32), params), data
    )


@functools.partial(jax.jit, static_argnums=(0, 1))
def train(optimizer, dtype, params, train_set, batches):
    """Runs ``batches`` (evaluations, steps between them, batch) of steps.

    Returns the final params and the float32 training loss after each block.
    """
    params = jax.tree.map(lambda p: p.astype(dtype), params)
    grad = jax.grad(lambda p, b: loss_and_accuracy(p, b)[0])

    def step(carry, idx):
        params, state = carry
        batch = (train_set[0][idx], train_set[1][idx])
        updates, state = optimizer.update(grad(params, batch), state, params)
        return (gtx.apply_updates(params, updates), state), None

    def block(carry, idxs):
        carry, _ = jax.lax.scan(step, carry, idxs)
        return carry, float32_loss(carry[0], train_set)[0]

    (params, _), curve = jax.lax.scan(block, (params, optimizer.init(params)), batches)
    return params, curve


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/gradtx_bf16_training.png")
    parser.add_argument(
        "--bf16-moments",
        action="store_true",
        help="keep Adam's second moment in the params' dtype (bfloat16)",
    )
    args = parser.parse_args()

    train_set, test_set = load_data(args.seed)
    n_train = train_set[0].shape[0]
    blocks = max(1, args.steps // args.eval_every)
    steps = blocks * args.eval_every
    rng = np.random.default_rng(args.seed)
    epochs = steps * args.batch_size // n_train + 1
    order = np.concatenate([rng.permutation(n_train) for _ in range(epochs)])
    batches = order[: steps * args.batch_size].reshape(blocks, args.eval_every, -1)
    params = init_mlp(jax.random.key(args.seed), [64, 128, 128, 10])

    nu_dtype = None if args.bf16_moments else jnp.float32
    make = lambda: gtx.adam(args.lr, nu_dtype=nu_dtype)
    runs = {
        "float32": (make(), jnp.float32),
        "bf16": (make(), jnp.bfloat16),
        "bf16 + Kahan": (gtx.kahan_summation(make()), jnp.bfloat16),
        "bf16 + stochastic rounding": (
            gtx.stochastic_rounding(make(), key=args.seed),
            jnp.bfloat16,
        ),
    }
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x_axis = args.eval_every * np.arange(1, blocks + 1)
    for name, (optimizer, dtype) in runs.items():
        final, curve = train(optimizer, dtype, params, train_set, jnp.asarray(batches))
        loss = float(curve[-1])
        accuracy = float(float32_loss(final, test_set)[1])
        print(f"{name:27s} final train loss {loss:.4f}  test accuracy {accuracy:.4f}")
        ax.plot(x_axis, np.asarray(curve), STYLES[name], label=f"{name} ({loss:.4f})")
    ax.set(
        xlabel="step",
        ylabel="training loss (float32 evaluation)",
        yscale="log",
        title=f"MLP on digits, adam({args.lr:g}): bf16 params, no float32 copy",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
