"""Per-example maps and gradients, microbatched: ``micro_vmap``, ``micro_grad``.

``micro_vmap`` is ``jax.vmap`` evaluated one microbatch at a time (through
:func:`gradtx.wrappers.microbatch.microbatch`), with the option of reducing
the mapped axis on the fly (SUM, MEAN, …) instead of materialising it.
``micro_grad`` builds on it the per-example gradient pattern of
differentially private and variance-aware training: per-example value and
gradient, a transformation of each gradient (clipping, squaring, …), the
transformed gradients reduced over the batch, and per-example values and
metrics returned alongside. Names, arguments and numbers are those of
``optax.microbatching``.
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .microbatch import AccumulationType, Accumulator, microbatch, resolve_accumulator

__all__ = ["IndividualOutputs", "micro_grad", "micro_vmap"]


class IndividualOutputs(NamedTuple):
    """The per-example outputs of :func:`micro_grad`, each with a batch axis."""

    values: Any
    """The value of ``fun`` on each example."""
    metrics: Any
    """``metrics_fn`` of each example's gradient."""
    aux: Any
    """``fun``'s auxiliary output on each example (``None`` without ``has_aux``)."""


def micro_vmap(
    fun: Callable[..., Any],
    in_axes: int | Sequence[int] = 0,
    out_axes: Any = 0,
    *,
    microbatch_size: int | None = None,
    vmap_fn: Callable[..., Any] = jax.vmap,
    accumulator: Accumulator | AccumulationType | Any = AccumulationType.CONCAT,
    num_real_microbatches: int | jax.Array | None = None,
) -> Callable[..., Any]:
    """``vmap(fun, in_axes)`` run one microbatch at a time, optionally reduced.

    The batch (the axes ``in_axes`` of the positional arguments, axis 0 of
    keyword arguments) is cut into microbatches of ``microbatch_size`` rows
    (rows ``i, i + n, …`` form microbatch ``i``, as in :func:`microbatch`);
    ``vmap_fn(fun, in_axes, 0)`` is evaluated on each in a sequential loop, so
    only one microbatch's intermediates are alive at a time. With the default
    CONCAT the result is ``vmap(fun, in_axes)(*args)``; SUM and MEAN give its
    sum or mean over the mapped axis without ever holding the whole of it.
    ``accumulator`` may be a pytree prefix of the output.

    Unlike Optax, an ``int`` ``in_axes`` maps every positional argument along
    that axis (Optax accepts a single positional argument then); a sequence
    of ``in_axes`` must have one entry per positional argument, ``None`` for
    the unmapped ones.

    Args:
      fun: the function to map.
      in_axes: the mapped axis of each positional argument (``None``: not
        mapped), or one ``int`` for all.
      out_axes: must be 0 (other values raise ``NotImplementedError``, as in
        Optax).
      microbatch_size: the rows per microbatch; ``None`` maps the whole batch
        at once.
      vmap_fn: a function with ``jax.vmap``'s signature, e.g. a
        ``functools.partial`` of it with extra options.
      accumulator: an :class:`AccumulationType`, an :class:`Accumulator`, or a
        pytree prefix of ``fun``'s output with those at its leaves.
      num_real_microbatches: run only the first this many microbatches.

    Returns:
      A function of the same arguments as ``fun``, each with a batch axis.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.microbatching import AccumulationType
      >>> from gradtx.microbatching import micro_vmap
      >>> micro_vmap(lambda x: x**2, microbatch_size=2)(jnp.arange(4.0)).tolist()
      [0.0, 1.0, 4.0, 9.0]
      >>> total = micro_vmap(lambda x: x**2, accumulator=AccumulationType.SUM)
      >>> float(total(jnp.arange(4.0)))
      14.0
    """
    if out_axes != 0:
        raise NotImplementedError(
            f"micro_vmap: `out_axes` must be 0, got {out_axes!r} (as in Optax)."
        )
    if not callable(vmap_fn):
        raise TypeError(f"micro_vmap: `vmap_fn` must be callable, got {vmap_fn!r}.")

    def mapped(*args, **kwargs):
        if isinstance(in_axes, int):
            axes = (in_axes,) * len(args)
        else:
            axes = tuple(in_axes)
            if len(axes) != len(args):
                raise ValueError(
                    f"micro_vmap: `in_axes` has {len(axes)} entries but the call "
                    f"got {len(args)} positional argument(s)."
                )

        def reduced(*a, kwargs):
            out = vmap_fn(fun, axes, 0)(*a, **kwargs)
            rows = jnp.shape(jax.tree.leaves(out)[0])[0]
            return resolve_accumulator(accumulator, rows).aggregate(out)

        batched = tuple(i for i, ax in enumerate(axes) if ax is not None)
        run = microbatch(
            reduced,
            batched,
            microbatch_size,
            accumulator,
            argnames="kwargs",
            in_axes=(*(ax for ax in axes if ax is not None), 0),
            num_real_microbatches=num_real_microbatches,
        )
        return run(*args, kwargs=kwargs)

    return mapped


def _identity(x: Any) -> Any:
    return x


def _no_metrics(x: Any) -> None:
    del x


def micro_grad(
    fun: Callable[..., Any],
    has_aux: bool = False,
    argnums: int | Sequence[int] = 0,
    *,
    batch_argnums: int | Sequence[int] = 1,
    keep_batch_dim: bool = True,
    microbatch_size: int | None = None,
    accumulator: Accumulator | AccumulationType | Any = AccumulationType.SUM,
    transform_fn: Callable[[Any], Any] = _identity,
    metrics_fn: Callable[[Any], Any] = _no_metrics,
    num_real_microbatches: int | jax.Array | None = None,
) -> Callable[..., tuple[Any, IndividualOutputs]]:
    """Per-example gradients, transformed, then reduced over the batch.

    For a batch of examples ``x_1, …, x_B`` (the arguments ``batch_argnums``,
    mapped along axis 0) and ``g_b = ∇ fun(…, x_b, …)`` (with respect to
    ``argnums``), the returned function gives

    .. code-block:: text

        (reduce_b transform_fn(g_b),
         IndividualOutputs(values=[fun(x_b)]_b, metrics=[metrics_fn(g_b)]_b,
                           aux=[aux(x_b)]_b))

    where ``reduce`` is ``accumulator`` (SUM by default; MEAN for an
    average), and the per-example values, metrics and auxiliary outputs keep
    their batch axis. Clipping each ``g_b`` in ``transform_fn`` gives the
    clipped sum of DP-SGD; ``transform_fn=lambda g: (g, g**2)`` with MEAN
    gives the first two moments. The examples are processed
    ``microbatch_size`` at a time (:func:`micro_vmap`). With
    ``keep_batch_dim`` (default) ``fun`` sees each example with a batch axis
    of size 1, so a loss written for batches works unchanged.

    Args:
      fun: the function to differentiate.
      has_aux: whether ``fun`` returns ``(value, aux)``.
      argnums: the argument(s) to differentiate with respect to.
      batch_argnums: the argument(s) that carry the batch axis (axis 0).
      keep_batch_dim: give ``fun`` each example with a size-1 batch axis.
      microbatch_size: examples per microbatch (``None``: all at once).
      accumulator: how the transformed gradients are reduced over the batch.
      transform_fn: applied to each example's gradient before the reduction.
      metrics_fn: applied to each example's gradient; its per-example results
        are returned in ``IndividualOutputs.metrics``.
      num_real_microbatches: run only the first this many microbatches.

    Returns:
      A function of ``fun``'s arguments returning
      ``(reduced transformed gradients, IndividualOutputs)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from gradtx.microbatching import micro_grad
      >>> loss = lambda w, x, y: 0.5 * jnp.mean((x @ w - y) ** 2)
      >>> grad, out = micro_grad(loss, batch_argnums=(1, 2))(
      ...     jnp.zeros(1), jnp.ones((4, 1)), jnp.array([0.0, 2.0, 4.0, 6.0]))
      >>> grad.tolist(), out.values.tolist()
      ([-12.0], [0.0, 2.0, 8.0, 18.0])

    References:
      Per-example gradients with microbatching as in Optax's
      ``optax.microbatching.micro_grad`` (see also
      https://arxiv.org/abs/2510.00236).
    """
    owner = "micro_grad"
    batch_argnums = (
        (batch_argnums,) if isinstance(batch_argnums, int) else tuple(batch_argnums)
    )
    if not batch_argnums or any(
        isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in batch_argnums
    ):
        raise ValueError(
            f"{owner}: `batch_argnums` must be one or more argument indices "
            f"(ints >= 0), got {batch_argnums!r}."
        )
    with_aux = fun if has_aux else (lambda *a, **k: (fun(*a, **k), None))
    value_and_grad = jax.value_and_grad(with_aux, argnums, has_aux=True)

    def per_example(*args, **kwargs):
        (value, aux), grad = value_and_grad(*args, **kwargs)
        return transform_fn(grad), IndividualOutputs(value, metrics_fn(grad), aux)

    def gradients(*args, **kwargs):
        if max(batch_argnums) >= len(args):
            raise ValueError(
                f"{owner}: `batch_argnums` has {max(batch_argnums)} but the call "
                f"got {len(args)} positional argument(s)."
            )
        args = list(args)
        if keep_batch_dim:
            for i in batch_argnums:
                args[i] = jax.tree.map(lambda x: jnp.expand_dims(x, 1), args[i])
        axes = [0 if i in batch_argnums else None for i in range(len(args))]
        mapped = micro_vmap(
            per_example,
            in_axes=axes,
            accumulator=(accumulator, AccumulationType.CONCAT),
            microbatch_size=microbatch_size,
            num_real_microbatches=num_real_microbatches,
        )
        return mapped(*args, **kwargs)

    return gradients
