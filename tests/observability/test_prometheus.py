"""A real Prometheus server (Debian's package) scrapes gangd running on simulated boards with
injected faults: every PromQL expression of the dashboard and the alert rules evaluates, and the
per-port panels agree with the board records. promtool checks the metrics and the alert rules."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml

from gangd.service.records import RecordStore

from ..support import GANGD, Process, free_port, wait_for

ROOT = Path(__file__).parents[2]
DASHBOARDS = ROOT / "dashboards"
BOARDS = 12


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def query(prometheus: str, expr: str) -> dict:
    return json.loads(get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DASHBOARDS / "gangd.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    """gangd on 3 simulated ports, 12 boards, with recoverable and permanent faults, fully scraped."""
    assert shutil.which("prometheus") and shutil.which("promtool"), "scripts/setup installs Debian's prometheus"
    state = tmp_path_factory.mktemp("gangd")
    gangd_port, prom_port = free_port(), free_port()
    daemon = Process(
        [
            GANGD,
            "run",
            "--simulate",
            "3",
            "--boards",
            str(BOARDS),
            "--time-scale",
            "0.02",
            "--replace-delay",
            "0.1",
            "--seed",
            "5",
            "--state-dir",
            str(state),
            "--metrics-address",
            f"127.0.0.1:{gangd_port}",
            "--fault",
            "status:cmd=write-memory,code=20106,nth=1",  # blank boards get no erase to fail
            "--port-fault",
            "1-1.3=status:cmd=write-memory,code=10200,p=0.5",
        ]
    )
    config = state / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{DASHBOARDS / 'alerts.yml'}]\n"
        f"scrape_configs: [{{job_name: gangd, static_configs: [{{targets: ['127.0.0.1:{gangd_port}']}}]}}]\n"
    )
    prometheus = Process(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={state / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ]
    )
    url = f"http://127.0.0.1:{prom_port}"
    try:

        def finished_records():
            path = state / "records.sqlite"
            if not path.exists():
                return None
            store = RecordStore(path)
            rows = [r for r in store.jobs() if r["result"] != "running"]
            store.close()
            return rows if len(rows) >= BOARDS else None

        # Its record store is made (and migrated) before it says ready: a reader opening it earlier
        # would race gangd's schema upgrade.
        daemon.wait_entry(lambda e: e["event"] == "ready", 60, "gangd's 'ready'")
        records = wait_for(finished_records, 90, f"{BOARDS} finished records")

        def scraped_all():
            try:
                result = query(url, "sum(gangd_boards_total)")["data"]["result"]
            except OSError:
                return False
            return result and float(result[0]["value"][1]) >= BOARDS

        wait_for(scraped_all, 60, "Prometheus to scrape every finished board")
        yield {"prometheus": url, "gangd": f"http://127.0.0.1:{gangd_port}", "records": records}
    finally:
        daemon.stop()
        prometheus.stop()


def test_promtool_accepts_a_scrape(station):
    scrape = get(station["gangd"] + "/metrics")
    result = subprocess.run(["promtool", "check", "metrics"], input=scrape, capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert b'gangd_boards_total{port="1-1.1",result="success"}' in scrape


def test_every_dashboard_and_alert_expression_evaluates(station):
    exprs = dashboard_exprs() + alert_exprs()
    assert len(exprs) >= 20
    for expr in exprs:
        answer = query(station["prometheus"], expr)
        assert answer["status"] == "success", (expr, answer)


def test_per_port_panels_equal_the_records(station):
    records = station["records"]
    for result in ("success", "failed"):
        expected = Counter(r["port"] for r in records if r["result"] == result)
        answer = query(station["prometheus"], f'sum by (port) (gangd_boards_total{{result="{result}"}})')
        seen = {s["metric"]["port"]: int(float(s["value"][1])) for s in answer["data"]["result"]}
        assert {p: n for p, n in seen.items() if n} == dict(expected), result
    # The faults made both outcomes happen, and recoveries were counted.
    assert {r["result"] for r in records} >= {"success", "failed"}
    recoveries = query(station["prometheus"], 'sum(gangd_recoveries_total{action="reconfigure-memory"})')
    attempts = sum(1 for r in records for a in r["attempts"] if a["action"] == "reconfigure-memory")
    assert int(float(recoveries["data"]["result"][0]["value"][1])) == attempts > 0


def test_status_and_healthz(station):
    status = json.loads(get(station["gangd"] + "/status"))
    assert [p["port"] for p in status["ports"]] == ["1-1.1", "1-1.2", "1-1.3"]
    assert sum(p["counts"].get("success", 0) for p in status["ports"]) == sum(
        1 for r in station["records"] if r["result"] == "success"
    )
    assert get(station["gangd"] + "/healthz") == b"ok\n"
    table = subprocess.run(
        [GANGD, "status", "--address", station["gangd"].removeprefix("http://")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "1-1.3" in table and "PROGRESS" in table


def test_promtool_rule_tests():
    result = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"], cwd=DASHBOARDS, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
