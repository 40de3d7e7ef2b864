"""The package's shape: dependencies point one way, no import cycles, the ORM stays inside the registry.

Every import of a `ratchet` module counts, at module level, inside a function or under `if TYPE_CHECKING:`: a
lazy import is still a dependency, and a type-only one still couples the two modules (an annotation naming a
higher layer's type is a loop the runtime merely does not see). Layers, lowest first; a module may import its
own layer and the layers below it. Evaluation judges and alerting speaks: alerting sits above evaluation and
reads its outcomes; no evaluation module knows of mail.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "include" / "ratchet"
LAYERS = [
    {"exceptions", "faults"},
    {"settings", "threads"},
    {"specs"},
    {"modeling"},
    {"registry"},
    {"evaluation"},
    {"alerting"},
    {"lifecycle"},
    {"reporting"},
    {"serving"},
    {"pipeline", "executor", "celery_setup", "celery_worker", "dagkit", "cli", "demo", "replay", "mailsink", "ui"},
    # the application
]
LAYER_OF = {part: index for index, layer in enumerate(LAYERS) for part in layer}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "migrations" not in p.parts}


def imports_of(module: str) -> set[str]:
    """The ratchet modules `module` imports anywhere in its body ('from a import b' counts a.b when it is a module)."""
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                      for a in node.names}
    return {name for name in found if name.split(".")[0] == "ratchet" and name != "ratchet"}


def _layer(module: str) -> int:
    part = module.split(".")[1]
    assert part in LAYER_OF, f"{module} belongs to no layer: add {part!r} to LAYERS in {__file__}"
    return LAYER_OF[part]


def test_every_module_belongs_to_a_layer():
    for module in MODULES:
        if module != "ratchet":
            _layer(module)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "ratchet"))
def test_imports_point_down_the_layers(module):
    upward = sorted(name for name in imports_of(module) if _layer(name) > _layer(module))
    assert not upward, f"{module} (layer {_layer(module)}) imports higher layers: {upward}"


def test_no_import_cycles():
    graph = {module: imports_of(module) & set(MODULES) for module in MODULES}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module):] + [module]
            raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
        if module in done:
            return
        for name in sorted(graph[module]):
            visit(name, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_the_orm_schema_and_sessions_stay_inside_the_registry():
    for module, path in MODULES.items():
        if module.startswith("ratchet.registry"):
            continue
        assert "ratchet.registry.schema" not in imports_of(module), f"{module} imports the ORM schema"
        assert "sqlalchemy.orm" not in path.read_text(), f"{module} uses SQLAlchemy's ORM"
        assert "._session(" not in path.read_text(), f"{module} opens a registry session"


def _plant(tmp_path, monkeypatch, **modules: str) -> None:
    """Plant modules (dotted name -> source) among MODULES for one test."""
    for name, source in modules.items():
        path = tmp_path / f"{name}.py"
        path.write_text(source)
        monkeypatch.setitem(MODULES, name, path)


def test_the_checks_themselves_catch_what_they_forbid(tmp_path, monkeypatch):
    """An upward import and a cycle planted in two modules are both reported, and so is a type-only import."""
    _plant(tmp_path, monkeypatch, **{
        "ratchet.modeling.low": "def f():\n    from ratchet.lifecycle import promotion\n",
        "ratchet.lifecycle.promotion": "from typing import TYPE_CHECKING\nimport ratchet.modeling.low\n"
                                       "if TYPE_CHECKING:\n    from ratchet.ui import views\n"})
    with pytest.raises(AssertionError, match=r"imports higher layers: \['ratchet.lifecycle.promotion'\]"):
        test_imports_point_down_the_layers("ratchet.modeling.low")
    assert imports_of("ratchet.lifecycle.promotion") == {"ratchet.modeling.low", "ratchet.ui.views"}
    with pytest.raises(AssertionError, match=r"imports higher layers: \['ratchet.ui.views'\]"):
        test_imports_point_down_the_layers("ratchet.lifecycle.promotion")
    with pytest.raises(AssertionError, match="import cycle: ratchet.lifecycle.promotion -> ratchet.modeling.low"):
        test_no_import_cycles()


def test_a_type_only_import_back_up_the_layers_is_the_loop_it_is(tmp_path, monkeypatch):
    """The old loop: an evaluation module drafting mails, the mails naming its outcome type under TYPE_CHECKING."""
    _plant(tmp_path, monkeypatch, **{
        "ratchet.evaluation.judge": "from ratchet.alerting.speak import draft\n",
        "ratchet.alerting.speak": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                  "    from ratchet.evaluation.judge import Outcome\n"})
    with pytest.raises(AssertionError, match=r"imports higher layers: \['ratchet.alerting.speak'\]"):
        test_imports_point_down_the_layers("ratchet.evaluation.judge")
    with pytest.raises(AssertionError, match="import cycle: ratchet.alerting.speak -> ratchet.evaluation.judge"):
        test_no_import_cycles()
