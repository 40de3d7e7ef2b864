"""The serving package's shape: short functions, HTTP known only at the edge, every route labelled before routing."""
from __future__ import annotations

import ast
from pathlib import Path

from fastapi.routing import APIRoute

import ratchet.serving
from ratchet.serving.app import create_app
from ratchet.serving.exchange import route_of
from ratchet.serving.service import Service

SERVING = Path(ratchet.serving.__file__).parent
MAX_FUNCTION_LINES = 60
HTTP_MODULES = {"app", "edge", "errors", "dependencies", "schemas", "routers"}  # the edge: the rest knows no HTTP
HTTP_PACKAGES = ("fastapi", "starlette", "uvicorn", "httpx")


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(path.relative_to(SERVING)), ast.parse(path.read_text())) for path in sorted(SERVING.rglob("*.py"))]


def test_no_function_of_the_serving_package_is_longer_than_60_lines():
    long = [f"{name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for name, tree in _modules() for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def test_only_the_edge_modules_import_http_frameworks():
    """The service layer raises Ratchet's errors; which status each gets is the edge's business (`errors`)."""
    offending = []
    for name, tree in _modules():
        if name.split("/")[0].removesuffix(".py") in HTTP_MODULES:
            continue
        for node in ast.walk(tree):
            imported = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                        else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offending += [f"{name}: {module}" for module in imported if module.split(".")[0] in HTTP_PACKAGES]
    assert offending == []


def test_the_edge_labels_every_route_as_its_metrics_name_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    app = create_app(Service("postgresql://postgres@127.0.0.1:1/nowhere", replica="t", probe_seconds=60), "token")
    predict = "/v1/models/{model}/predict"
    labels = {("GET", "/v1/models"): ("models", None), ("GET", "/v1/models/{model}"): ("model", "m"),
              ("GET", predict): ("id", "m"), ("POST", predict): ("rows", "m"), ("GET", "/healthz"): ("healthz", None),
              ("GET", "/metrics"): ("metrics", None)}
    routes = {(method, route.path) for route in app.routes if isinstance(route, APIRoute) for method in route.methods}
    assert routes == set(labels)
    assert {key: route_of(key[0], key[1].replace("{model}", "m")) for key in labels} == labels
    assert [route_of(*request) for request in (("PUT", "/v1/models/m/predict"), ("GET", "/v1/models/"),
                                               ("GET", "/v1/models/m/other"), ("GET", "/v1/modelsx"),
                                               ("GET", "/docs"))] == [("other", None)] * 5
