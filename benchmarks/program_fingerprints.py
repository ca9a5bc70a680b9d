"""Fingerprints of the compiled one-device step, to compare two checkouts.

Prints one short hash per optimizer of the optimised XLA:CPU program of
``update`` + ``apply_updates`` (and of ``fused_step``), with source locations
and metadata stripped. Run it with ``PYTHONPATH`` pointing at each checkout:
equal hashes mean both compile to the same program, so a refactoring cannot
have changed the speed ratios (the native kernel's own code aside, which the
program only calls)::

    PYTHONPATH=. python benchmarks/program_fingerprints.py
"""

import hashlib
import re

import jax
import jax.numpy as jnp

import gradtx

PARAMS = {
    "w": jnp.ones((64, 32)),
    "b": jnp.ones((32,)),
    "v": [jnp.ones((16,)) * i for i in range(3)],
}
CASES = {
    "adamw": lambda: gradtx.adamw(1e-3, weight_decay=1e-4),
    "clip_adamw": lambda: gradtx.chain(
        gradtx.clip_by_global_norm(1.0), gradtx.adamw(1e-3)
    ),
    "sgd_momentum": lambda: gradtx.sgd(0.1, momentum=0.9, nesterov=True),
    "lamb": lambda: gradtx.lamb(1e-3),
    "lion": lambda: gradtx.lion(1e-3),
    "muon": lambda: gradtx.muon(1e-3),
    "adafactor": lambda: gradtx.adafactor(1e-3),
    "adam_8bit": lambda: gradtx.adam_8bit(1e-3),
    "prodigy": lambda: gradtx.prodigy(),
    "novograd": lambda: gradtx.novograd(1e-3),
    "sm3": lambda: gradtx.sm3(1e-3),
    "radam": lambda: gradtx.radam(1e-3),
    "multisteps": lambda: gradtx.MultiSteps(gradtx.adam(1e-3), 4),
    "kahan": lambda: gradtx.kahan_summation(gradtx.adamw(1e-3)),
    "inject_adam": lambda: gradtx.inject_hyperparams(gradtx.adam)(
        learning_rate=1e-3, b2=0.999
    ),
    "packed_adamw": lambda: gradtx.packed(gradtx.adamw(1e-3), min_leaf_size=100),
}
_HEADER = re.compile(r"^(\d+ |FileNames|FunctionNames|FileLocations|StackFrames)")


def fingerprint(text: str) -> str:
    """A hash of an HLO module's text without names, metadata and locations."""
    text = re.sub(r", metadata=\{[^}]*\}", "", text)
    text = re.sub(r"HloModule \S+", "HloModule", text)
    text = re.sub(r"stack_frame_id=\d+", "", text)
    lines = [line for line in text.splitlines() if not _HEADER.match(line)]
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()[:12]


def step_for(tx):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    return step


def main() -> None:
    grads = jax.tree.map(lambda x: 0.1 * x, PARAMS)
    for name, make in CASES.items():
        tx = make()
        lowered = jax.jit(step_for(tx)).lower(PARAMS, tx.init(PARAMS), grads)
        print(name, fingerprint(lowered.compile().as_text()))
    big = {"w": jnp.ones((512, 256))}
    tx = gradtx.adamw(1e-3)
    lowered = jax.jit(gradtx.fused_step(tx)).lower(big, tx.init(big), big)
    print("fused_adamw", fingerprint(lowered.compile().as_text()))


if __name__ == "__main__":
    main()
