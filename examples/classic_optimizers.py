"""The classic optimizer rules, each written in gradtx.

Every update rule of the textbook list gradtx starts from is built here from
gradtx primitives or aliases, and trained on the same problem, binary logistic
regression,

    L(w, b) = -(1/N) sum_i [y_i log ŷ_i + (1 - y_i) log(1 - ŷ_i)],
    ŷ_i = sigmoid(w · x_i + b),

on a two-class Gaussian data set generated with a fixed seed. It prints one row
per rule: batch size, updates per epoch, final training loss, test accuracy and
the weight norm |w| (where weight decay shows).

* Batch GD, SGD and mini-batch SGD are one optimizer, ``sgd(lr)``, fed batches
  of N, 1 and 32 examples: 1, N and N / 32 updates per epoch.
* Momentum in EMA form, ``chain(ema(β, debias=False), scale(-α))``, is the
  heavy-ball rule, ``sgd(lr, momentum=r)`` = ``chain(trace(r), scale(-lr))``,
  with α = lr / (1 - β): their rows agree.
* Adagrad, RMSProp (ε inside and outside the root), Adam, Adam with coupled L2
  (``adam_l2``: λθ added to the gradient before Adam's scaling) against AdamW
  (decoupled: θ ← θ - η(update + λθ)), and SGD with clipping by global norm.

Run it with::

    python examples/classic_optimizers.py
    python examples/classic_optimizers.py --epochs 50 --plot losses.png
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import gradtx as gtx

N_TRAIN = 512  # divisible by every batch size below
MINI_BATCH = 32
LR = 0.1  # the plain gradient-descent rules
ADAPTIVE_LR = 0.05  # Adagrad, RMSProp and the Adam family
BETA = 0.9  # momentum and RMSProp decay
WEIGHT_DECAY = 0.1


def optimizers():
    """(name, optimizer, batch size) for each rule."""
    sgd = gtx.sgd(LR)
    return [
        ("batch GD", sgd, N_TRAIN),
        ("SGD (batch 1)", sgd, 1),
        ("mini-batch SGD", sgd, MINI_BATCH),
        # v ← β v + (1 - β) g;  θ ← θ - α v
        (
            "momentum, EMA form",
            gtx.chain(gtx.ema(BETA, debias=False), gtx.scale(-LR / (1 - BETA))),
            MINI_BATCH,
        ),
        # v ← r v + η g;  θ ← θ - v: the alias, then the chain it stands for
        ("heavy ball, sgd(momentum)", gtx.sgd(LR, momentum=BETA), MINI_BATCH),
        (
            "heavy ball, trace + scale",
            gtx.chain(gtx.trace(BETA), gtx.scale(-LR)),
            MINI_BATCH,
        ),
        ("Nesterov", gtx.sgd(LR, momentum=BETA, nesterov=True), MINI_BATCH),
        # s ← s + g²;  θ ← θ - η g / sqrt(s + ε)
        ("Adagrad", gtx.adagrad(ADAPTIVE_LR), MINI_BATCH),
        # s ← β s + (1 - β) g²;  θ ← θ - η g / sqrt(s + ε)  or  / (sqrt(s) + ε);
        # with ε = 1e-8 the two differ only where s is close to 0.
        ("RMSProp, ε in root", gtx.rmsprop(ADAPTIVE_LR, BETA), MINI_BATCH),
        (
            "RMSProp, ε outside root",
            gtx.rmsprop(ADAPTIVE_LR, BETA, eps_in_sqrt=False),
            MINI_BATCH,
        ),
        ("Adam", gtx.adam(ADAPTIVE_LR), MINI_BATCH),
        (
            "Adam + coupled L2",
            gtx.adam_l2(ADAPTIVE_LR, weight_decay=WEIGHT_DECAY),
            MINI_BATCH,
        ),
        ("AdamW", gtx.adamw(ADAPTIVE_LR, weight_decay=WEIGHT_DECAY), MINI_BATCH),
        # rescale g to global norm ≤ 1 before the step: tames outlier examples
        (
            "SGD (batch 1) + clipping",
            gtx.chain(gtx.clip_by_global_norm(1.0), gtx.sgd(LR)),
            1,
        ),
    ]


def make_data(seed, n):
    """Two overlapping Gaussian classes in 2-D, labels 0 and 1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = np.where(y[:, None] == 1, 1.0, -1.0) * [1.0, 0.5] + rng.normal(size=(n, 2))
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


def loss_fn(params, x, y):
    logits = x @ params["w"] + params["b"]
    # log ŷ and log(1 - ŷ), computed stably from the logits.
    log_p, log_not_p = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
    return -jnp.mean(y * log_p + (1 - y) * log_not_p)


def accuracy(params, x, y):
    return jnp.mean((x @ params["w"] + params["b"] > 0) == (y == 1))


def train(optimizer, batch_size, x, y, epochs, key):
    """Runs `epochs` shuffled passes; returns final params and the loss curve."""
    steps = x.shape[0] // batch_size

    def step(carry, batch):
        params, opt_state = carry
        grads = jax.grad(loss_fn)(params, *batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (gtx.apply_updates(params, updates), opt_state), None

    def epoch(carry, key):
        order = jax.random.permutation(key, x.shape[0])
        batches = (
            x[order].reshape(steps, batch_size, -1),
            y[order].reshape(steps, batch_size),
        )
        carry, _ = jax.lax.scan(step, carry, batches)
        return carry, loss_fn(carry[0], x, y)

    @jax.jit
    def run(params, keys):
        start = loss_fn(params, x, y)
        carry, losses = jax.lax.scan(epoch, (params, optimizer.init(params)), keys)
        return carry[0], jnp.concatenate([start[None], losses])

    params = {"w": jnp.zeros(x.shape[1]), "b": jnp.zeros(())}
    return run(params, jax.random.split(key, epochs))


def plot(curves, path):
    from matplotlib import colormaps  # only needed for --plot
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    ax.set_prop_cycle(color=colormaps["tab20"].colors)
    for name, losses in curves.items():
        ax.plot(np.arange(len(losses)), losses, label=name)
    ax.set(xlabel="epoch", ylabel="training loss")
    ax.set_title("Logistic regression, one curve per rule")
    ax.legend(fontsize="small", ncol=2)
    fig.savefig(path, dpi=120)
    print(f"saved loss curves to {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="PATH", help="save loss curves (PNG)")
    args = parser.parse_args()

    x_train, y_train = make_data(args.seed, N_TRAIN)
    x_test, y_test = make_data(args.seed + 1, 2048)
    key = jax.random.key(args.seed)

    header = "rule                       batch upd/epoch train loss test acc    |w|"
    print(header)
    print("-" * len(header))
    curves = {}
    for name, optimizer, batch_size in optimizers():
        params, losses = train(
            optimizer, batch_size, x_train, y_train, args.epochs, key
        )
        curves[name] = np.asarray(losses)
        print(
            f"{name:26s} {batch_size:5d} {N_TRAIN // batch_size:9d} "
            f"{float(losses[-1]):10.4f} {float(accuracy(params, x_test, y_test)):8.4f} "
            f"{float(jnp.linalg.norm(params['w'])):6.3f}"
        )
    if args.plot:
        plot(curves, args.plot)


if __name__ == "__main__":
    main()
