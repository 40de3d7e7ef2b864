"""FastAPI app of the Ratchet page. Every route requires the Airflow login (the UI's `_token` cookie).

One route writes: a label given on the review list (a plain form POST, answered by a redirect back to the list). It
records the logged-in Airflow user as the reviewer; Airflow's cookie is `SameSite=Lax`, so a form on another site
cannot post with it. Without a way to name the user (the app run outside Airflow without `reviewer`) it refuses.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from ratchet.exceptions import NotFoundError, ReviewLabelError, SpecError, UnknownModelError
from ratchet.registry import Registry
from ratchet.specs.catalog import Catalog, load_catalog

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
PROMOTE_DAG = "ratchet_promote"
FORM_LIMIT = 4096  # bytes of a label form: a label, not a document
Context = tuple[Registry, Catalog]


def _registry_and_specs() -> Iterator[tuple[Registry, Catalog]]:
    registry = Registry.from_settings()
    try:
        yield registry, load_catalog()
    finally:
        registry.dispose()


def _reviewer(reviewer: Callable | None) -> Callable[..., str | None]:
    """A dependency naming who posts a label: `reviewer`'s user (Airflow's `get_user`: its `get_name()`), or None."""
    if reviewer is None:
        return lambda: None

    def name(user: Any = Depends(reviewer)) -> str:
        return user.get_name() if hasattr(user, "get_name") else str(user)
    return name


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the last value of each), refused beyond FORM_LIMIT bytes."""
    body = await request.body()
    if len(body) > FORM_LIMIT:
        raise HTTPException(413, f"a label form is at most {FORM_LIMIT} bytes")
    return {key: values[-1] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}


def create_app(auth_dependency: Callable | None = None, reviewer: Callable | None = None) -> FastAPI:
    """The app; `auth_dependency` is Airflow's `requires_authenticated()` and `reviewer` its `get_user` when
    mounted in Airflow."""
    from ratchet.ui import views

    # No /docs, /redoc or /openapi.json: FastAPI serves them outside the app's dependencies, so they would answer
    # without the Airflow login; the pages are for people, and the REST service documents its own API.
    app = FastAPI(title="Ratchet", dependencies=[Depends(auth_dependency)] if auth_dependency else [],
                  docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(UnknownModelError)
    def unknown_model(request: Request, exc: UnknownModelError) -> JSONResponse:
        """An unknown model is a 404 whose detail lists the configured models."""
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(SpecError)
    def broken_spec(request: Request, exc: SpecError) -> JSONResponse:
        """A model whose file is broken: 422, the detail naming the file and field."""
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request, context: Context = Depends(_registry_and_specs)) -> HTMLResponse:
        """Every configured model in one table."""
        registry, catalog = context
        return TEMPLATES.TemplateResponse(request, "overview.html",
                                          {"models": views.overview(registry, catalog)})

    @app.get("/models/{name}", response_class=HTMLResponse)
    def model(name: str, request: Request, series: str | None = None,
              slice_: Annotated[str | None, Query(alias="slice")] = None,
              context: Context = Depends(_registry_and_specs)) -> HTMLResponse:
        """One model: charts, versions, requirements, promotions, alerts, report; a panel's series and a model's
        slices, worst first, and the back-test chart of one series (`?series=`) or slice (`?slice=`)."""
        registry, catalog = context
        spec = catalog.get(name)
        try:
            page = views.model_page(registry, spec, series=series, slice_=slice_)
        except UnknownModelError:
            page = None
        return TEMPLATES.TemplateResponse(request, "model.html", {"name": name, "page": page})

    @app.get("/models/{name}/report", response_class=HTMLResponse)
    def report(name: str, context: Context = Depends(_registry_and_specs)) -> HTMLResponse:
        """The model's latest back-test report on its own."""
        registry, _ = context
        try:
            latest = registry.latest_report(name)
        except UnknownModelError:
            latest = None
        if latest is None:
            raise HTTPException(404, f"no back-test report for {name!r} yet")
        return HTMLResponse(latest.html)

    @app.get("/models/{name}/versions/{version}/card", response_class=HTMLResponse)
    def card(name: str, version: int, request: Request,
             context: Context = Depends(_registry_and_specs)) -> HTMLResponse:
        """One version's model card (`reporting.card`); 404 naming the versions there are for an unknown one."""
        from ratchet.reporting.card import build_card

        registry, catalog = context
        try:
            built = build_card(registry, catalog.get(name), version)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        return TEMPLATES.TemplateResponse(request, "card.html", {"name": name, "card": built})

    def review_list(request: Request, registry: Registry, catalog: Catalog, name: str, *, error: str | None = None,
                    labelled: int | None = None, status_code: int = 200) -> HTMLResponse:
        page = views.review_page(registry, catalog.get(name))
        return TEMPLATES.TemplateResponse(request, "review.html", {
            "name": name, "page": page, "error": error, "labelled": labelled,
            "base": request.scope.get("root_path", "")}, status_code=status_code)

    @app.get("/models/{name}/review", response_class=HTMLResponse)
    def review(name: str, request: Request, labelled: int | None = None,
               context: Context = Depends(_registry_and_specs)) -> HTMLResponse:
        """The model's review list: unsure answers waiting for a label, oldest first, and the labels given."""
        registry, catalog = context
        return review_list(request, registry, catalog, name, labelled=labelled)

    @app.post("/models/{name}/review/{item_id}", response_class=HTMLResponse)
    async def label(name: str, item_id: int, request: Request, context: Context = Depends(_registry_and_specs),
                    user: str | None = Depends(_reviewer(reviewer))) -> Any:
        """Record the label a person gave one item (the form's `label`), as that person, then show the list again;
        a refused label (a class the model does not know, a non-number for regression) changes nothing and is said
        on the list (422)."""
        registry, catalog = context
        catalog.get(name)
        if user is None:
            raise HTTPException(403, "a label records who gave it: open the Ratchet page through Airflow's login")
        try:
            registry.label_review_item(name, item_id, (await _form(request)).get("label"), labelled_by=user)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except ReviewLabelError as exc:
            return review_list(request, registry, catalog, name, error=str(exc), status_code=422)
        root = request.scope.get("root_path", "")
        return RedirectResponse(f"{root}/models/{name}/review?labelled={item_id}", status_code=303)

    @app.get("/models/{name}/promote", response_class=HTMLResponse)
    def promote_form(name: str, version: int, request: Request,
                     context: Context = Depends(_registry_and_specs)) -> HTMLResponse:
        """The ratchet_promote trigger form, filled in with the model and version."""
        _, catalog = context
        catalog.get(name)
        return TEMPLATES.TemplateResponse(request, "promote.html",
                                          {"name": name, "version": version, "dag_id": PROMOTE_DAG})

    return app
