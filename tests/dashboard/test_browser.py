"""End to end in a real browser: `harness dashboard` as a subprocess, headless Chromium driven by Selenium.

    pytest -m browser tests/dashboard/test_browser.py
    HARNESS_SCREENSHOTS=docs/screenshots pytest -m browser tests/dashboard/test_browser.py   # keep the PNGs

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package (`.ci/install-browser.sh`);
skips, saying so, where they are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, stop_process_group
from tests.dashboard.conftest import writer_holding_lock

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1920,1000"]
TIMEOUT = 90


def browser_binaries() -> tuple[str, str]:
    """Chromium and its driver, or skip with what to install."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("no browser driver: `pip install selenium` (.ci/install-browser.sh installs it)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no browser: `apt-get install chromium chromium-driver` (.ci/install-browser.sh installs them)")
    return chromium, driver


def wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`harness dashboard` exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"dashboard not healthy after {TIMEOUT}s:\n{log.read_text()}")


@pytest.fixture
def dashboard_url(filled_db, tmp_path):
    """`harness dashboard --port N` on the filled store, as a user starts it; stopped afterwards."""
    port, log = free_port(), tmp_path / "dashboard.log"
    harness = shutil.which("harness", path=str(Path(sys.executable).parent)) or "harness"
    with log.open("w") as out:
        proc = subprocess.Popen([harness, "dashboard", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, HARNESS_DB=str(filled_db)), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        assert f"at {url}" in log.read_text()  # the address is printed
        yield url
    finally:
        stop_process_group(proc, timeout=15)


@pytest.fixture
def browser(tmp_path):
    chromium, driver_path = browser_binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("HARNESS_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# -- page helpers ------------------------------------------------------------------------------------
def wait_for(driver, condition, what: str):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, TIMEOUT, poll_frequency=0.25, ignored_exceptions=[StaleElementReferenceException])
    return wait.until(condition, message=f"waiting for {what}")


def css(driver, selector: str) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def table_cells(driver, index: int = 0) -> list[str]:
    """Text of a dataframe's cells (its accessible table; the grid itself is a canvas)."""
    return driver.execute_script(
        "const frame = document.querySelectorAll('[data-testid=\"stDataFrame\"]')[arguments[0]];"
        "return frame ? Array.from(frame.querySelectorAll('td'), td => td.textContent) : [];", index)


def settled(driver) -> bool:
    """The script finished: no running indicator, and a title is on the page."""
    return bool(css(driver, "h1")) and not css(driver, '[data-testid="stStatusWidget"] [data-testid="stStatusWidgetRunningIcon"]')


def no_exception(driver) -> None:
    errors = css(driver, '[data-testid="stException"]')
    assert not errors, errors[0].text


def snap(driver, folder: Path, name: str) -> Path:
    """Screenshot of the whole page (the window grown to the content's height)."""
    height = driver.execute_script("return document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    driver.set_window_size(1920, min(max(height + 60, 900), 2400))
    time.sleep(1.0)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1920, 1000)
    return path


def choose_in_multiselect(driver, label: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.XPATH, f'//div[@data-testid="stMultiSelect"][.//label[normalize-space()="{label}"]]')
    field = box.find_element(By.CSS_SELECTOR, "input")
    field.click()
    field.send_keys(value)
    field.send_keys(Keys.ENTER)
    field.send_keys(Keys.ESCAPE)


def click_tab(driver, label: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f'//*[@role="tab"][.//p[normalize-space()="{label}"]]').click()


def click_radio(driver, label: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f'//label[@data-testid="stRadioOption"][.//p[normalize-space()="{label}"]]').click()


def select_first_row(driver) -> None:
    """Click the row-selection marker of the dataframe's first row (the grid is drawn on a canvas)."""
    from selenium.webdriver.common.action_chains import ActionChains

    grid = css(driver, '[data-testid="stDataFrame"] canvas')[0]
    left, top = -grid.size["width"] / 2, -grid.size["height"] / 2  # offsets are from the canvas centre
    ActionChains(driver).move_to_element_with_offset(grid, int(left + 16), int(top + 35 + 17)).click().perform()


# -- the test ----------------------------------------------------------------------------------------
def test_dashboard_in_chromium(dashboard_url, browser, screenshots, filled_db):
    # 1) the leaderboard shows the store's runs, one row per strategy × dataset × pipeline
    browser.get(dashboard_url)
    wait_for(browser, lambda d: "ft_gen" in table_cells(d), "the leaderboard table")
    cells = table_cells(browser)
    assert {"no_ft", "ft_gen", "rag_token", "two_phase", "★ best"} <= set(cells)
    assert "6 rows · 9 runs" in browser.page_source
    no_exception(browser)
    snap(browser, screenshots, "leaderboard")

    # 2) a filter narrows it
    choose_in_multiselect(browser, "strategy", "rag_token")
    wait_for(browser, lambda d: "2 rows · 2 runs" in d.page_source and "ft_gen" not in table_cells(d), "the filter")
    assert {"rag_token", "popqa", "tiny"} <= set(table_cells(browser))
    snap(browser, screenshots, "leaderboard-filtered")

    # 3) selecting a row offers its run; the link opens the run page
    select_first_row(browser)
    link = wait_for(browser, lambda d: [a for a in css(d, '[data-testid="stPageLink"] a') if "Open run" in a.text],
                    "the Open run link")[0]
    run_id = link.text.split()[-1]
    link.click()
    wait_for(browser, lambda d: "/run" in d.current_url and "status" in d.page_source and settled(d), "the run page")
    assert f"run={run_id}" in browser.current_url and "rag_token" in browser.page_source
    no_exception(browser)
    snap(browser, screenshots, "run")
    for tab, shown in (("Training", '[data-testid="stVegaLiteChart"]'), ("Examples", '[data-testid="stDataFrame"]')):
        click_tab(browser, tab)
        wait_for(browser, lambda d: any(e.is_displayed() for e in css(d, shown)), f"the {tab} tab")
        time.sleep(1.0)
        snap(browser, screenshots, f"run-{tab.lower()}")

    # 4) every other page renders without an exception
    for page in ("quality_vs_cost", "compare", "learning_rates", "published"):
        browser.get(f"{dashboard_url}/{page}")
        wait_for(browser, lambda d: settled(d) and (css(d, '[data-testid="stVegaLiteChart"]')
                                                   or css(d, '[data-testid="stDataFrame"]')), page)
        time.sleep(1.5)
        no_exception(browser)
        if page == "published":  # PopQA: the store's runs beside the paper's
            click_radio(browser, "PopQA")
            wait_for(browser, lambda d: any(c.startswith("this store") for c in table_cells(d)), "the store's rows")
        snap(browser, screenshots, page.replace("_", "-"))

    # 5) while a writer holds the store: a notice, not an error; the page recovers by itself afterwards
    with writer_holding_lock(filled_db):
        browser.get(dashboard_url)
        wait_for(browser, lambda d: "Store busy, retrying" in d.page_source, "the busy notice")
        no_exception(browser)
        snap(browser, screenshots, "store-busy")
    wait_for(browser, lambda d: "ft_gen" in table_cells(d), "the leaderboard once the writer is gone")
