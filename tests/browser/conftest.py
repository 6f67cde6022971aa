"""A real browser against a real server: Debian's Chromium driven by Playwright's Python package.

Playwright's own browser download is never used. Where Chromium is missing, these tests skip and say why
(`.ci/run` installs it with apt first).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from core.devserver import QuietRequestHandler

# Records every CSP violation the page sees, before any assertion runs, so a failure shows the whole picture.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__cspViolations.push(event.violatedDirective + ' ' + event.blockedURI);
});
"""

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def live_server_url(app: Flask) -> Iterator[str]:
    """Serve the test application on a free loopback port, with the same quiet handler as `make run`."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM}: install Debian's chromium package (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots_dir(artifacts_dir: Path) -> Path:
    path = artifacts_dir / "screenshots"
    path.mkdir(exist_ok=True)
    return path


def axe_summary_writer(filename: str):
    """A module fixture that collects axe results in a dict and writes them to test-artifacts/`filename` at the
    end, afresh on each run (so the file never shows an earlier run's results as if they were current)."""

    @pytest.fixture(scope="module")
    def axe_summary(artifacts_dir: Path) -> Iterator[dict]:
        summary: dict[str, dict] = {}
        yield summary
        (artifacts_dir / filename).write_text(json.dumps(summary, indent=2, sort_keys=True))

    return axe_summary


@pytest.fixture
def journeys(browser, live_server_url, screenshots_dir, axe_summary):
    """Open one browser context per person in a journey (`journeys("patient")`); each is closed at the end, after
    printing the pages axe-core checked for it. Needs the test module's `axe_summary` fixture."""
    from tests.browser.journey import Journey

    opened: list[Journey] = []

    def open_journey(name: str) -> Journey:
        journey = Journey(browser, live_server_url, screenshots_dir, name, axe_summary)
        opened.append(journey)
        return journey

    yield open_journey
    for journey in opened:
        print(f"\nPages axe-core checked for {journey.name}:")
        for line in journey.checked:
            print(f"  {line}")
        journey.close()
