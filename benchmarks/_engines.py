"""The JAX columns of the tables: Optax, gradtx, and any later update engine.

An :class:`Engine` turns a recipe into a gradient transformation and says how
to apply its updates; it may also change the layout of the params and
gradients it is given (``prepare``: for instance packing small leaves into a
few buffers, the way a model would hold them). Engines are created by
zero-argument factories, looked up by name in :data:`FACTORIES`, or given on
the command line as ``--engine package.module:factory``. A factory that cannot
run here raises :class:`Unavailable`; the run then skips that column and
prints the reason.

gradtx's engines: ``gradtx-fused`` steps with ``gradtx.fused_step(tx)``
(update and apply in one call, the native kernel on large float32 leaves),
``gradtx-packed`` runs the ``gradtx.packed(tx)`` wrapper, ``gradtx-pack``
steps params and grads laid out by ``gradtx.pack``, and ``gradtx-pack-fused``
steps that layout with ``gradtx.fused_step``. To add a column, register
a factory::

    FACTORIES["gradtx-fast"] = lambda: Engine(
        "gradtx-fast", lambda recipe: fast(recipe.build(gradtx)),
        gradtx.apply_updates, version=...)
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from typing import Any

from ._recipes import Recipe

REFERENCE = "optax"
"""Ratios are taken to this engine's time, round by round."""


class Unavailable(Exception):
    """An engine that cannot run in this environment; the message says why."""


@dataclasses.dataclass(frozen=True)
class Engine:
    """A JAX column: recipe -> gradient transformation, plus ``apply_updates``."""

    name: str
    make: Callable[[Recipe], Any]
    apply_updates: Callable[[Any, Any], Any]
    version: str = ""
    prepare: Callable[[Any], Any] | None = None  # params or grads -> engine layout
    # tx -> step(params, state, grads) -> (params, state); default: update + apply
    fuse: Callable[[Any], Callable[..., Any]] | None = None
    spec: str = ""  # how ``--engine`` named it; compile children rebuild from it


def _library(module_name: str) -> Engine:
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise Unavailable(f"{module_name} is not installed ({error})") from error
    return Engine(
        module_name,
        lambda recipe: recipe.build(module),
        module.apply_updates,
        getattr(module, "__version__", ""),
    )


def _gradtx(name: str, needs: str, wrap=None, **fields: Any) -> Engine:
    """A gradtx column that needs ``gradtx.<needs>`` (skipped without it)."""
    import gradtx

    found = getattr(gradtx, needs, None)
    if found is None:
        raise Unavailable(f"gradtx has no `{needs}` yet")
    fields = {key: found if value is True else value for key, value in fields.items()}
    wrap = found if wrap is True else (wrap or (lambda tx: tx))
    return Engine(
        name,
        lambda recipe: wrap(recipe.build(gradtx)),
        gradtx.apply_updates,
        getattr(gradtx, "__version__", ""),
        **fields,
    )


def _packed(tx: Any) -> Any:
    """``gradtx.packed(tx)``: the checked way to step ``gradtx.pack``'s trees
    (it refuses what is not elementwise and passes packed trees through)."""
    import gradtx

    return gradtx.packed(tx)


def _gradtx_pack_fused() -> Engine:
    import gradtx

    fused = _gradtx("gradtx-pack-fused", "fused_step", fuse=True)
    return dataclasses.replace(fused, prepare=gradtx.pack)


FACTORIES: dict[str, Callable[[], Engine]] = {
    "optax": lambda: _library("optax"),
    "gradtx": lambda: _library("gradtx"),
    "gradtx-packed": lambda: _gradtx("gradtx-packed", "packed", wrap=True),
    "gradtx-pack": lambda: _gradtx("gradtx-pack", "pack", _packed, prepare=True),
    "gradtx-fused": lambda: _gradtx("gradtx-fused", "fused_step", fuse=True),
    "gradtx-pack-fused": _gradtx_pack_fused,
}

DEFAULT_ENGINES = (
    "optax",
    "gradtx",
    "gradtx-fused",
    "gradtx-packed",
    "gradtx-pack",
    "gradtx-pack-fused",
)


def _factory(spec: str) -> Callable[[], Engine]:
    if spec in FACTORIES:
        return FACTORIES[spec]
    if ":" not in spec:
        known = ", ".join(FACTORIES)
        raise ValueError(
            f"unknown engine {spec!r}: use one of {known} or 'package.module:factory'"
        )
    module_name, _, attribute = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise Unavailable(f"cannot load {spec!r}: {error}") from error


def resolve(specs: Sequence[str]) -> tuple[list[Engine], list[str]]:
    """The engines that can run, reference first, and a note per skipped one."""
    engines: list[Engine] = []
    notes: list[str] = []
    for spec in dict.fromkeys(specs):
        try:
            engine = _factory(spec)()
        except Unavailable as reason:
            notes.append(f"engine {spec} skipped: {reason}")
            continue
        engines.append(dataclasses.replace(engine, spec=spec))
    engines.sort(key=lambda engine: engine.name != REFERENCE)
    return engines, notes


def by_spec(spec: str) -> Engine:
    """One engine from a name or ``module:factory`` (used by compile children)."""
    return _factory(spec)()
