"""docker-compose.yaml cannot run here (no Docker engine): check it statically against the project."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ratchet import celery_setup, settings

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def test_every_service_of_the_stack_is_there(compose):
    assert AIRFLOW_SERVICES | {"postgres", "redis", "mailpit", "ratchet-serve"} <= set(compose["services"])


def test_dependencies_name_existing_services(compose):
    for name, service in compose["services"].items():
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"


def test_airflow_services_use_the_tested_celery_settings_with_redis_and_the_ratchet_connections(compose):
    """The Celery settings are `celery_setup.settings()`, those tests/dags/test_celery.py runs a cycle on two workers
    with (executor, broker, results in Airflow's database, concurrency, what a worker preloads, the task's host),
    for the compose file's own Redis and database; the worker runs the same `airflow` subcommand."""
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        tested = celery_setup.settings(env[celery_setup.BROKER_ENV], env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert {key: env.get(key) for key in tested} == tested, name
        assert env[celery_setup.BROKER_ENV].startswith("redis://") and "@redis:" in env[celery_setup.BROKER_ENV]
        for conn_id in (settings.DATABASE_CONN_ID, settings.SMTP_CONN_ID):
            assert f"AIRFLOW_CONN_{conn_id.upper()}" in env, (name, conn_id)
        assert env[settings.MODELS_DIR_ENV].startswith("/opt/airflow/")
    assert services["airflow-worker"]["command"] == " ".join(celery_setup.WORKER_COMMAND)


def test_connections_point_at_services_and_the_database_the_init_script_creates(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    ratchet_db = json.loads(env[f"AIRFLOW_CONN_{settings.DATABASE_CONN_ID.upper()}"])
    smtp = json.loads(env[f"AIRFLOW_CONN_{settings.SMTP_CONN_ID.upper()}"])
    assert ratchet_db["host"] in compose["services"] and smtp["host"] in compose["services"]
    assert smtp["extra"]["disable_ssl"] is True and smtp["extra"]["disable_tls"] is True
    init_sql = (REPO / "docker" / "init-databases.sql").read_text()
    assert re.search(rf"CREATE DATABASE {ratchet_db['schema']}\b", init_sql)
    init_env = compose["services"]["airflow-init"]["environment"]
    assert init_env[settings.DATABASE_URL_ENV].endswith(f"/{ratchet_db['schema']}")
    assert "ratchet db upgrade" in " ".join(compose["services"]["airflow-init"]["command"])


def test_mounted_paths_and_the_image_build_exist_in_the_repo(compose):
    common = compose["x-airflow-common"]
    for volume in common["volumes"]:
        host = volume.split(":")[0]
        if host.startswith("./"):
            assert (REPO / host).exists(), host
    assert env_models_dir_is_mounted(common)
    dockerfile = (REPO / common["build"]["dockerfile"]).read_text()
    assert "requirements.txt" in dockerfile and "3.3.2" in dockerfile


def env_models_dir_is_mounted(common) -> bool:
    targets = {volume.split(":")[1] for volume in common["volumes"]}
    return common["environment"][settings.MODELS_DIR_ENV] in targets


def test_the_rest_service_scales_and_reaches_the_registry(compose):
    """`docker compose up --scale ratchet-serve=3` needs no fixed name and no fixed host port."""
    service = compose["services"]["ratchet-serve"]
    assert "container_name" not in service
    assert service["entrypoint"] == ["ratchet"] and service["command"][0] == "serve"
    assert service["command"][service["command"].index("--port") + 1] == "8000"
    for port in service["ports"]:
        assert ":" not in str(port), f"{port}: a fixed host port lets only one replica start"
    assert service["healthcheck"]["test"][-1] == "http://localhost:8000/healthz"
    env = service["environment"]
    init_env = compose["services"]["airflow-init"]["environment"]
    assert env[settings.DATABASE_URL_ENV] == init_env[settings.DATABASE_URL_ENV]
    assert "RATCHET_API_TOKEN" in env
    assert env[settings.MODELS_DIR_ENV] in {volume.split(":")[1] for volume in service["volumes"]}
    assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
