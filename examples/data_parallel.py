"""Data-parallel training on 8 devices with the optimizer state split across them.

The MLP of ``examples/quickstart.py`` trains on the digits with each batch
split over a mesh axis ``data`` of 8 devices: every device holds the whole
model and computes the gradient of its slice of the batch; ``jax.jit``
all-reduces the gradients. gradtx adds nothing to that machinery; it places
the optimizer state:

* ``--state replicated``: state made like the (replicated) params, so every
  device holds all of AdamW's moments;
* ``--state zero1`` (the default): ``gradtx.zero1_shardings`` splits every
  state leaf over ``data`` (ZeRO stage 1), so each device holds 1/8 of it.

The script prints the bytes of params and state held per device, trains, and
checks that both placements give the same parameters. On a CPU the 8 devices
are simulated (``XLA_FLAGS`` below, set before JAX starts); where 8 GPUs are
present, ``--platform gpu`` uses them instead.

``--processes 2`` runs the same training as 2 JAX processes of 4 CPU devices
each, as on 2 hosts: the script starts 2 copies of itself
(``examples/local_cluster.py``), which join through
``jax.distributed.initialize`` and all-reduce over gloo on localhost; the
mesh spans the 8 devices of both, ZeRO-1 splits the state across both, and
process 0 prints the results, those of the one-process run. Run it with::

    pip install "gradtx[examples]"
    python examples/data_parallel.py
    python examples/data_parallel.py --epochs 5 --devices 4
    python examples/data_parallel.py --processes 2
"""

import argparse
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--state", choices=["zero1", "replicated"], default="zero1")
    parser.add_argument("--platform", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument(
        "--processes", type=int, default=1, help="JAX processes (CPU devices only)"
    )
    args = parser.parse_args(argv)
    if args.processes > 1 and (args.platform != "cpu" or args.devices % args.processes):
        parser.error("--processes needs --platform cpu and devices it divides")
    return args


def run_processes(args) -> int:
    """Starts ``args.processes`` copies of this script, each with its share
    of the CPU devices, and prints what process 0 printed."""
    try:
        results = local_cluster.launch(
            [os.path.abspath(__file__), *sys.argv[1:]],
            args.processes,
            args.devices // args.processes,
            timeout=900,
        )
    except local_cluster.WorkerFailed as e:
        print(f"data_parallel.py: {e}", file=sys.stderr)
        return 1
    lines = results[0].stdout.splitlines()  # less gloo's connection notices
    print("\n".join(line for line in lines if not line.startswith("[Gloo]")))
    return 0


ARGS = parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import local_cluster  # noqa: E402

if ARGS.processes > 1 and local_cluster.process_id() is None:  # the launcher
    sys.exit(run_processes(ARGS))
if ARGS.platform == "cpu" and ARGS.processes == 1:  # before JAX fixes the count
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={ARGS.devices}"
    )
    os.environ["JAX_PLATFORMS"] = "cpu"

if ARGS.processes > 1:  # a worker: join the others (the launcher set XLA_FLAGS)
    local_cluster.initialize()

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from quickstart import init_mlp, load_data, loss_and_accuracy  # noqa: E402

import gradtx as gtx  # noqa: E402


def kib(n: int) -> str:
    return f"{n / 2**10:8.1f} KiB"


def place_state(tx, params, mesh, how):
    """The state's shardings: like the params, or split over ``data``."""
    if how == "zero1":
        return gtx.zero1_shardings(tx, params, mesh, "data")
    return gtx.state_shardings(tx, params)


def train(args, mesh, how, data):
    (x_train, y_train), (x_test, y_test) = data
    replicated = NamedSharding(mesh, P())
    split_batch = NamedSharding(mesh, P("data"))
    params = jax.device_put(
        init_mlp(jax.random.key(args.seed), [64, 128, 128, 10]), replicated
    )
    steps = args.epochs * (len(x_train) // args.batch_size)
    tx = gtx.adamw(gtx.cosine_decay_schedule(args.lr, steps), weight_decay=1e-4)
    state_shardings = place_state(tx, params, mesh, how)
    state = jax.jit(tx.init, out_shardings=state_shardings)(params)
    param_shardings = jax.tree.map(lambda p: p.sharding, params)

    def step(params, state, batch):
        (loss, _), grads = jax.value_and_grad(loss_and_accuracy, has_aux=True)(
            params, batch
        )
        updates, state = tx.update(grads, state, params)
        return gtx.apply_updates(params, updates), state, loss

    step = jax.jit(
        step,
        out_shardings=(param_shardings, state_shardings, replicated),
        donate_argnums=(0, 1),
    )
    per_device = {
        "params": max(gtx.per_device_bytes(params).values()),
        "state": max(gtx.per_device_bytes(state).values()),
    }
    rng = np.random.default_rng(args.seed)
    n = len(x_train) // args.batch_size * args.batch_size
    for epoch in range(args.epochs):
        order = rng.permutation(len(x_train))[:n].reshape(-1, args.batch_size)
        losses = []
        for idx in order:
            batch = jax.device_put((x_train[idx], y_train[idx]), split_batch)
            params, state, loss = step(params, state, batch)
            losses.append(loss)
        if epoch == args.epochs - 1 or epoch % 5 == 0:
            print(f"  [{how}] epoch {epoch + 1:3d}  loss {np.mean(losses):.4f}")
    keep = len(x_test) // args.devices * args.devices  # whole slices per device
    test = jax.device_put((x_test[:keep], y_test[:keep]), split_batch)
    loss, accuracy = jax.jit(loss_and_accuracy)(params, test)
    return params, state, per_device, float(loss), float(accuracy)


def main():
    args = ARGS
    devices = jax.devices()[: args.devices]
    if len(devices) < args.devices:
        sys.exit(f"asked for {args.devices} devices, found {len(jax.devices())}")
    mesh = jax.make_mesh((args.devices,), ("data",), devices=devices)
    where = ""
    if jax.process_count() > 1:
        where = f", in {jax.process_count()} processes of {jax.local_device_count()}"
    print(f"{args.devices} {devices[0].platform} devices{where}, mesh axis 'data'")
    data = jax.device_get(load_data(args.seed))

    runs = {}
    for how in dict.fromkeys([args.state, "replicated"]):
        runs[how] = train(args, mesh, how, data)
    print("\nper-device bytes   params        optimizer state")
    for how, (_, _, per_device, _, _) in runs.items():
        print(f"  {how:<12} {kib(per_device['params'])}   {kib(per_device['state'])}")
    if "zero1" in runs:
        ratio = runs["replicated"][2]["state"] / runs["zero1"][2]["state"]
        print(f"zero1 holds 1/{ratio:.2f} of the state on each device")
        state = runs["zero1"][1]
        specs = {str(leaf.sharding.spec) for leaf in jax.tree.leaves(state)}
        print(f"zero1 state shardings: {sorted(specs)}")
        diff = max(
            float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
            for a, b in zip(
                jax.tree.leaves(runs["zero1"][0]),
                jax.tree.leaves(runs["replicated"][0]),
                strict=True,
            )
        )
        print(f"max |params(zero1) - params(replicated)| = {diff:.3g}")
    for how, (*_, loss, accuracy) in runs.items():
        print(f"final test loss [{how}] {loss:.4f}  accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
