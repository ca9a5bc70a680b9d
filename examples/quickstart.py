"""Quickstart: train a small MLP on scikit-learn's 8x8 digits with gradtx.

This shows the usual shape of a gradtx training loop with plain JAX pytrees:

* the model parameters are a list of ``{"w", "b"}`` dicts, initialised from a
  ``jax.random.key``;
* the optimizer is ``gtx.adamw`` (Adam with decoupled weight decay, applied to
  the weight matrices only) driven by a ``gtx.warmup_cosine_decay_schedule``;
* one jitted training step takes ``(params, opt_state, batch)`` and returns the
  new ``(params, opt_state, loss)``; the old parameter and optimizer buffers are
  donated to XLA, so it can update them in place.

The data set (1,797 images of handwritten digits) ships with scikit-learn, so
nothing is downloaded. Run it with::

    pip install "gradtx[examples]"
    python examples/quickstart.py
    python examples/quickstart.py --epochs 10 --batch-size 32 --lr 1e-3 --seed 1

Swapping ``import gradtx as gtx`` for ``import optax as gtx`` gives the same
numbers.
"""

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import gradtx as gtx


def load_data(seed):
    """Returns standardised (x, y) train and test splits as JAX arrays."""
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=y
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # some border pixels are always blank
    as_jax = lambda x, y: (jnp.asarray((x - mean) / std, jnp.float32), jnp.asarray(y))
    return as_jax(x_train, y_train), as_jax(x_test, y_test)


def init_mlp(key, sizes):
    """He-normal weights for the ReLU layers, Glorot-normal for the output."""
    params = []
    for i, k in enumerate(jax.random.split(key, len(sizes) - 1)):
        fan_in, fan_out = sizes[i], sizes[i + 1]
        is_output = i == len(sizes) - 2
        std = np.sqrt(2 / (fan_in + fan_out) if is_output else 2 / fan_in)
        w = std * jax.random.normal(k, (fan_in, fan_out))
        params.append({"w": w, "b": jnp.zeros(fan_out)})
    return params


def mlp(params, x):
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss_and_accuracy(params, batch):
    x, y = batch
    log_probs = jax.nn.log_softmax(mlp(params, x))
    loss = -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))
    return loss, jnp.mean(jnp.argmax(log_probs, axis=1) == y)


def make_train_step(optimizer):
    loss_grad = jax.value_and_grad(loss_and_accuracy, has_aux=True)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, batch):
        (loss, _), grads = loss_grad(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return gtx.apply_updates(params, updates), opt_state, loss

    return train_step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train, test = load_data(args.seed)
    n_train = train[0].shape[0]
    steps_per_epoch = n_train // args.batch_size  # drop the last partial batch
    total_steps = args.epochs * steps_per_epoch

    key, init_key = jax.random.split(jax.random.key(args.seed))
    params = init_mlp(init_key, [64, 128, 128, 10])

    schedule = gtx.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=args.lr,
        warmup_steps=max(1, total_steps // 10),
        decay_steps=total_steps,
        end_value=args.lr / 100,
    )
    # Decay the weight matrices, not the biases.
    weights_only = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
    optimizer = gtx.adamw(schedule, weight_decay=1e-4, mask=weights_only)
    opt_state = optimizer.init(params)
    train_step = make_train_step(optimizer)

    with tqdm(total=total_steps, unit="step") as progress:
        for epoch in range(args.epochs):
            key, shuffle_key = jax.random.split(key)
            order = jax.random.permutation(shuffle_key, n_train)
            loss_sum = 0.0
            for i in range(steps_per_epoch):
                idx = order[i * args.batch_size : (i + 1) * args.batch_size]
                batch = (train[0][idx], train[1][idx])
                params, opt_state, loss = train_step(params, opt_state, batch)
                loss_sum += loss  # stays on the device: no sync in the loop
                progress.update()
            running_loss = float(loss_sum) / steps_per_epoch
            progress.set_postfix(epoch=epoch + 1, loss=f"{running_loss:.4f}")

    evaluate = jax.jit(loss_and_accuracy)
    for name, data in [("train", train), ("test", test)]:
        loss, accuracy = evaluate(params, data)
        print(f"final {name:5s} loss {float(loss):.4f}  accuracy {float(accuracy):.4f}")


if __name__ == "__main__":
    main()
