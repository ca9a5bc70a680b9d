"""``fused_step(tx)``: ``update`` and ``apply_updates`` as one call.

An Adam(W) step must read the params, gradients and both moments and write
the params and moments: 28 bytes per float32 parameter. XLA:CPU compiles the
update and its application into three loops that move ~40 bytes per
parameter (``docs/performance.md``). For an optimizer it recognises —
``adam``, ``adamw``, ``nadam``, ``nadamw``, alone or after
``clip_by_global_norm``, with constant or scheduled learning rate and weight
decay — :func:`fused_step` updates every large float32 leaf with a native CPU
kernel that reads and writes each array once, in place. Everything else (the
step counts, schedules, the clipping norm, small leaves, other dtypes, other
platforms, other optimizers) runs exactly as ``tx.update`` +
``apply_updates`` would.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .._core import placement as _sharding
from .._core.base import GradientTransformation, apply_updates
from .._core.traits import Description, describe
from ..transforms.adam import adam_scalars
from ..transforms.clipping import global_clip_factor
from . import native as _native

DEFAULT_MIN_SIZE = 2**16
"""Leaves with fewer elements stay on XLA: a kernel call costs microseconds."""


class _Member(NamedTuple):
    path: tuple[int, ...]  # where its state sits in the chain's nested tuples
    description: Description


class _Plan(NamedTuple):
    clip: _Member | None
    adam: _Member
    decay: _Member | None
    lr: _Member


def _members(tx: Any, path: tuple[int, ...] = ()) -> list[_Member] | None:
    description = describe(tx)
    if description is None:
        return None
    if description.kind != "chain":
        return [_Member(path, description)]
    out: list[_Member] = []
    for i, member in enumerate(description.args["members"]):
        inner = _members(member, (*path, i))
        if inner is None:
            return None
        out.extend(inner)
    return out


def _plan(tx: Any) -> _Plan | None:
    """How ``tx`` maps onto the kernel, or ``None`` when it does not."""
    members = _members(tx)
    if not members:
        return None
    kinds = [m.description.kind for m in members]
    clip = members.pop(0) if kinds[0] == "clip_by_global_norm" else None
    kinds = [m.description.kind for m in members]
    if kinds[:1] != ["adam"] or kinds[-1:] not in (["scale"], ["schedule"]):
        return None
    decay = None
    if kinds[1:-1] == ["add_decayed_weights"]:
        decay = members[1]
    elif len(kinds) != 2:
        return None
    adam = members[0]
    if any(adam.description.args[k] is not None for k in ("mu_dtype", "nu_dtype")):
        return None
    return _Plan(clip, adam, decay, members[-1])


def _at(state: Any, path: tuple[int, ...]) -> Any:
    for i in path:
        state = state[i]
    return state


def _replace_at(state: Any, path: tuple[int, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    items = list(state)
    items[head] = _replace_at(state[head], rest, value)
    return tuple(items) if type(state) is tuple else type(state)(*items)


def _scheduled(member: _Member, key: str, state: Any) -> Any:
    value = member.description.args[key]
    return value(_at(state, member.path).count) if callable(value) else value


def _scalars(plan: _Plan, grads: Any, state: Any, new_state: Any) -> dict[str, Any]:
    """The kernel's runtime scalars, from the functions ``tx.update`` uses.

    Adam's coefficients come from :func:`gradtx.transforms.adam.adam_scalars`,
    as in ``scale_by_adam``; the learning rate, weight decay and clip factor are
    evaluated as their transformations evaluate them.
    """
    hyper = plan.adam.description.args
    count = _at(new_state, plan.adam.path).count
    s = adam_scalars(
        hyper["b1"], hyper["b2"], hyper["eps"], hyper["eps_root"], count,
        hyper["nesterov"],
    )  # fmt: skip
    lr = plan.lr.description
    if lr.kind == "scale":
        nlr = lr.args["step_size"]
    else:
        nlr = lr.args["step_size_fn"](_at(state, plan.lr.path).count)
    wd = 0.0
    if plan.decay is not None:
        wd = _scheduled(plan.decay, "weight_decay", state)
    f = None  # no clip factor: the kernel then uses g as it is
    if plan.clip is not None:
        f = global_clip_factor(grads, plan.clip.description.args["max_norm"])
    scalars = s._asdict()
    scalars["c1n"] = s.c1 if s.c1n is None else s.c1n  # read only with Nesterov
    return dict(f=f, **scalars, wd=wd, nlr=nlr)


def _eligible(min_size: int, *leaves: Any) -> bool:
    first = leaves[0]
    return (
        all(
            isinstance(x, jax.Array | jax.core.Tracer)
            and x.dtype == jnp.float32
            and x.shape == first.shape
            for x in leaves
        )
        and first.size >= min_size
        # The kernel sees whole arrays; on a mesh the plain step partitions.
        and not any(_sharding.on_mesh(x) for x in leaves)
    )


def fused_step(
    tx: GradientTransformation, *, min_size: int = DEFAULT_MIN_SIZE
) -> Callable[..., tuple[Any, Any]]:
    """``step(params, state, grads) -> (params, state)``: update and apply at once.

    Equivalent to::

        updates, state = tx.update(grads, state, params, **extra_args)
        params = gradtx.apply_updates(params, updates)

    The arguments come in the order of the results, so that ``jax.jit(step,
    donate_argnums=(0, 1))`` pairs each donated buffer with the result that
    replaces it (JAX pairs donated inputs with outputs of the same shape in
    order; another order costs a copy of each large leaf).

    For ``adam``/``adamw``/``nadam``/``nadamw`` (optionally chained after
    ``clip_by_global_norm``; constant or scheduled learning rate and weight
    decay; no ``mu_dtype`` or ``nu_dtype``; no mask), on the CPU, every
    float32 leaf with at least ``min_size`` elements is updated by a native
    kernel in one pass over memory, in place when the step donates params
    and state (``jax.jit(..., donate_argnums=...)``). Those leaves agree with
    the plain step to float32 rounding (``docs/performance.md`` states the
    measured ulps); all other leaves, the state's counters and every other
    optimizer are computed by the plain step, bit for bit. Without a C++
    compiler (or with the environment variable ``GRADTX_NATIVE=0``) the whole
    step is the plain one, and so are leaves on several devices (a mesh under
    ``jax.sharding``, or inside ``shard_map``): the compiler partitions the
    plain step, where the kernel would need whole arrays
    (``docs/sharding.md``).

    Args:
      tx: any gradient transformation.
      min_size: leaves with fewer elements stay on XLA.

    Returns:
      The step function; ``step.native`` tells whether ``tx`` was recognised
      and the kernel is available.

    Examples:
      >>> import gradtx, jax, jax.numpy as jnp
      >>> tx = gradtx.adamw(1e-3)
      >>> step = jax.jit(gradtx.fused_step(tx), donate_argnums=(0, 1))
      >>> params = {"w": jnp.ones((4, 4))}
      >>> grads = {"w": jnp.full((4, 4), 0.5)}
      >>> params, state = step(params, tx.init(params), grads)
      >>> round(float(params["w"][0, 0]), 6)
      0.999
    """
    if not hasattr(tx, "init") or not hasattr(tx, "update"):
        raise TypeError(
            f"fused_step: `tx` must be a gradient transformation, got {tx!r}."
        )
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise ValueError(
            f"fused_step: `min_size` must be an int >= 1, got {min_size!r}."
        )
    plan = _plan(tx)

    def step(params, state, grads, **extra_args):
        updates, new_state = tx.update(grads, state, params, **extra_args)
        new_params = apply_updates(params, updates)
        if plan is None or not _native.available():
            return new_params, new_state
        return _native_leaves(
            plan, min_size, grads, state, params, new_params, new_state
        )

    step.native = plan is not None and _native.available()
    return step


def _native_leaves(plan, min_size, grads, state, params, new_params, new_state):
    """``new_params`` and ``new_state`` with the large leaves from the kernel."""
    old = _at(state, plan.adam.path)
    new = _at(new_state, plan.adam.path)
    treedef = jax.tree.structure(params)
    p_old, g, m_old, v_old = (
        treedef.flatten_up_to(t) for t in (params, grads, old.mu, old.nu)
    )
    p_new, m_new, v_new = (
        treedef.flatten_up_to(t) for t in (new_params, new.mu, new.nu)
    )
    scalars = _scalars(plan, grads, state, new_state)
    nesterov = plan.adam.description.args["nesterov"]
    for i, leaves in enumerate(zip(p_old, g, m_old, v_old, strict=True)):
        if not _eligible(min_size, *leaves):
            continue

        def kernel(*leaves):
            return _native.adam_leaf_step(*leaves, nesterov=nesterov, **scalars)

        plain = (p_new[i], m_new[i], v_new[i])
        p_new[i], m_new[i], v_new[i] = lax.platform_dependent(
            *leaves, cpu=kernel, default=lambda *_, plain=plain: plain
        )
    new = new._replace(mu=treedef.unflatten(m_new), nu=treedef.unflatten(v_new))
    return treedef.unflatten(p_new), _replace_at(new_state, plan.adam.path, new)
