"""The documents name only what exists: every repository path in README.md and docs/*.md, every page of docs/
linked from the README, and the README's architecture table in step with the import layers.

What is checked as a reference (outside fenced code blocks):
- a markdown link or image target that is not a URL: a file or folder relative to the document, and its
  `#anchor`, if any, a heading of the target;
- a `code span` that is one token of path characters and starts with a top-level entry of the repository
  (`include/ratchet/cli.py`, `tests/ui/`, `Makefile`) or with a package of `include/ratchet/` (`serving/`,
  `evaluation/golden.py`), or is a bare `*.py` or `*.md` file name (found anywhere in the repository); a path
  without a suffix may name a module (`evaluation/backtest`);
- a dotted name `ratchet.x.y`: each part after a package is one of its modules or a name its `__init__` gives.
Not checked: URLs and URL paths (`/healthz`), commands and messages (a span with spaces), YAML field names
(`source.lags_by`, `ratchet.enabled` of `promotion`), placeholders (`<name>`, `{model}`, `*`, `...`),
absolute paths, folders the repository ignores (`.run/api_token`, `mail/`) and anything outside the
repository (`../shared/data/real/`).

Fast on purpose: no database, no Airflow (`pytest tests/test_docs.py --noconftest`).
"""
from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "include" / "ratchet"
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))

FENCED = re.compile(r"^ {0,3}(```|~~~)[^\n]*\n.*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
PATH_CHARS = re.compile(r"^[A-Za-z0-9_.\-/]+$")
DOTTED = re.compile(r"^ratchet(\.[A-Za-z_][A-Za-z0-9_]*)+$")
PLACEHOLDER = re.compile(r"[<>{}*]|\.\.\.")
URL = re.compile(r"^[a-z][a-z0-9+.\-]*:", re.IGNORECASE)
BARE_FILE_SUFFIXES = (".py", ".md")


@cache
def ignored_names() -> frozenset[str]:
    """Top-level names .gitignore leaves out of the repository (`.venv`, `.run`, `mail`...): made by running it."""
    lines = (REPO / ".gitignore").read_text().splitlines() if (REPO / ".gitignore").exists() else []
    return frozenset(line.strip().strip("/") for line in lines
                     if line.strip() and not line.startswith("#") and "*" not in line)


@cache
def repository_roots() -> frozenset[str]:
    """The repository's top-level files and folders (`include`, `tests`, `Makefile`, `.ci`...)."""
    return frozenset(p.name for p in REPO.iterdir() if p.name != ".git" and p.name not in ignored_names())


@cache
def package_parts() -> frozenset[str]:
    """The packages of include/ratchet/ (`specs`, `serving`, `ui`...): a path may start at one of them."""
    return frozenset(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())


@cache
def file_names() -> frozenset[str]:
    """The name of every file under the repository's roots, for bare names such as `conftest.py`."""
    names = set()
    for root in repository_roots():
        path = REPO / root
        files = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
        names |= {p.name for p in files if "__pycache__" not in p.parts}
    return frozenset(names)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return "".join(ch for ch in text if ch.isalnum() or ch in " -_").replace(" ", "-")


def anchors(text: str) -> set[str]:
    return {slug(h) for h in HEADING.findall(FENCED.sub("", text))}


def _exists(path: Path) -> bool:
    return path.exists() or path.with_suffix(path.suffix + ".py").exists()


def _outside(path: Path) -> bool:
    try:
        path.resolve().relative_to(REPO)
    except ValueError:
        return True
    return False


def check_link(target: str, document: Path, text: str) -> str | None:
    """What is wrong with a link target of `document` (whose text is `text`), or None."""
    if URL.match(target) or PLACEHOLDER.search(target):
        return None
    path_part, _, fragment = target.partition("#")
    if not path_part:  # an anchor on the same page
        return None if fragment in anchors(text) else f"link '{target}': no heading #{fragment} on this page"
    path = (document.parent / path_part).resolve()
    if _outside(path) or path.relative_to(REPO).parts[0] in ignored_names():
        return None
    if not path.exists():
        return f"link '{target}': {path.relative_to(REPO)} does not exist"
    if fragment and path.suffix == ".md" and fragment not in anchors(path.read_text()):
        return f"link '{target}': {path.relative_to(REPO)} has no heading #{fragment}"
    return None


def check_code_span(span: str) -> str | None:
    """What is wrong with a `code span` that names a repository path or a `ratchet.` module, or None."""
    span = span.strip()
    if DOTTED.match(span):
        return _check_dotted(span)
    if not PATH_CHARS.match(span) or PLACEHOLDER.search(span) or span.startswith(("/", "~")):
        return None
    first = span.split("/")[0]
    if first in (".", ".."):
        return None if _outside(REPO / span) else (None if _exists(REPO / span) else f"`{span}` does not exist")
    if first in ignored_names():
        return None
    if first in repository_roots() and (len(span.split("/")) > 1 or first == span):
        return None if _exists(REPO / span) else f"`{span}` does not exist"
    if "/" in span and first in package_parts():
        return None if _exists(PACKAGE / span) else f"`{span}` does not exist under include/ratchet/"
    if "/" not in span and span.endswith(BARE_FILE_SUFFIXES) and not span.startswith("."):
        return None if span in file_names() else f"`{span}`: no file of that name in the repository"
    return None


@cache
def ratchet_fields() -> frozenset[str]:
    """The fields of the YAML's `promotion.ratchet` (`ratchet.enabled` in a table of promotion's fields)."""
    from dataclasses import fields

    from ratchet.specs.model import RatchetSpec

    return frozenset(f.name for f in fields(RatchetSpec))


def _check_dotted(name: str) -> str | None:
    if name.count(".") == 1 and name.split(".")[1] in ratchet_fields():
        return None
    path = PACKAGE
    for part in name.split(".")[1:]:
        if path.is_file():  # the rest names something inside a module
            return None
        if (path / part).is_dir():
            path = path / part
        elif (path / f"{part}.py").is_file():
            path = path / f"{part}.py"
        elif re.search(rf"\b{re.escape(part)}\b", (path / "__init__.py").read_text()):
            return None  # a name the package gives (`ratchet.registry.Registry`)
        else:
            return f"`{name}`: {path.relative_to(REPO)} has no module or name {part!r}"
    return None


def broken_references(text: str, document: Path) -> list[str]:
    """Every reference of a markdown document (its text, and where it lies) that does not exist."""
    prose = FENCED.sub("", text)
    problems = [check_link(target, document, text) for target in LINK.findall(prose)]
    problems += [check_code_span(span) for span in CODE_SPAN.findall(prose)]
    return [p for p in problems if p]


def links_of(document: Path) -> set[Path]:
    """The repository files a document links to."""
    prose = FENCED.sub("", document.read_text())
    targets = (t.partition("#")[0] for t in LINK.findall(prose) if not URL.match(t))
    return {(document.parent / t).resolve() for t in targets if t}


@pytest.mark.parametrize("document", [README, *DOCS], ids=lambda p: str(p.relative_to(REPO)))
def test_every_path_a_document_names_exists(document):
    problems = broken_references(document.read_text(), document)
    assert problems == [], f"{document.relative_to(REPO)} names what does not exist:\n" + "\n".join(problems)


def test_every_page_of_docs_is_linked_from_the_readme():
    assert DOCS, "docs/ holds no pages"
    unlinked = [str(p.relative_to(REPO)) for p in DOCS if p.resolve() not in links_of(README)]
    assert unlinked == [], f"README.md does not link {unlinked}"


def test_the_readme_keeps_the_two_commands():
    readme = README.read_text()
    assert "make run" in readme and "make test" in readme


def test_the_readmes_architecture_table_lists_the_import_layers():
    """The package table of the README's Architecture section names the layers of test_architecture, in order."""
    from test_architecture import LAYERS

    readme = README.read_text()
    start = readme.index("\n## Architecture")
    section = readme[start:readme.index("\n## ", start + 1)]
    rows = [line for line in section.splitlines() if line.startswith("|") and not re.match(r"^\|\s*-", line)][1:]
    listed = [{name.rstrip("/").removesuffix(".py") for name in CODE_SPAN.findall(row.split("|")[1])}
              for row in rows]
    assert listed == LAYERS, (
        "README.md's architecture table is out of step with LAYERS in tests/test_architecture.py: one row per "
        f"layer, lowest first.\n  README: {listed}\n  layers: {LAYERS}")


def test_the_checker_reports_a_planted_bad_path_and_nothing_that_is_not_a_path():
    document = REPO / "docs" / "planted.md"
    planted = (
        "# Planted\n\n## A heading: `here`\n\n"
        "Screenshots by `tests/test_ui_browser.py`, the service in `include/ratchet/serving/nowhere.py`,\n"
        "the policy in `alerting/policy_that_is_not_there.py`, a bare `no_such_module.py`,\n"
        "the module `ratchet.evaluation.nosuch`, a [missing page](nowhere.md), a [bad anchor](configuration.md#nope),\n"
        "a [bad own anchor](#nope) and a [missing screenshot](screenshots/none.png).\n"
    )
    problems = broken_references(planted, document)
    for expected in ("tests/test_ui_browser.py", "include/ratchet/serving/nowhere.py", "policy_that_is_not_there.py",
                     "no_such_module.py", "ratchet.evaluation.nosuch", "nowhere.md", "#nope", "screenshots/none.png"):
        assert any(expected in p for p in problems), (expected, problems)
    assert len(problems) == 9, problems  # both #nope links

    fine = (
        "# Fine\n\n## A/B split: `serving.split`\n\n"
        "Real: `tests/ui/test_browser.py`, `include/ratchet/`, `serving/`, `evaluation/backtest`, `Makefile`,\n"
        "`conftest.py`, `ratchet.pipeline`, `ratchet.registry.Registry`,\n"
        "`ratchet.alerting.notifiers.SmtpNotifier`, [a page](configuration.md#every-field), [up](../README.md),\n"
        "[here](#ab-split-servingsplit), ![shot](screenshots/model.png).\n"
        "Not paths: `source.lags_by`, `promotion.ratchet.false_alarm_rate`, `ratchet.enabled`, `search.n_trials`,\n"
        "`demo.daily_demand`, "
        "`sklearn.linear_model.Ridge`, `/healthz`, `/usr/bin/chromium`, `.run/api_token`, `mail/`, `.pgdata/`,\n"
        "`../shared/data/real/`, `<name>.golden.yaml`, `docs/screenshots/*.png`, `v<N>@champion`, `demand.yaml`,\n"
        "`ratchet serve --port 8000`, `OpenMP/BLAS`, `host:port:pid`, [a site](https://airflow.apache.org/),\n"
        "`http://localhost:8080/ratchet`, `Authorization: Bearer <token>`.\n"
        "```bash\ncat tests/test_ui_browser.py   # inside a fenced block: an example, not a reference\n```\n"
    )
    assert broken_references(fine, document) == []
