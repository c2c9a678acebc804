"""The line's monitoring: a real Prometheus scrapes two simulated stations with the example scrape
configuration (dashboards/prometheus-line.yml, the stations' addresses put in); every expression
of the line dashboard and its alert rules evaluates, and each station's successes equal its records."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter

import pytest
import yaml

from gangd.service.records import RecordStore
from tests.observability.test_prometheus import DASHBOARDS, query
from tests.support import GANGD, Process, free_port, wait_for

BOARDS = 8
STATIONS = ("station-1", "station-2")


def line_exprs() -> list[str]:
    dashboard = json.loads((DASHBOARDS / "line.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    rules = yaml.safe_load((DASHBOARDS / "alerts-line.yml").read_text())
    return exprs + [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    assert shutil.which("prometheus"), "scripts/setup installs Debian's prometheus"
    root = tmp_path_factory.mktemp("line")
    example = yaml.safe_load((DASHBOARDS / "prometheus-line.yml").read_text())
    addresses, daemons = {}, []
    for n, station in enumerate(STATIONS):
        address = f"127.0.0.1:{free_port()}"
        addresses[station] = address
        state = root / station
        args = [GANGD, "run", "--simulate", "2", "--boards", str(BOARDS), "--time-scale", "0.02"]
        args += ["--replace-delay", "0.1", "--seed", str(n + 7), "--state-dir", str(state)]
        args += ["--metrics-address", address, "--fault", "status:cmd=flash-erase-region,code=20106,p=0.2"]
        daemons.append(Process(args))
    # The example configuration, with the test's stations as its targets (same job, same labels).
    example["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    example["rule_files"] = [str(DASHBOARDS / "alerts-line.yml")]
    for target in example["scrape_configs"][0]["static_configs"]:
        target["targets"] = [addresses[target["labels"]["station"]]]
    assert {t["labels"]["station"] for t in example["scrape_configs"][0]["static_configs"]} == set(STATIONS)
    config = root / "prometheus.yml"
    config.write_text(yaml.safe_dump(example))
    prom_port = free_port()
    prometheus = Process(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ]
    )
    url = f"http://127.0.0.1:{prom_port}"
    try:

        def finished(station):
            path = root / station / "records.sqlite"
            if not path.exists():
                return None
            store = RecordStore(path)
            rows = [r for r in store.jobs() if r["result"] != "running"]
            store.close()
            return rows if len(rows) >= BOARDS else None

        for daemon in daemons:  # record stores made before a reader opens them (see test_prometheus)
            daemon.wait_entry(lambda e: e["event"] == "ready", 60, "gangd's 'ready'")
        records = {station: wait_for(lambda s=station: finished(s), 120, f"{station}'s boards") for station in STATIONS}

        def scraped_all():
            try:
                answer = query(url, 'sum by (station) (gangd_boards_total{job="gangd-line"})')["data"]["result"]
            except OSError:
                return False
            seen = {s["metric"].get("station"): float(s["value"][1]) for s in answer}
            return all(seen.get(station, 0) >= BOARDS for station in STATIONS)

        wait_for(scraped_all, 60, "Prometheus to scrape both stations' boards")
        yield {"prometheus": url, "records": records}
    finally:
        for process in [*daemons, prometheus]:
            process.process.terminate()
        for process in [*daemons, prometheus]:
            process.stop()


def test_every_line_dashboard_and_alert_expression_evaluates(line):
    exprs = line_exprs()
    assert len(exprs) >= 12
    for expr in exprs:
        concrete = expr.replace("$station", ".*")
        answer = query(line["prometheus"], concrete)
        assert answer["status"] == "success", (expr, answer)


def test_per_station_successes_equal_the_records(line):
    answer = query(line["prometheus"], 'sum by (station) (gangd_boards_total{job="gangd-line",result="success"})')
    seen = {s["metric"]["station"]: int(float(s["value"][1])) for s in answer["data"]["result"]}
    expected = {station: Counter(r["result"] for r in rows)["success"] for station, rows in line["records"].items()}
    assert seen == expected
    assert all(n > 0 for n in expected.values())


def test_line_alert_rule_tests():
    result = subprocess.run(
        ["promtool", "test", "rules", "alerts-line_test.yml"], cwd=DASHBOARDS, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
