"""The built book in a real browser: headless Chromium from the system's packages, driven by Selenium.

Not part of the default ``pytest`` run (``norecursedirs`` in pyproject.toml): ``.ci/run`` runs
``python -m pytest tests/browser`` after ``make book``. A missing build, browser or driver fails
the run; nothing is skipped and nothing is downloaded (Selenium Manager is kept offline).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("RECON_BOOK_HTML", REPO_ROOT / "book" / "_build" / "html"))
SCREENSHOTS = Path(os.environ.get("RECON_SCREENSHOTS", REPO_ROOT / "book" / "_build" / "screenshots"))
CHROMIUM = os.environ.get("RECON_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RECON_CHROMEDRIVER", "/usr/bin/chromedriver")


def toc_pages() -> list[str]:
    """Every page of the book in reading order, as paths relative to the HTML root without ``.html``."""
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            pages.append(chapter["file"])
            pages += [section["file"] for section in chapter.get("sections", [])]
    return [str(Path(page).with_suffix("")) for page in pages]


PAGES = toc_pages()


@pytest.fixture(scope="session")
def book_url():
    """The built HTML served over HTTP, as GitHub Pages serves it."""
    if not (HTML / "index.html").is_file():
        pytest.fail(f"no built book at {HTML}: run `make book` (or `jupyter-book build book/`) first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output to the findings
        pass


@pytest.fixture(scope="session")
def driver():
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() or shutil.which(path)):
            pytest.fail(f"{path} not found: install Debian's {package} (apt-get install -y {package})")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--hide-scrollbars", "--window-size=1400,1000", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(60)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield browser
    browser.quit()
