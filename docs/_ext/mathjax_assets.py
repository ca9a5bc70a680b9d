"""An mkdocs hook: MathJax served with the site, so maths renders offline.

MathJax 3 comes from the ``django-static-mathjax`` package (in the ``docs``
extra; it is only a copy of MathJax's files, Django is not needed). This adds
the files a page needs to the site under ``javascripts/mathjax/``: the
``tex-mml-chtml.js`` bundle, its web fonts, and the TeX extensions it loads on
demand; ``mkdocs.yml`` points ``extra_javascript`` there. No CDN is involved
at build time or when a page is read.
"""

from __future__ import annotations

import importlib.util
import pathlib
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

DEST = "javascripts/mathjax"
PARTS = ("tex-mml-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions")


def source() -> pathlib.Path:
    """The installed MathJax ``es5`` folder."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise PluginError(
            "MathJax is not installed: pip install -e '.[docs]' "
            "(the django-static-mathjax package ships it)"
        )
    es5 = pathlib.Path(next(iter(spec.submodule_search_locations)))
    es5 = es5 / "static" / "mathjax" / "es5"
    if not (es5 / PARTS[0]).is_file():
        raise PluginError(f"no MathJax bundle at {es5 / PARTS[0]}")
    return es5


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    es5 = source()
    for part in PARTS:
        path = es5 / part
        for found in sorted(path.rglob("*") if path.is_dir() else [path]):
            if found.is_file():
                uri = f"{DEST}/{found.relative_to(es5).as_posix()}"
                files.append(File.generated(config, uri, abs_src_path=str(found)))
    return files
