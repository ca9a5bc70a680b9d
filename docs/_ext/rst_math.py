"""A griffe extension: reStructuredText maths in docstrings, rendered by MathJax.

gradtx's docstrings write their update rules the way Python's documentation
tools do, ``.. math::`` blocks and ``:math:`x``` roles (readable as plain text
in ``help()``). mkdocstrings renders docstrings as Markdown, so this turns
them into ``\\[...\\]`` and ``\\(...\\)``, which ``pymdownx.arithmatex``
(``generic: true``) hands to MathJax (``mkdocs.yml``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":math:`([^`]+)`")


def _blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped != ".. math::":
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        i += 1
        body: list[str] = []
        while i < len(lines) and (
            not lines[i].strip() or lines[i].startswith(indent + " ")
        ):
            body.append(lines[i].strip())
            i += 1
        while body and not body[-1]:
            body.pop()
        maths = " ".join(b for b in body if b)
        if "\\begin" not in maths and ("&" in maths or "\\\\" in maths):
            # Rows (``\\``) and alignment points (``&``) need an environment,
            # as Sphinx gives them; bare, MathJax ignores the first and
            # reports "Misplaced &" for the second.
            env = "aligned" if "&" in maths else "gathered"
            maths = f"\\begin{{{env}}} {maths} \\end{{{env}}}"
        out.extend([f"{indent}\\[", f"{indent}{maths}", f"{indent}\\]", ""])
    return "\n".join(out)


def convert(text: str) -> str:
    """``text`` with its RST maths in arithmatex's generic delimiters."""
    return _ROLE.sub(lambda m: f"\\({m.group(1)}\\)", _blocks(text))


class RstMath(griffe.Extension):
    """Rewrites every docstring's maths when griffe loads an object."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
