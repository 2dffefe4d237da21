"""The Studies page in a real browser (as tests/dashboard/test_browser.py): a smoke-scale study run into a
store, `harness dashboard` on it, the page showing the reproduced table with verdicts, run links and claims."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.store.db import Store
from tests.conftest import free_port, run_cli, stop_process_group
from tests.dashboard.test_browser import (
    browser,
    css,
    no_exception,
    screenshots,
    settled,
    snap,
    table_cells,
    wait_for,
    wait_healthy,
)

pytestmark = pytest.mark.browser
__all__ = ["browser", "screenshots"]  # fixtures used here


@pytest.fixture
def study_dashboard(tmp_path):
    assert run_cli(["study", "run", "siriwardhana2021", "--scale", "smoke"]) == 0
    port, log = free_port(), tmp_path / "dashboard.log"
    harness = shutil.which("harness", path=str(Path(sys.executable).parent)) or "harness"
    with log.open("w") as out:
        proc = subprocess.Popen([harness, "dashboard", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        stop_process_group(proc, timeout=15)


def test_the_studies_page_shows_verdicts_run_links_and_claims(study_dashboard, browser, screenshots):
    browser.get(f"{study_dashboard}/studies?study=siriwardhana2021&scale=smoke")
    wait_for(browser, lambda d: settled(d) and "SMOKE SCALE" in d.page_source and len(table_cells(d, 1)) > 0,
             "the study's table and claims")
    no_exception(browser)
    cells = table_cells(browser, 0)
    assert "RAG-end2end" in cells and "RAG-Original" in cells
    assert {"below", "within", "above"} & set(cells)  # each cell has a verdict against Table 1
    run_ids = {r["id"] for r in Store(os.environ["HARNESS_DB"]).query("SELECT id FROM runs")}
    assert run_ids & set(cells), cells  # the run column shows the selected cell's run ...
    links = [a for a in css(browser, '[data-testid="stPageLink"] a') if "Open run" in a.text]
    assert links and links[0].text.split()[-1] in run_ids
    links[0].click()  # ... and a cell's runs open the run page
    wait_for(browser, lambda d: "/run" in d.current_url and settled(d) and "status" in d.page_source, "the run page")
    browser.back()
    wait_for(browser, lambda d: settled(d) and "SMOKE SCALE" in d.page_source and len(table_cells(d, 1)) > 0,
             "the studies page again")
    claims = table_cells(browser, 1)
    assert "rag-end2end beats RAG in EM" in claims
    assert {"holds", "fails", "within noise"} & set(claims)
    snap(browser, screenshots, "studies")
    browser.get(f"{study_dashboard}/studies?study=lawton2025&scale=full")  # nothing run at that scale
    wait_for(browser, lambda d: settled(d) and "Study id" in d.page_source and len(table_cells(d, 0)) > 0,
             "the lawton study's table")  # the grid renders its accessible cells after the script settles
    no_exception(browser)
    assert "not run" in table_cells(browser, 0)
