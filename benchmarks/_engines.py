"""The JAX columns of the tables: Optax, gradtx, and any later update engine.

An :class:`Engine` turns a recipe into a gradient transformation and says how
to apply its updates; it may also change the layout of the params and
gradients it is given (``prepare``: for instance packing small leaves into a
few buffers, the way a model would hold them). Engines are created by
zero-argument factories, looked up by name in :data:`FACTORIES`, or given on
the command line as ``--engine package.module:factory``. A factory that cannot
run here raises :class:`Unavailable`; the run then skips that column and
prints the reason.

Two hooks wait for engines still being written: ``gradtx-packed`` runs
``gradtx.packed(tx)`` when gradtx has a ``packed`` wrapper, and
``gradtx-pack`` steps params and grads laid out by ``gradtx.pack`` when gradtx
exports ``pack``. To add a column, register a factory::

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


def _gradtx_packed() -> Engine:
    import gradtx

    packed = getattr(gradtx, "packed", None)
    if packed is None:
        raise Unavailable("gradtx has no `packed` wrapper yet")
    return Engine(
        "gradtx-packed",
        lambda recipe: packed(recipe.build(gradtx)),
        gradtx.apply_updates,
        getattr(gradtx, "__version__", ""),
    )


def _gradtx_pack() -> Engine:
    import gradtx

    pack = getattr(gradtx, "pack", None)
    if pack is None:
        raise Unavailable("gradtx has no `pack` function yet")
    return Engine(
        "gradtx-pack",
        lambda recipe: recipe.build(gradtx),
        gradtx.apply_updates,
        getattr(gradtx, "__version__", ""),
        prepare=pack,
    )


FACTORIES: dict[str, Callable[[], Engine]] = {
    "optax": lambda: _library("optax"),
    "gradtx": lambda: _library("gradtx"),
    "gradtx-packed": _gradtx_packed,
    "gradtx-pack": _gradtx_pack,
}

DEFAULT_ENGINES = ("optax", "gradtx", "gradtx-packed", "gradtx-pack")


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
