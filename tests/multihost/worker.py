"""One process of the multi-process checks (``tests/test_multihost.py``).

Started by ``examples/local_cluster.py``'s launcher, as two processes of 4
CPU devices (the run under test) or one process of 8 (the reference): the
same code on a (2, 4) mesh ``("data", "model")`` whose ``data`` axis spans
the two processes, so every reduction over ``data`` crosses them (gloo).

``check`` mode asserts what each process can see by itself (state placement,
``per_device_bytes``, ZeRO-1 splitting, checkpoint round trips) and writes
every array it addresses, shard by shard, with the shard's place in the mesh
(``<out>/process<i>.npz`` and ``.json``), for the parent to compare with the
reference. ``crash`` mode has process 1 die while process 0 keeps running
collectives. Nothing runs on import (pytest imports this file for doctests).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

STEPS, MORE = 3, 2  # steps before the checkpoint, steps resumed after it


def _args(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["check", "crash"])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--crash", type=int, default=1, help="which process dies")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = _args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    import local_cluster

    if args.mode == "crash":
        local_cluster.initialize(heartbeat_timeout=4)
        return _crash(local_cluster.process_id(), args.crash)
    local_cluster.initialize(heartbeat_timeout=60)
    _Check(args.out).run()


def _crash(process: int, crash: int) -> None:
    """Process ``crash`` exits after a first collective; the other goes on
    with collectives until JAX's failure detection stops it (or 60 s pass)."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((2, 4), ("data", "model"))
    x = jax.make_array_from_callback(
        (8,), NamedSharding(mesh, P(("data", "model"))), lambda i: jnp.ones(8)[i]
    )
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))
    assert float(total(x)) == 8.0
    print(f"process {process}: first collective done", flush=True)
    if process == crash:
        os._exit(3)  # a crash: no cleanup, no goodbye to the coordinator
    end = time.monotonic() + 60
    while time.monotonic() < end:
        total(x).block_until_ready()
        time.sleep(0.05)
    print(f"process {process}: never noticed its peer was gone", flush=True)


class _Check:
    def __init__(self, out: Path):
        import jax
        import numpy as np
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        import gradtx

        self.jax, self.np, self.gradtx = jax, np, gradtx
        self.P, self.NamedSharding = P, NamedSharding
        self.out = out
        auto = (jax.sharding.AxisType.Auto,) * 2
        self.mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=auto)
        self.position = {d: i for i, d in enumerate(self.mesh.devices.flat)}
        self.arrays: dict = {}
        self.meta: dict = {"index": {}, "specs": {}, "bytes": {}}

    # -- helpers ----------------------------------------------------------
    def put(self, host, spec):
        sharding = self.NamedSharding(self.mesh, spec)
        return self.jax.make_array_from_callback(
            host.shape, sharding, lambda index: host[index]
        )

    def dump(self, name: str, tree) -> None:
        """Every shard this process addresses, keyed by its mesh position."""
        jax = self.jax
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            for shard in leaf.addressable_shards:
                key = (
                    f"{name}{jax.tree_util.keystr(path)}@{self.position[shard.device]}"
                )
                self.arrays[key] = self.np.asarray(shard.data)
                self.meta["index"][key] = [
                    [s.start, s.stop] for s in shard.index if isinstance(s, slice)
                ]

    def same(self, a, b, exact=True) -> None:
        """``a`` and ``b`` hold the same numbers on this process's devices
        (``b`` split as ``a`` is, or replicated)."""
        np = self.np
        for x, y in zip(self.jax.tree.leaves(a), self.jax.tree.leaves(b), strict=True):
            theirs = {t.device: t for t in y.addressable_shards}
            for s in x.addressable_shards:
                t = theirs[s.device]
                v = np.asarray(t.data)
                if t.index != s.index:
                    assert y.sharding.is_fully_replicated, (x.sharding, y.sharding)
                    v = v[s.index]
                u = np.asarray(s.data)
                if exact:
                    np.testing.assert_array_equal(u, v)
                else:  # a few ulp: the order XLA fuses roundings in
                    np.testing.assert_allclose(
                        u.astype(np.float32), v.astype(np.float32), rtol=3e-7, atol=1e-8
                    )

    def check_placement(self, name: str, state, shardings) -> None:
        """The state is where ``shardings`` says; ``per_device_bytes`` answers
        for this process's devices, with the bytes of its shards."""
        jax = self.jax
        for leaf, sharding in zip(
            jax.tree.leaves(state), jax.tree.leaves(shardings), strict=True
        ):
            assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim), (
                name,
                leaf.sharding,
                sharding,
            )
        got = self.gradtx.per_device_bytes(state)
        local = set(jax.local_devices())
        assert set(got) == local, (name, got)
        want = sum(
            math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize
            for x in jax.tree.leaves(state)
        )
        assert set(got.values()) == {want}, (name, got, want)
        self.meta["bytes"][name] = {str(self.position[d]): n for d, n in got.items()}
        self.meta["specs"][name] = [str(s.spec) for s in jax.tree.leaves(shardings)]

    def check_eager_init(self, name, tx, params, state, shardings) -> None:
        """An eager ``init`` on the global params puts every leaf made like
        a param where ``state_shardings`` says (constants such as step
        counts stay unplaced, on a local device), with the same numbers."""
        jax = self.jax
        eager = tx.init(params)
        for leaf, sharding in zip(
            jax.tree.leaves(eager), jax.tree.leaves(shardings), strict=True
        ):
            if isinstance(leaf.sharding, self.NamedSharding):
                assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim), name
            else:
                assert sharding.is_fully_replicated and not leaf.committed, name
        self.same(eager, state)

    def stepper(self, tx, loss, out_shardings):
        """The jitted training step, its outputs pinned to ``out_shardings``."""
        jax, gradtx = self.jax, self.gradtx

        def step(params, state, *batch):
            grads = jax.grad(loss)(params, *batch)
            updates, state = tx.update(grads, state, params)
            return gradtx.apply_updates(params, updates), state

        return jax.jit(step, out_shardings=out_shardings)

    @staticmethod
    def train(step, params, state, steps, *batch) -> list:
        history = []
        for _ in range(steps):
            params, state = step(params, state, *batch)
            history.append((params, state))
        return history

    def save_and_restore(self, name, tx, params, state, shardings, *, zero1=False):
        """An Orbax checkpoint written by every process, read back into the
        state's shardings (and without a target, in Orbax's lossy form) and
        through ``restore_state``."""
        import orbax.checkpoint as ocp

        jax, gradtx = self.jax, self.gradtx
        path = (self.out / "checkpoints" / name).resolve()

        def abstract(x, sharding):
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

        target = {
            "params": jax.tree.map(lambda x: abstract(x, x.sharding), params),
            "state": jax.tree.map(abstract, jax.eval_shape(tx.init, params), shardings),
        }
        with ocp.StandardCheckpointer() as ckpt:
            ckpt.save(path, {"params": params, "state": state})
            ckpt.wait_until_finished()
            restored = ckpt.restore(path, target)
            lossy = ckpt.restore(path)  # no target: lists, dicts and None
        new_params = restored["params"]
        place = shardings if zero1 else None  # else: where init puts it
        new_state = gradtx.restore_state(
            tx, new_params, restored["state"], shardings=place
        )
        rebuilt = gradtx.restore_state(
            tx,
            new_params,
            lossy["state"],
            signature=gradtx.state_signature(state),
            shardings=place,
        )
        self.same(new_params, params)
        for back in (new_state, rebuilt):
            assert jax.tree.structure(back) == jax.tree.structure(state), name
            self.same(back, state)
            for leaf, sharding in zip(
                jax.tree.leaves(back), jax.tree.leaves(shardings), strict=True
            ):
                assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim), name
        return new_params, new_state

    # -- the checks ---------------------------------------------------------
    def run(self) -> None:
        t0 = time.monotonic()
        self.sharded_optimizers()
        t1 = time.monotonic()
        self.zero1()
        t2 = time.monotonic()
        self.meta["seconds"] = {"optimizers": t1 - t0, "zero1": t2 - t1}
        self.meta["process"] = self.jax.process_index()
        self.meta["processes"] = self.jax.process_count()
        stem = self.out / f"process{self.jax.process_index()}"
        self.np.savez(f"{stem}.npz", **self.arrays)
        Path(f"{stem}.json").write_text(json.dumps(self.meta))

    def sharded_optimizers(self) -> None:
        """Representative optimizers on params split over data, model, both
        and none: ``STEPS`` steps, state placed by ``state_shardings``."""
        jax, np, gradtx, P = self.jax, self.np, self.gradtx, self.P
        import jax.numpy as jnp

        leaves = {  # name: (shape, spec)
            "rows": ((16, 12), P("data", None)),  # split across the processes
            "cols": ((8, 24), P(None, "model")),  # split within each process
            "grid": ((16, 40), P("data", "model")),  # both
            "bias": ((32,), P("model")),
            "whole": ((6, 10), P()),  # replicated on all 8 devices
        }
        rng = np.random.default_rng(0)
        params = {
            k: self.put(rng.normal(size=shape).astype(np.float32), spec)
            for k, (shape, spec) in leaves.items()
        }
        param_shardings = {k: x.sharding for k, x in params.items()}

        def loss(params):
            xs = jax.tree.leaves(params)
            total = sum(jnp.sum(x) for x in xs)  # couples every shard
            local = sum(
                jnp.sum(0.5 * (x - 0.3) ** 2 + 0.05 * jnp.cos(3 * x)) for x in xs
            )
            return local + 1e-3 * total**2

        optimizers = {
            "clip+adamw": gradtx.chain(
                gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-2)
            ),
            "lamb": gradtx.lamb(1e-2),
            "muon": gradtx.muon(1e-2),
            "adafactor": gradtx.adafactor(1e-2, min_dim_size_to_factor=8),
            "adam_8bit": gradtx.adam_8bit(1e-2, min_size=0, block_size=8),
            "kahan": gradtx.kahan_summation(gradtx.adam(1e-2)),
            "multisteps": gradtx.MultiSteps(gradtx.adam(1e-2), 2),
        }
        for name, tx in optimizers.items():
            shardings = gradtx.state_shardings(tx, params)
            state = jax.jit(tx.init, out_shardings=shardings)(params)
            self.check_placement(name, state, shardings)
            if jax.process_count() > 1:  # one process: tests/multidevice
                self.check_eager_init(name, tx, params, state, shardings)
            step = self.stepper(tx, loss, (param_shardings, shardings))
            steps = STEPS + MORE if name == "clip+adamw" else STEPS
            history = self.train(step, params, state, steps)
            self.dump(f"{name}/params", history[STEPS - 1][0])
            self.dump(f"{name}/state", history[STEPS - 1][1])
            if name == "clip+adamw":
                self.resume(name, tx, step, history, shardings)

    def resume(self, name, tx, step, history, shardings, *batch, zero1=False):
        """Saved after ``STEPS`` steps, restored, ``MORE`` steps: the
        uninterrupted run's numbers, bit for bit."""
        params, state = self.save_and_restore(
            name, tx, *history[STEPS - 1], shardings, zero1=zero1
        )
        resumed = self.train(step, params, state, MORE, *batch)[-1]
        self.same(resumed, history[-1])
        self.dump(f"{name}/resumed", resumed)

    def zero1(self) -> None:
        """Data parallel: replicated params, the batch split over ``data``,
        the state split over ``data`` by ``zero1_shardings``: each process
        holds half of it; the numbers are the replicated state's."""
        jax, np, gradtx, P = self.jax, self.np, self.gradtx, self.P
        import jax.numpy as jnp

        rng = np.random.default_rng(1)
        shapes = {"w1": (16, 8), "b1": (8,), "w2": (8, 4), "odd": (5, 3)}
        params = {
            k: self.put((0.3 * rng.normal(size=s)).astype(np.float32), P())
            for k, s in shapes.items()
        }
        x = rng.normal(size=(16, 16)).astype(np.float32)
        batch = (self.put(x, P("data")), self.put(np.tanh(x[:, :4]), P("data")))
        replicated = self.NamedSharding(self.mesh, P())

        def loss(params, x, y):
            out = jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"]
            return jnp.mean((out - y) ** 2) + 1e-3 * jnp.sum(params["odd"] ** 2)

        tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-2))
        split = gradtx.zero1_shardings(tx, params, self.mesh, "data")
        whole = gradtx.state_shardings(tx, params)
        state_z = jax.jit(tx.init, out_shardings=split)(params)
        state_r = jax.jit(tx.init, out_shardings=whole)(params)
        self.check_placement("zero1", state_z, split)
        self.check_placement("replicated", state_r, whole)
        # Each process addresses one half of every split leaf, the other
        # process the other half (the parent checks the halves differ).
        halves = 0
        for leaf in jax.tree.leaves(state_z):
            spec = leaf.sharding.spec
            if "data" not in jax.tree.leaves(tuple(spec)):
                continue
            dim = next(i for i, e in enumerate(spec) if "data" in jax.tree.leaves(e))
            seen = {
                s.index[dim].indices(leaf.shape[dim]) for s in leaf.addressable_shards
            }
            # one half on this process's 4 devices (both on one process's 8)
            assert len(seen) == 2 // jax.process_count(), seen
            for start, stop, _ in seen:
                assert stop - start == leaf.shape[dim] // 2, (leaf.shape, seen)
            halves += 1
        assert halves == 6, halves  # mu and nu of w1, b1, w2; not odd or counts
        z_bytes = max(gradtx.per_device_bytes(state_z).values())
        r_bytes = max(gradtx.per_device_bytes(state_r).values())
        assert z_bytes < 0.6 * r_bytes, (z_bytes, r_bytes)

        step_z = self.stepper(tx, loss, (replicated, split))
        history_z = self.train(step_z, params, state_z, STEPS + MORE, *batch)
        step_r = self.stepper(tx, loss, (replicated, whole))
        history_r = self.train(step_r, params, state_r, STEPS, *batch)
        self.same(history_z[STEPS - 1], history_r[-1], exact=False)
        self.dump("zero1/params", history_z[STEPS - 1][0])
        self.dump("zero1/state", history_z[STEPS - 1][1])
        self.dump("zero1-replicated/params", history_r[-1][0])
        self.resume("zero1", tx, step_z, history_z, split, *batch, zero1=True)


if __name__ == "__main__":
    main()
