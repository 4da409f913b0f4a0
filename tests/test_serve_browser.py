"""`mediamon serve` in a real browser: the demo's store (with feed state) opened in headless
Chromium through Selenium. Charts are drawn, the demo's spike alert is listed, Arabic titles are
laid out right to left, a filter given in the URL applies, and a row written to the store while the
page is open appears without a reload. Screenshots stay in the test's temp folder.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from pipeline.store.sqlite import connect_records, upsert_records

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo.yaml"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/lib/chromium/chromedriver"
                                                if Path("/usr/lib/chromium/chromedriver").exists() else None)


def _need_browser() -> None:
    missing = [name for name, found in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not found]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        message = f"{', '.join(missing)} not installed (apt-get install -y chromium chromium-driver)"
        if os.environ.get("MEDIAMON_REQUIRE_BROWSER") == "1":
            pytest.fail(f"MEDIAMON_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message + "; set MEDIAMON_REQUIRE_BROWSER=1 to make this a failure")


def demo_sets(folder: Path) -> list[str]:
    """--set options sending every demo sink (and a state store) into `folder`."""
    import yaml
    sinks = yaml.safe_load(DEMO.read_text(encoding="utf-8"))["sinks"]
    sets = ["--set", f"state.path={folder / 'state.db'}"]
    for i, sink in enumerate(sinks):
        name = "mediamon.db" if sink["type"] == "sqlite" else f"{i}-{Path(sink['path']).name}"
        sets += ["--set", f"sinks.{i}.path={folder / name}"]
    return sets


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _need_browser()
    folder = tmp_path_factory.mktemp("serve")
    sets = demo_sets(folder)
    run = subprocess.run([sys.executable, "-m", "pipeline", "run", str(DEMO), "--quiet", *sets],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    # The demo's feeds are local files, which keep no HTTP state: record what a poll of two of
    # them over HTTP would have left, one healthy and one failing.
    from pipeline.feeds.state import FeedState, FeedStateStore
    urls = {f["name"]: str((DEMO.parent / f["url"]).resolve())
            for f in __import__("yaml").safe_load(DEMO.read_text(encoding="utf-8"))["sources"]["feeds"]}
    with FeedStateStore(folder / "state.db") as store:
        store.put(FeedState.new(urls["demo-arabic"]).replace(last_status="ok", http_status=200,
                                                               last_fetch=1508055000.0, last_new_item=1508055000.0))
        store.put(FeedState.new(urls["demo-broken"]).replace(last_status="error", http_status=503,
                                                               last_error="HTTP 503", error_count=3,
                                                               last_fetch=1508055000.0))
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", str(DEMO), "--port", str(port), *sets],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("serve did not start listening within 60 s")
        yield {"url": f"http://127.0.0.1:{port}", "db": folder / "mediamon.db", "folder": folder}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser(served: dict[str, Any]) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,2200", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--lang=en"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, script: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {script}\nlog: {_console(driver)}")


def _console(driver: Any) -> str:
    try:
        return str(driver.get_log("browser"))
    except Exception as exc:  # not every driver keeps the console log
        return f"(no console log: {exc})"


def _ready(driver: Any) -> None:
    _wait(driver, "return document.documentElement.dataset.state === 'ready'")


def test_dashboard_draws_charts_alert_and_rtl(served: dict[str, Any], browser: Any) -> None:
    browser.get(served["url"] + "/?refresh=0")
    _ready(browser)
    root = browser.execute_script("return Object.assign({}, document.documentElement.dataset)")
    assert root["chartsDrawn"] == "3", root
    # plotly drew an svg with lines and points in each chart
    for chart in ("chart-topics", "chart-languages", "chart-keywords"):
        n = browser.execute_script(
            f"return document.querySelectorAll('#{chart} .main-svg .scatterlayer .trace').length")
        assert n >= 2, (chart, n)
    topics = browser.execute_script("return document.getElementById('chart-topics').data.map(t => t.name)")
    assert "Raqqa offensive" in topics
    # the demo's spike alert with its articles and highlighted evidence
    alert = browser.execute_script("return document.querySelector('#alerts .alert')?.innerText || ''")
    assert "Raqqa offensive" in alert and "2017-10-18T00:00:00Z" in alert and "raqqa-spike" in alert
    assert browser.execute_script("return document.querySelectorAll('#alerts .alert li').length") == 10
    assert browser.execute_script("return document.querySelectorAll('#articles mark').length") > 5
    # Arabic titles and summaries are laid out right to left, English ones left to right
    directions = browser.execute_script("""
        const out = {};
        for (const li of document.querySelectorAll('#articles li[data-lang]')) {
          const t = li.querySelector('.head');
          (out[li.dataset.lang] = out[li.dataset.lang] || new Set()).add(getComputedStyle(t).direction);
        }
        return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v]]));""")
    assert directions["ar"] == ["rtl"] and directions["en"] == ["ltr"], directions
    # feed health from the state store, dead letters by stage
    feeds = browser.execute_script("return document.querySelector('#feeds').innerText")
    assert "demo-arabic" in feeds and "demo-broken" in feeds and "error" in feeds
    dead = browser.execute_script("return document.querySelector('#dead').innerText")
    assert "parse" in dead or "fetch" in dead
    # every asset came from this server
    sources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert sources and all(s.startswith(served["url"]) for s in sources), sources
    browser.save_screenshot(str(served["folder"] / "dashboard.png"))
    assert (served["folder"] / "dashboard.png").stat().st_size > 50_000


def test_filter_in_the_url(served: dict[str, Any], browser: Any) -> None:
    browser.get(served["url"] + "/?language=fr&topic=raqqa-offensive&refresh=0")
    _ready(browser)
    langs = browser.execute_script(
        "return [...document.querySelectorAll('#articles li[data-lang]')].map(li => li.dataset.lang)")
    assert langs and set(langs) == {"fr"}
    assert browser.execute_script("return document.forms.filters.elements.language.value") == "fr"
    names = browser.execute_script("return document.getElementById('chart-languages').data.map(t => t.name)")
    assert names == ["fr"]
    browser.save_screenshot(str(served["folder"] / "filtered.png"))
    # a malformed parameter is a 400 with a message, not a trace
    browser.get(served["url"] + "/?period=soon")
    assert "400" in browser.title and "period='soon'" in browser.page_source


def test_new_row_appears_without_reload(served: dict[str, Any], browser: Any) -> None:
    browser.get(served["url"] + "/?refresh=1")
    _ready(browser)
    browser.execute_script("window.__sameDocument = 'yes'")
    title = "عاجل: عودة أولى العائلات إلى الرقة"
    conn = connect_records(served["db"])
    with conn:
        upsert_records(conn, "articles", [{
            "id": "live-test-1", "url": "https://demo.mediamon.invalid/ar/live", "title": title,
            "summary": "", "source": "demo-arabic", "published": "2017-10-19T08:00:00Z",
            "fetched": "2017-10-19T08:00:00Z", "language": "ar", "language_confidence": 0.99,
            "topics": ["raqqa-offensive"], "keywords": ["raqqa"],
            "evidence": {"raqqa-offensive": {"الرقة": ["الرقة"]}}}])
    conn.close()
    first = _wait(browser, "return document.querySelector('#articles li')?.dataset.id === 'live-test-1'", timeout=20)
    assert first
    assert browser.execute_script("return window.__sameDocument") == "yes"    # no reload happened
    shown = browser.execute_script("return document.querySelector('#articles li .title').textContent")
    assert shown == title
    browser.save_screenshot(str(served["folder"] / "live.png"))
