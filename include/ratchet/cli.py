"""The `ratchet` command: database upgrades, demo data, status, model cards, predictions and the REST service."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from ratchet import settings
from ratchet.exceptions import RatchetError


def _db_upgrade(args: argparse.Namespace) -> int:
    from ratchet.registry import db

    url = settings.database_url()
    created = db.ensure_database(url)
    db.upgrade(url, args.revision)
    print(f"Ratchet database {'created and ' if created else ''}migrated to {db.current_revision(url)}")
    return 0


def _db_downgrade(args: argparse.Namespace) -> int:
    from ratchet.registry import db

    db.downgrade(settings.database_url(), args.revision)
    print(f"Ratchet database downgraded to {args.revision}")
    return 0


def _load_demo(args: argparse.Namespace) -> int:
    from ratchet import demo

    result = demo.load_demo(settings.database_url(), seed=args.seed, end=args.end, before_change=args.before_change)
    change = (f"the regime change from {result['regime_change']} not loaded yet" if result["before_change"]
              else f"regime change from {result['regime_change']}")
    print(f"demo data: {result['rows']} days in {result['table']} ({result['start']}..{result['end']}, {change})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    import os

    from ratchet import demo, replay, specs
    from ratchet.registry import Registry

    base = args.airflow or os.environ.get("AIRFLOW__API__BASE_URL")
    user = args.user or os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "").split(":")[0]
    passwords = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    password = os.environ.get("RATCHET_AIRFLOW_PASSWORD") or (
        json.loads(Path(passwords).read_text()).get(user) if passwords and Path(passwords).is_file() else None)
    if not (base and user and password):
        raise replay.ReplayError("no Airflow to replay on: `source .run/env` (written by `make run`), or give "
                                 "--airflow and --user with RATCHET_AIRFLOW_PASSWORD")
    spec = specs.load_specs()[demo.DEMO_MODEL]
    registry = Registry.from_settings()
    try:
        yesterday = dt.date.today() - dt.timedelta(days=1)
        replay.replay(replay.AirflowRest(base, user, password), registry, spec,
                      start=demo.alert_night(yesterday) + dt.timedelta(days=1),
                      nights=args.nights or demo.REPLAY_NIGHTS, last=yesterday,
                      approve=not args.no_approve)
    finally:
        registry.dispose()
    return 0


def _status(args: argparse.Namespace) -> int:
    from ratchet.registry import Registry
    from ratchet.reporting.status import status_report
    from ratchet.specs import load_catalog

    catalog = load_catalog()
    if args.model:
        specs, broken = {args.model: catalog.get(args.model)}, {}
    else:
        specs, broken = catalog.specs, catalog.broken
    registry = Registry.from_settings()
    try:
        report = status_report(registry, specs, broken)
    finally:
        registry.dispose()
    for entry in report["broken_specs"]:
        print(f"ratchet: model {entry['model']!r} is not running: {entry['error']}", file=sys.stderr)
    exit_code = 2 if report["broken_specs"] else 0
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return exit_code
    for model in report["models"]:
        champion = model.get("champion")
        print(f"{model['name']} ({model['task']}): champion "
              f"{'v' + str(champion['version']) if champion else 'none'}; "
              f"candidates {[c['version'] for c in model['candidates']]}")
        nowtest = model.get("last_nowtest")
        if nowtest:
            print(f"  last now-test {nowtest['day']}: {'passed' if nowtest['passed'] else 'FAILED'}")
            for kind in ("series", "slices"):
                for group, metrics in nowtest[f"breaching_{kind}"].items():
                    print(f"    {'series' if kind == 'series' else 'slice'} {group} breaches {', '.join(metrics)}")
        if model.get("open_alerts"):
            print(f"  open alerts: {len(model['open_alerts'])}")
        retrain, aging = model.get("retrain"), model.get("aging")
        if retrain:
            print(f"  retrain.schedule {retrain['schedule']}, next due {retrain['next_due'][:16]} UTC")
        if aging:
            crossed = (f"{aging['metric']} breaks its requirement at age {aging['crossing_age']} months"
                       if aging["crossing_age"] else "meets every requirement at every age")
            enough = "often enough" if aging["configured_often_enough"] else "NOT often enough"
            print(f"  aging of v{aging['version']} over {len(aging['origins'])} origins: {crossed}; recommended "
                  f"{aging['recommended']} (the configured schedule is {enough})")
        served = model.get("serving")
        if served and (served["requests"] or served["probes"]):
            p95, up = served["latency_p95_ms"], served["availability"]
            print(f"  serving, last 24 h: {served['requests']} requests, {served['errors']} errors (5xx), p95 "
                  f"{'-' if p95 is None else f'{p95:.1f} ms'}, availability {'-' if up is None else f'{up:.2%}'}")
    return exit_code


def _card(args: argparse.Namespace) -> int:
    from ratchet.registry import Registry
    from ratchet.reporting.card import build_card
    from ratchet.specs import load_catalog

    spec = load_catalog().get(args.model)
    registry = Registry.from_settings()
    try:
        print(build_card(registry, spec, args.version).markdown(), end="")
    finally:
        registry.dispose()
    return 0


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {value!r}") from None


def _predict(args: argparse.Namespace) -> int:
    from ratchet.serving.predict import run_predict

    return run_predict(args)


def _serve(args: argparse.Namespace) -> int:
    from ratchet.serving.app import run_serve

    return run_serve(args)


def build_parser() -> argparse.ArgumentParser:
    """The `ratchet` command line: db upgrade/downgrade, load-demo, demo, status, card, predict, serve."""
    parser = argparse.ArgumentParser(prog="ratchet", description="Keep predictive models honest in production.")
    commands = parser.add_subparsers(dest="command", required=True)

    database = commands.add_parser("db", help="manage the Ratchet database").add_subparsers(dest="db_command",
                                                                                           required=True)
    upgrade = database.add_parser("upgrade", help="create the database if needed and apply migrations")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler=_db_upgrade)
    downgrade = database.add_parser("downgrade", help="revert migrations (default: all)")
    downgrade.add_argument("revision", nargs="?", default="base")
    downgrade.set_defaults(handler=_db_downgrade)

    demo = commands.add_parser("load-demo", help="write the demo demand table (deterministic)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--end", type=_date, default=None, help="last day of data (default: yesterday)")
    demo.add_argument("--before-change", action="store_true",
                      help="only the days before the regime change (the history of make run's first champion)")
    demo.set_defaults(handler=_load_demo)

    replayed = commands.add_parser("demo", help="replay the demo's nights after its alert night through the running "
                                                "Airflow (`make run`), to the recovery")
    replayed.add_argument("--nights", type=int, default=None,
                          help="nights to replay, each a ratchet_nowtest run (default: the demo's, up to yesterday's)")
    replayed.add_argument("--airflow", help="Airflow's URL (default: AIRFLOW__API__BASE_URL, as .run/env sets it)")
    replayed.add_argument("--user", help="Airflow login (default: the first of SIMPLE_AUTH_MANAGER_USERS)")
    replayed.add_argument("--no-approve", action="store_true",
                          help="leave a proposal in Required Actions for a person instead of approving it")
    replayed.set_defaults(handler=_demo)

    status = commands.add_parser("status", help="champion, candidates, back-test, now-test per model")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--model", help="only this model")
    status.set_defaults(handler=_status)

    card = commands.add_parser("card", help="a version's model card as Markdown (default: the champion's)")
    card.add_argument("model", help="a configured model name")
    card.add_argument("version", nargs="?", type=int, help="a version number (default: the champion)")
    card.set_defaults(handler=_card)

    predict = commands.add_parser("predict", help="predict rows of a CSV file with a model's champion")
    predict.add_argument("model", help="a configured model name")
    predict.add_argument("--input", required=True, type=Path, help="CSV with the time column and the features")
    predict.add_argument("--output", type=Path, help="CSV to write (default: standard output)")
    predict.set_defaults(handler=_predict)

    serve = commands.add_parser("serve", help="serve the champions over HTTP (FastAPI under uvicorn; docs at /docs)")
    serve.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                       help="uvicorn's log level; below info the access log is off (default info)")
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; Ratchet's own errors and an unreachable database are one line on stderr and exit 2."""
    from sqlalchemy.exc import OperationalError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except OperationalError as exc:
        print(f"ratchet: cannot reach the Ratchet database: {str(exc.orig).strip().splitlines()[0]}", file=sys.stderr)
    except RatchetError as exc:
        print(f"ratchet: {exc}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
