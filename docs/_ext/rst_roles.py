"""A griffe extension: reStructuredText cross-reference roles in docstrings.

gradtx's docstrings name other objects the way Python's documentation tools
do, ``:func:`adam```, ``:class:`~gradtx.GradientTransformation```, ``:mod:`.muon```
(readable as plain text in ``help()``). mkdocstrings renders docstrings as
Markdown, where those roles would show as literal text. Once griffe has loaded
the whole package, this rewrites every role:

- a role naming an object that has its own entry on an API page becomes an
  mkdocs-autorefs link, ``[`adam`][gradtx.adam]``, to that entry;
- any other role (``jax.lax.scan``, a private helper, a state field) becomes
  inline code, never a link to nothing.

The build runs with ``--strict``, so a link this module gets wrong (to an
entry that is not rendered) fails the build instead of shipping broken.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator
from typing import Any

import griffe

# :func:`x`, :py:func:`x`, :func:`~a.b.x`, :func:`!x`, :func:`title <a.b.x>`.
ROLE = re.compile(
    r"(?<!`):(?:py:)?(?P<kind>func|class|meth|attr|mod|data|obj|exc|const)"
    r":`(?P<body>[^`]+)`"
)
_CALLABLE = {"func", "class", "meth", "mod", "exc"}
_TITLED = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
_DIRECTIVE = re.compile(r"^::: (?P<path>[\w.]+)[ \t]*$", re.M)


def split_role(body: str) -> tuple[str, str, bool]:
    """``(title, target, may_link)`` for a role's text between backticks."""
    body = " ".join(body.split())
    titled = _TITLED.match(body)
    if titled:
        return titled["title"], titled["target"].strip(), True
    may_link = not body.startswith("!")
    target = body.lstrip("!~")
    title = target.rsplit(".", 1)[-1] if body.lstrip("!").startswith("~") else target
    return title, target, may_link


def convert(text: str, resolve: Any = None) -> str:
    """``text`` with its roles as links (where ``resolve`` gives an id).

    ``resolve(target, kind)`` maps a role's target and kind (``"func"``, …)
    to the autorefs identifier of its API entry, or ``None``; without it every
    role becomes inline code.
    """

    def replace(match: re.Match[str]) -> str:
        title, target, may_link = split_role(match["body"])
        identifier = resolve(target, match["kind"]) if (resolve and may_link) else None
        code = f"`{title}`"
        return f"[{code}][{identifier}]" if identifier else code

    return ROLE.sub(replace, text)


def _directives(pages: pathlib.Path) -> Iterator[tuple[str, Any]]:
    """``(path, members)`` of each ``::: path`` on the API pages.

    ``members`` is ``None`` (the default: every documented member), ``False``,
    or the list of member names given under ``options: members:``.
    """
    for page in sorted(pages.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in _DIRECTIVE.finditer(text):
            options = text[match.end() :].split("\n:::", 1)[0]
            members: Any = None
            listed = re.search(r"^\s+members:[ \t]*(\S*)[ \t]*$", options, re.M)
            if listed and listed[1].lower() == "false":
                members = False
            elif listed and not listed[1]:
                rest = options[listed.end() :]
                members = re.findall(r"^\s+- (\w+)[ \t]*$", rest, re.M)
            yield match["path"], members


def _get(collection: Any, path: str) -> Any:
    try:
        return collection[path]
    except (KeyError, ValueError, griffe.AliasResolutionError):
        return None


def _target(obj: Any) -> Any:
    try:
        return obj.final_target if obj.is_alias else obj
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _rendered_members(obj: Any, members: Any) -> Iterator[tuple[str, Any]]:
    """The members mkdocstrings renders with its default options."""
    if members is False or not (obj.is_module or obj.is_class):
        return
    for name, member in obj.members.items():
        if members is not None:
            if name in members:
                yield name, member
            continue
        if name.startswith("_") or (obj.is_module and not member.is_public):
            continue
        target = _target(member)
        if target is None or target.docstring is None:
            continue  # show_if_no_docstring: false
        if obj.is_class and member.is_alias:
            continue  # inherited or imported into the class
        yield name, member


class RstRoles(griffe.Extension):
    """Rewrites every docstring's roles once the package is loaded.

    ``pages``: the folder of API pages whose ``::: path`` entries are the link
    targets (relative to where ``mkdocs`` runs).
    """

    def __init__(self, pages: str = "docs/api") -> None:
        self.pages = pathlib.Path(pages)

    def on_package(self, *, pkg: Any, loader: Any, **kwargs: Any) -> None:
        collection = loader.modules_collection
        entries: dict[str, str] = {}  # canonical path -> identifier

        def add(identifier: str, obj: Any) -> None:
            target = _target(obj)
            if target is not None:
                entries.setdefault(target.canonical_path, identifier)

        for path, members in _directives(self.pages):
            obj = _get(collection, path) if path.split(".")[0] == pkg.name else None
            if obj is None:
                continue
            add(path, obj)
            target = _target(obj)
            if target is not None:
                for name, member in _rendered_members(target, members):
                    add(f"{path}.{name}", member)

        for obj in _walk(pkg):
            if obj.docstring is None:
                continue
            resolve = _resolver(obj, collection, entries, pkg.name)
            obj.docstring.value = convert(obj.docstring.value, resolve)


def _walk(obj: Any) -> Iterator[Any]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def _resolver(obj: Any, collection: Any, entries: dict[str, str], root: str) -> Any:
    module = obj if obj.is_module else obj.module
    scopes = [obj.path] if (obj.is_class or obj.is_module) else []
    parent = obj.parent
    while parent is not None:
        scopes.append(parent.path)
        parent = parent.parent
    package = module.path if module.is_package else module.path.rpartition(".")[0]

    def resolve(target: str, kind: str) -> str | None:
        if target.startswith("."):
            candidates = [package + target]
        else:
            # Innermost scope first, then the package, then the name as given.
            candidates = [f"{scope}.{target}" for scope in scopes] + [target]
        for candidate in candidates:
            if candidate.split(".")[0] != root:
                continue
            found = _get(collection, candidate)
            if found is None:
                continue
            resolved = _target(found)
            if resolved is None:
                return None
            if kind in _CALLABLE and resolved.is_attribute and resolved.parent.is_class:
                continue  # a field of a class in scope, not the function named
            return entries.get(resolved.canonical_path)
        return None

    return resolve
