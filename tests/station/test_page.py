"""The station page in a real headless Chromium (Debian's chromium and chromium-driver, through
Selenium) against `gangd run --simulate` with faults: tiles, live progress, a failure with its
reason and instruction, the header against /status, port control with and without the token, and
no request to any other host. Screenshots of the page mid-run and after the run are saved as PNG."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from .conftest import GANGD, TOKEN, free_port, get, status, wait_for, write_config

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
LABELS = ["A1", "A2", "A3", "B1", "B2", "B3"]
LAYOUT = "A1 A2 A3 / B1 B2 B3"
BOARDS = 18
SCREENS = Path("/tmp/gangd-screens")  # the latest copies, for a person to look at

TILES_JS = """return [...document.querySelectorAll('article.tile')].map(t => ({
    label: t.dataset.label, state: t.dataset.state, progress: t.querySelector('progress').value,
    board: t.querySelector('.board').textContent, reason: t.querySelector('.reason').textContent,
    explanation: t.querySelector('.explanation').textContent,
    instruction: t.querySelector('.instruction').textContent,
    elapsed: t.querySelector('.elapsed').textContent}));"""


@pytest.fixture
def browser(tmp_path):
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
        "scripts/setup installs chromium and chromium-driver"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(dir=tmp_path, prefix="chromium-")
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # no Selenium Manager: no download
    driver.set_script_timeout(10)
    yield driver
    driver.quit()


def save(driver, path: Path, height: int | None = None) -> Path:
    if height:
        driver.set_window_size(1280, height)
        time.sleep(0.3)  # let the layout settle at the new size (no event to wait on)
    driver.save_screenshot(str(path))
    SCREENS.mkdir(exist_ok=True)
    shutil.copy(path, SCREENS / path.name)
    print(f"screenshot: {path} (copy: {SCREENS / path.name})")
    return path


def texts(driver, selector: str) -> list[str]:
    """The elements' rendered text, read in one script: the page re-renders its lists on every
    change, so an element found in one call may be gone (stale) by the next."""
    script = "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText.trim())"
    return driver.execute_script(script, selector)


def record_rows(driver) -> list[dict]:
    """The records table's rows (result, label), read in one script (see texts())."""
    script = (
        "return [...document.querySelectorAll('#records-body tr')]"
        ".map(r => ({result: r.dataset.result, label: r.dataset.label}))"
    )
    return driver.execute_script(script)


def control(address: str, port: str, action: str, headers: dict) -> tuple[int, dict]:
    host, number = address.split(":")
    connection = http.client.HTTPConnection(host, int(number), timeout=5)
    try:
        connection.request("POST", f"/api/ports/{port}/{action}", body=b"", headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_station_page_in_chromium(tmp_path, gangd, browser):
    address = f"127.0.0.1:{free_port()}"
    config = write_config(tmp_path, LABELS, address, layout=LAYOUT)
    # Every board in B2 (1-1.5) fails at write for good; a third of the boards have a marginal flash
    # read path that gangd recovers from by lowering the clock.
    daemon = gangd(
        [
            "--config",
            str(config),
            "--simulate",
            "6",
            "--time-scale",
            "1",
            "--replace-delay",
            "3",  # boards now take ~0.7 s: A1 still gets a board after it is disabled
            "--boards",
            str(BOARDS),
            "--seed",
            "4",
            "--state-dir",
            str(tmp_path / "state"),
            "--fault-share",
            "marginal-read:max-mhz=100=0.35",
            "--port-fault",
            "1-1.5=status:cmd=write-memory,code=10200",
        ],
        address=address,
    )
    url = f"http://{address}/"
    browser.get(url)
    wait_for(lambda: browser.execute_script("return document.body.dataset.ready === '1'"), 15, "the first update")

    # Every configured port has its tile and label, in the layout's rows.
    tiles = browser.execute_script(TILES_JS)
    assert [t["label"] for t in tiles] == LABELS
    grid = browser.find_element(By.ID, "grid")
    assert grid.get_attribute("role") == "list" and len(browser.find_elements(By.CSS_SELECTOR, "#grid > .tile")) == 6
    first_row_top = {
        t.get_attribute("data-label"): t.rect["y"] for t in browser.find_elements(By.CSS_SELECTOR, ".tile")
    }
    assert first_row_top["A1"] == first_row_top["A3"] < first_row_top["B1"] == first_row_top["B3"]

    # A tile shows a rising progress bar during a job.
    seen: dict[tuple[str, str], list[int]] = {}

    def rising():
        for tile in browser.execute_script(TILES_JS):
            if tile["state"] in ("programming", "recovering", "waiting-replug") and tile["board"]:
                values = seen.setdefault((tile["label"], tile["board"].split(" ")[0]), [])  # serial · uid
                if not values or values[-1] != tile["progress"]:
                    values.append(tile["progress"])
        return any(len([x for x in v if 0 < x < 100]) >= 2 and v == sorted(v) for v in seen.values())

    try:
        wait_for(rising, 20, "a progress bar rising during a job", interval=0.05)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; progress seen per board: {seen}") from None
    save(browser, tmp_path / "station-mid-run.png")

    # A board that fails turns its tile to the failed state, with the reason and the instruction.
    def b2_failed():
        tile = next(t for t in browser.execute_script(TILES_JS) if t["label"] == "B2")
        return tile if tile["state"] == "failed" else None

    b2 = wait_for(b2_failed, 30, "B2's tile in the failed state", interval=0.05)
    assert "10200" in b2["reason"] and "Memory Range Invalid" in b2["reason"]
    assert b2["explanation"].startswith("10200:")
    assert b2["instruction"] == "Take the board out of B2 and put it with the failed boards"

    # Port control: refused without the token and across sites; the page, unlocked, disables A1.
    assert control(address, "A1", "disable", {})[0] == 403
    assert control(address, "A1", "disable", {"X-Gangd-Token": "not-the-token-at-all"})[0] == 403
    assert control(address, "A1", "disable", {"X-Gangd-Token": TOKEN, "Origin": "http://elsewhere.example"})[0] == 403
    refused = subprocess.run(
        [GANGD, "port", "disable", "A1", "--address", address],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert refused.returncode == 2 and "refused" in refused.stderr
    assert not status(address)["ports"][0]["disabled"]
    browser.find_element(By.ID, "unlock-open").click()
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#unlock-form button[type=submit]").click()
    button = wait_for(
        lambda: browser.find_elements(By.XPATH, "//button[normalize-space()='Disable A1']"), 5, "A1's button"
    )
    button[0].click()
    wait_for(lambda: status(address)["ports"][0]["disabled"], 5, "A1 disabled")
    a1_done = None  # A1's count once its last job (if one was running) has finished

    # The run ends: every board made has finished, but the one the operator put into disabled A1
    # is left alone (no job starts there) until A1 is enabled again.
    def settled():
        s = status(address)
        a1 = s["ports"][0]
        busy = any(p["state"] in ("programming", "recovering", "waiting-replug") for p in s["ports"])
        return s if not busy and s["jobs_finished"] + (1 if a1["board"] else 0) == BOARDS else None

    before = wait_for(settled, 90, f"{BOARDS} boards through the station")
    a1 = before["ports"][0]
    assert a1["state"] == "disabled" and a1["board"], "the operator's board waits in disabled A1, untouched"
    a1_done = a1["counts"].get("success", 0) + a1["counts"].get("failed", 0)
    tiles = {t["label"]: t for t in browser.execute_script(TILES_JS)}
    assert tiles["A1"]["state"] == "disabled"

    # A finished board's tile says how long it took to 0.1 s, as the model has it: boards here
    # take about 0.7 s, which whole seconds showed as "took 0 s".
    def times_shown():
        model = json.loads(get(f"http://{address}/api/view"))
        done = {p["label"]: p["elapsed_s"] for p in model["ports"] if p["state"] in ("success", "failed")}
        shown = {t["label"]: t["elapsed"] for t in browser.execute_script(TILES_JS) if t["label"] in done}
        expected = {label: f"took {elapsed:.1f} s" for label, elapsed in done.items() if elapsed is not None}
        return expected if expected and shown == expected else None

    times = wait_for(times_shown, 5, "each finished tile's time, to 0.1 s")
    assert all(re.fullmatch(r"took \d+\.\d s", text) for text in times.values()), times

    # The header's counts equal /status.
    def header_matches():
        counts = status(address)["counts"]
        shown = {name: texts(browser, f"#stat-{name}")[0] for name in ("programmed", "failed")}
        return shown == {"programmed": str(counts.get("success", 0)), "failed": str(counts.get("failed", 0))}

    wait_for(header_matches, 5, "the header's counts to equal /status")

    # Each USB root port's occupancy (flashloaders on the bus against the budget), as /status has it.
    def root_ports_match():
        shown = texts(browser, "#root-ports li")
        domains = status(address)["root_ports"]
        wanted = [f"USB root port {d}: {o['in_use']} of {o['budget']} flashloaders" for d, o in domains.items()]
        return shown == wanted and shown

    # (A board whose job ended at its reset still counts until its flashloader leaves the bus.)
    (shown,) = wait_for(root_ports_match, 5, "the root ports' occupancy to equal /status")
    assert re.fullmatch(r"USB root port 1-1: [0-6] of 8 flashloaders", shown), shown
    rows = record_rows(browser)
    assert len(rows) == min(before["jobs_finished"], 50)
    # The records filter by result and by port.
    Select(browser.find_element(By.ID, "filter-result")).select_by_visible_text("failed")
    failed = record_rows(browser)
    assert failed and {r["result"] for r in failed} == {"failed"}
    assert {r["label"] for r in failed} == {"B2"}
    Select(browser.find_element(By.ID, "filter-result")).select_by_index(0)
    Select(browser.find_element(By.ID, "filter-port")).select_by_visible_text("A2")
    a2 = record_rows(browser)
    assert a2 and {r["label"] for r in a2} == {"A2"}
    Select(browser.find_element(By.ID, "filter-port")).select_by_index(0)
    save(browser, tmp_path / "station-after-run.png", height=1900)

    # Enabled again (from the command line, with the token from the configuration), A1 programs it.
    enabled = subprocess.run(
        [GANGD, "port", "enable", "A1", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert enabled.returncode == 0, enabled.stderr
    wait_for(lambda: sum(status(address)["ports"][0]["counts"].values()) == a1_done + 1, 30, "A1's held board done")

    # No console errors, and no request to any other host than gangd's.
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    urls = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.add(message["params"]["request"]["url"])
    # (Chromium's own chrome:// pages, like the blank tab it starts with, are not the network.)
    network = {u for u in urls if u.split(":", 1)[0] in ("http", "https", "ws", "wss", "ftp")}
    assert network and all(u.startswith(url) for u in network), sorted(network)
    assert {f"{url}static/station.js", f"{url}static/station.css", f"{url}api/events"} <= network
    assert daemon.stop() == 0
