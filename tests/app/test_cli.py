"""The real `ratchet` console script against the test database."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from ratchet import demo

RATCHET = str(Path(sys.executable).parent / "ratchet")


def _ratchet(*args, **env):
    return subprocess.run([RATCHET, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_db_upgrade_is_idempotent(database_url):
    from ratchet.registry import db

    for _ in range(2):
        result = _ratchet("db", "upgrade")
        assert result.returncode == 0 and f"migrated to {db.current_revision(database_url)}" in result.stdout
    assert db.current_revision(database_url) == "0011"  # the newest migration, trials' details


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_load_demo_writes_the_table_once(registry):
    for _ in range(2):
        result = _ratchet("load-demo", "--end", "2025-06-30")
        assert result.returncode == 0, result.stderr
    with registry.engine.connect() as conn:
        rows, last = conn.execute(text("SELECT count(*), max(day) FROM demo.daily_demand")).one()
    assert str(last) == "2025-06-30" and rows == (last - last.replace(year=2022, month=6, day=1)).days + 1


def test_load_demo_before_change_stops_the_day_before_the_regime_change(registry):
    result = _ratchet("load-demo", "--end", "2025-06-30", "--before-change")
    change = demo.regime_change_day(dt.date(2025, 6, 30))
    assert result.returncode == 0, result.stderr
    assert f"..{change - dt.timedelta(days=1)}, the regime change from {change} not loaded yet)" in result.stdout
    with registry.engine.connect() as conn:
        last = conn.execute(text("SELECT max(day) FROM demo.daily_demand")).scalar_one()
    assert last == change - dt.timedelta(days=1)


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_status_json_lists_configured_models_without_champion(registry):
    result = _ratchet("status", "--json")
    assert result.returncode == 0, result.stderr
    models = json.loads(result.stdout)["models"]
    assert [m["name"] for m in models] == ["daily_demand"]
    assert models[0]["champion"] is None and models[0]["candidates"] == []


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_errors_are_one_clear_line_with_exit_code_2(tmp_path, registry):
    unknown = _ratchet("status", "--model", "nope")
    assert unknown.returncode == 2 and "unknown model 'nope'; configured models: ['daily_demand']" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    down = _ratchet("status", RATCHET_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none")
    assert down.returncode == 2 and "cannot reach the Ratchet database" in down.stderr
    (tmp_path / "bad.yaml").write_text("name: bad\ntask: regression\nsearch: {n_trials: ten}\n")
    bad = _ratchet("status", RATCHET_MODELS_DIR=str(tmp_path))
    assert bad.returncode == 2 and "bad.yaml: field 'source'" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow  # the real `ratchet` command, Airflow imported in a new process
def test_card_prints_the_champions_card_as_markdown_and_names_an_unknown_version(tmp_path, registry):
    from promote_helpers import SPEC, first_champion, register_fitted
    from spec_factory import write_spec

    first_champion(registry, tmp_path)
    write_spec(tmp_path, **SPEC, description="Next-day demand", limits=["Not for new stores"])
    register_fitted(registry, "demand", "r2")
    models = {"RATCHET_MODELS_DIR": str(tmp_path)}
    champion = _ratchet("card", "demand", **models)
    assert champion.returncode == 0, champion.stderr
    assert champion.stdout.startswith("# Model card: demand v1\n") and "Next-day demand" in champion.stdout
    assert "- Not for new stores" in champion.stdout and "| rmse | 9 | 12 | 15 |" in champion.stdout
    unknown = _ratchet("card", "demand", "9", **models)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert unknown.stderr == "ratchet: model 'demand' has no version 9; its versions: [1, 2]\n"


@pytest.mark.slow  # starts the `ratchet` command
def test_status_says_when_a_model_retrains_next_and_how_its_champion_ages(tmp_path, registry):
    from promote_helpers import SPEC, first_champion
    from spec_factory import write_spec

    from ratchet.registry.entities import AgePoint, Aging, Crossing

    first_champion(registry, tmp_path)
    write_spec(tmp_path, **SPEC, retrain={"schedule": "@monthly"})
    curve = tuple(AgePoint(age, 9.0 + age, 0.5, 8.5 + age, 9.5 + age, {"2024-01": 9.0 + age}) for age in (1, 2))
    crossing = Crossing(1, "rmse", "max", "backtest", "rmse max 10 (back-test)", (10.0, 10.0), 2)
    registry.record_aging(Aging("demand", 1, "night", ("2024-01", "2024-02", "2024-03", "2024-04"), 2,
                                {"rmse": curve}, (crossing,)))
    models = {"RATCHET_MODELS_DIR": str(tmp_path)}
    text_status = _ratchet("status", "--model", "demand", **models)
    assert text_status.returncode == 0, text_status.stderr
    assert "  retrain.schedule @monthly, next due " in text_status.stdout
    assert ("  aging of v1 over 3 origins: rmse breaks its requirement at age 2 months; recommended @weekly (the "
            "configured schedule is NOT often enough)") in text_status.stdout
    (model,) = json.loads(_ratchet("status", "--json", "--model", "demand", **models).stdout)["models"]
    assert model["retrain"]["next_due"][8:10] == "01"  # @monthly: the first of a month
    assert (model["aging"]["crossing_age"], model["aging"]["limit_days"]) == (2, 14)
    assert [p["breaking"] for p in model["aging"]["curve"]] == [0, 1]
