"""The documentation site: every public name on an API page; a strict build."""

from __future__ import annotations

import collections
import functools
import html.parser
import http.server
import importlib.util
import pathlib
import re
import shutil
import subprocess
import sys
import threading

import pytest

import gradtx

ROOT = pathlib.Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api"
MODULES = {"tree", "microbatching"}  # documented as whole modules


def _directives() -> collections.Counter:
    found = collections.Counter()
    for page in API.glob("*.md"):
        found.update(re.findall(r"^::: gradtx\.(\w+)$", page.read_text(), re.M))
    return found


def test_every_public_name_is_on_exactly_one_api_page():
    found = _directives()
    public = set(gradtx.__all__) | MODULES
    missing = public - set(found)
    assert not missing, f"add to a docs/api page: {sorted(missing)}"
    unknown = set(found) - public
    assert not unknown, f"not public: {sorted(unknown)}"
    twice = [name for name, n in found.items() if n > 1]
    assert not twice, f"on several pages: {twice}"


def test_every_api_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in API.glob("*.md"):
        assert f"api/{page.name}" in nav, page.name


def _build(site: pathlib.Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-q",
            "-d",
            str(site),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "api" / "optimizers" / "index.html").exists()


# What must not reach a reader: an unconverted reST role, reST or TeX maths
# outside the spans that arithmatex hands to MathJax.
RAW_ROLE = re.compile(
    r":(?:py:)?(?:func|class|meth|attr|mod|data|obj|exc|const|ref|math):"
)
RAW_TEX = re.compile(
    r"\\[()\[\]]|\$\$|\.\. math::"
    r"|\\(?:frac|sqrt|hat|bar|tilde|left|right|sum|prod|mathrm|mathbf|operatorname"
    r"|epsilon|eta|theta|lambda|alpha|beta|gamma|odot|cdot)(?![a-zA-Z])"
)
GROUPED_ROW = re.compile(
    r'<tr class="doc-section-item">\s*<td>\s*<code>([^<]*,[^<]*)</code>'
)


ARITHMATEX = re.compile(
    r'<(span|div) class="arithmatex">\s*\\([(\[])(.*?)\\[)\]]\s*</\1>', re.S
)


class _Prose(html.parser.HTMLParser):
    """The text a reader sees, less maths spans, code listings and scripts."""

    VOID = frozenset(
        {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"}
        | {"source", "track", "wbr"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        # Per open element: (inside a skipped one, inside a code listing).
        self.stack: list[tuple[bool, bool]] = []
        self.text: list[str] = []
        self.listings: list[str] = []  # where an unconverted math block lands

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        classes = (dict(attrs).get("class") or "").split()
        skipped, listing = self.stack[-1] if self.stack else (False, False)
        skipped = skipped or tag in {"script", "style", "template"}
        self.stack.append((skipped or "arithmatex" in classes, listing or tag == "pre"))

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        skipped, listing = self.stack[-1] if self.stack else (False, False)
        if not skipped:
            (self.listings if listing else self.text).append(data)


def _shown(name: str, text: str) -> list[str]:
    """Raw roles and raw maths in the text ``text`` of page ``name``."""
    found = []
    for pattern, what in ((RAW_ROLE, "a reST role"), (RAW_TEX, "raw maths")):
        for match in pattern.finditer(text):
            context = " ".join(text[match.start() - 60 : match.end() + 40].split())
            found.append(f"{name}: {what}: ...{context}...")
    return found


def _static_checks(site: pathlib.Path) -> tuple[list[str], set]:
    """Problems on the built pages, and every formula as ``(tex, display)``."""
    problems, formulas = [], set()
    for page in sorted(site.rglob("*.html")):
        name = page.relative_to(site).as_posix()
        source = page.read_text(encoding="utf-8")
        prose = _Prose()
        prose.feed(source)
        problems += _shown(name, " ".join(prose.text))
        if ".. math::" in " ".join(prose.listings):
            problems.append(f"{name}: an unconverted math block")
        for names in GROUPED_ROW.findall(source):
            problems.append(f"{name}: one parameter row for several: {names}")
        for url in re.findall(r'<script[^>]+src="((?:https?:)?//[^"]+)"', source):
            problems.append(f"{name}: a script from the network: {url}")
        for _, kind, tex in ARITHMATEX.findall(source):
            formulas.add((html.unescape(tex).strip(), kind == "["))
    return problems, formulas


# Every formula of the site through MathJax's TeX input; an unknown macro
# (red under noundefined) or a TeX error (merror) is reported.
CHECK_TEX = """async (formulas) => {
  const bad = [];
  for (const [tex, display] of formulas) {
    try {
      const mml = await MathJax.tex2mmlPromise(tex, {display});
      if (mml.includes('<merror') || mml.includes('mathcolor="red"')) {
        bad.push(tex + ' -> ' + (mml.match(/data-mjx-error="([^"]*)"/) || mml)[1]);
      }
    } catch (error) {
      bad.push(tex + ' -> ' + error);
    }
  }
  return bad;
}"""
SHOWN = """() => ({
  maths: document.querySelectorAll('.arithmatex').length,
  rendered: document.querySelectorAll('.arithmatex mjx-container').length,
  errors: [...document.querySelectorAll('mjx-merror')]
    .map(e => e.getAttribute('data-mjx-error')),
  text: document.body.innerText,
})"""


def _browser_problems(site: pathlib.Path, path: str, formulas: set) -> list[str]:
    """Open page ``path`` of the site in headless Chromium, every request off
    this machine refused and reported, and report what a reader sees wrong;
    then run every formula of the site through its MathJax."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[str] = []

    def route(request):
        if request.request.url.startswith(origin):
            request.continue_()
        else:
            problems.append(f"a request off this machine: {request.request.url}")
            request.abort()

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000
            )
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.route("**/*", route)
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.goto(origin + path, wait_until="load")
            try:
                page.wait_for_function("window.MathJax?.startup", timeout=20_000)
            except PlaywrightTimeout:
                problems.append(f"{path}: MathJax did not load from the site")
                return problems
            page.evaluate("MathJax.startup.promise")
            shown = page.evaluate(SHOWN)
            if not shown["maths"] or shown["rendered"] < shown["maths"]:
                problems.append(
                    f"{path}: {shown['rendered']} of {shown['maths']} formulas "
                    "rendered by MathJax"
                )
            problems += [f"{path}: MathJax error: {e}" for e in shown["errors"]]
            problems += _shown(f"{path} (as shown)", shown["text"])
            bad = page.evaluate(CHECK_TEX, sorted(formulas))
            problems += [f"TeX error: {tex}" for tex in bad]
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return problems


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The page the browser opens (scale_by_adam's update rule; a small page, so the
# check stays quick: every other formula goes through MathJax's TeX input).
MATHS_PAGE = "api/scaling-and-moments/"


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    """One build (the slow part) serves every check of the built site: the
    strict build, the static scan of every page, then a real browser."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    _build(site)

    assert not (site / "_ext").exists(), "docs/_ext is published"
    assert (site / "javascripts" / "mathjax" / "tex-mml-chtml.js").is_file()
    optimizers = (site / "api" / "optimizers" / "index.html").read_text()
    assert 'href="#gradtx.adam"' in optimizers, "roles do not link"
    problems, formulas = _static_checks(site)
    assert not problems, "\n".join(problems[:40])
    assert len(formulas) > 100, "the maths is gone"

    # The browser check: skipped (and said why) where it cannot run.
    if not pathlib.Path(CHROMIUM).exists():
        pytest.skip(
            f"static checks passed; no browser at {CHROMIUM} to check that maths "
            "renders offline (apt-get install chromium; .ci/run does)"
        )
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("static checks passed; playwright is not installed (docs extra)")
    problems = _browser_problems(site, MATHS_PAGE, formulas)
    assert not problems, "\n".join(problems[:40])


def test_rst_maths_becomes_mathjax():
    module = _ext("rst_math")
    text = (
        "Rule:\n\n    .. math::\n        a = b\n        + c\n\n"
        "    with :math:`a` >= 0.\n"
    )
    assert module.convert(text) == (
        "Rule:\n\n    \\[\n    a = b + c\n    \\]\n\n    with \\(a\\) >= 0.\n"
    )


def _ext(name: str):
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "docs" / "_ext" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rst_rows_and_alignment_become_an_aligned_environment():
    module = _ext("rst_math")
    text = ".. math::\n    a &= b \\\\\n    c &= d\n"
    assert module.convert(text) == (
        "\\[\n\\begin{aligned} a &= b \\\\ c &= d \\end{aligned}\n\\]\n"
    )
    text = ".. math::\n    a = b \\\\\n    c = d\n"
    assert module.convert(text) == (
        "\\[\n\\begin{gathered} a = b \\\\ c = d \\end{gathered}\n\\]\n"
    )


def test_rst_roles_become_links_to_api_entries_or_code(tmp_path):
    griffe = pytest.importorskip("griffe")
    module = _ext("rst_roles")
    assert module.split_role("~pkg.mod.f") == ("f", "pkg.mod.f", True)
    assert module.split_role("!f") == ("f", "f", False)
    assert module.split_role("the rule <pkg.f>") == ("the rule", "pkg.f", True)

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from ._impl import Box, f\n__all__ = ['Box', 'f']\n"
    )
    (package / "_impl.py").write_text(
        '''
class Box:
    """A box; its :attr:`size` field."""

    size: int


def _helper():
    """Private."""


def f():
    """See :func:`f`, :py:func:`~pkg._impl.f`, :class:`Box`, :func:`_helper`,
    :func:`jax.vmap`, :func:`!f`, :mod:`pkg`, :func:`the same <f>` and
    :meth:`Box.size`; :math:`x` stays."""
'''
    )
    pages = tmp_path / "api"
    pages.mkdir()
    (pages / "p.md").write_text("# P\n\n::: pkg.f\n\n::: pkg.Box\n")
    extension = module.RstRoles(pages=str(pages))
    loaded = griffe.load(
        "pkg", search_paths=[str(tmp_path)], extensions=griffe.Extensions(extension)
    )
    assert loaded["_impl.f"].docstring.value == (
        "See [`f`][pkg.f], [`f`][pkg.f], [`Box`][pkg.Box], `_helper`,\n"
        "`jax.vmap`, `f`, `pkg`, [`the same`][pkg.f] and\n"
        "`Box.size`; :math:`x` stays."
    )
    assert loaded["_impl.Box"].docstring.value == "A box; its `size` field."


def test_grouped_arguments_get_one_row_each():
    module = _ext("grouped_params")
    text = (
        "Adam.\n\nArgs:\n  learning_rate, b1: as in\n    :func:`adam`.\n"
        "  mask: a tree: or a function.\n\nExamples:\n  >>> a, b: 1\n"
    )
    assert module.split(text) == (
        "Adam.\n\nArgs:\n  learning_rate: as in\n    :func:`adam`.\n"
        "  b1: as in\n    :func:`adam`.\n"
        "  mask: a tree: or a function.\n\nExamples:\n  >>> a, b: 1\n"
    )
