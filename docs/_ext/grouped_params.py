"""A griffe extension: one parameter-table row per argument.

gradtx's docstrings describe related arguments together, as
``b1, b2: moment decays in [0, 1).`` or ``learning_rate, b1, b2: as in
:func:`adam`.`` (short, and natural in ``help()``). Google-style parsing takes
such a line for one parameter named ``b1, b2``, so the API page would show one
row with no type and the default "required". This splits each such entry of an
``Args:`` section into one entry per name, each with the shared description,
so every row gets its own type and default from the signature.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SECTION = re.compile(r"^(?P<indent>\s*)(Args|Arguments|Parameters|Params):\s*$")
_GROUP = re.compile(
    r"^(?P<indent>\s+)(?P<names>\w+(?:\s*,\s*\w+)+)(?P<type>\s*\([^()]*\))?:(?P<rest>.*)$"
)


def split(text: str) -> str:
    """``text`` with each grouped ``a, b: …`` argument entry split per name."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    section: str | None = None  # the indent of the current Args: header
    while i < len(lines):
        line = lines[i]
        header = _SECTION.match(line)
        if header:
            section = header["indent"]
            out.append(line)
            i += 1
            continue
        if section is not None and line.strip():
            indent = line[: len(line) - len(line.lstrip())]
            if len(indent) <= len(section):
                section = None
        group = _GROUP.match(line) if section is not None else None
        if not group:
            out.append(line)
            i += 1
            continue
        item = group["indent"]
        body = [group["rest"]]
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or lines[i].startswith(item + " ")
        ):
            body.append(lines[i])
            i += 1
        trailing = 0
        while len(body) > 1 and not body[-1].strip():
            body.pop()
            trailing += 1
        for name in re.split(r"\s*,\s*", group["names"]):
            out.append(f"{item}{name}{group['type'] or ''}:{body[0]}")
            out.extend(body[1:])
        out.extend([""] * trailing)
    return "\n".join(out)


class GroupedParams(griffe.Extension):
    """Splits grouped argument entries when griffe loads an object."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = split(obj.docstring.value)
