"""Adds the Ratchet page to the Airflow UI: a FastAPI app at /ratchet, shown from the navigation."""
from __future__ import annotations

from airflow.api_fastapi.core_api.security import get_user, requires_authenticated
from airflow.plugins_manager import AirflowPlugin

from ratchet.ui.app import create_app


class RatchetPlugin(AirflowPlugin):
    name = "ratchet"
    fastapi_apps = [{"app": create_app(requires_authenticated(), reviewer=get_user), "url_prefix": "/ratchet",
                     "name": "Ratchet"}]
    external_views = [{"name": "Ratchet", "href": "/ratchet/", "destination": "nav", "url_route": "ratchet"}]
