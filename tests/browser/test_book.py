"""Every page of the built book, opened in headless Chromium: what a reader of the web page sees.

Per page: every image has loaded, every image is a numbered figure with a caption and alt text and
appears once, every table is numbered and captioned and fits the window (1400 px), and the text
shows no ``nan``, ``None`` or unrendered ``{glue`` role. Table 1 has 16 rows of numbers beside the paper's. The navigation
reaches every page. A screenshot of each page goes to ``book/_build/screenshots/``.
"""

from __future__ import annotations

import base64
import re
import time
from urllib.parse import urljoin, urlparse

import pytest

from .conftest import PAGES, SCREENSHOTS

MISSING_VALUE = re.compile(r"\b(nan|NaN|None)\b")
UNRENDERED = re.compile(r"\{glue(:\w+)?\}|\{cite(:\w+)?\}|\{numref\}")

# What the page shows a reader, gathered in the browser after it has loaded.
INSPECT = """
const article = document.querySelector("article.bd-article");
const images = Array.from(article.querySelectorAll("img"));
const caption = (node, selector) => { const c = node.querySelector(selector); return c ? c.innerText.trim() : ""; };
return {
  broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src")),
  sources: images.map(i => i.getAttribute("src")),
  bare: images.filter(i => !i.closest("figure")).map(i => i.getAttribute("src")),
  // the paper's own table and figures keep the paper's numbers: their caption is the paragraph beside them
  figures: Array.from(article.querySelectorAll("figure")).map(f => ({
    id: f.id, paper: !!f.closest(".paper-numbered"), alt: (f.querySelector("img") || {}).alt || "",
    caption: f.closest(".paper-numbered") ? caption(f.closest(".paper-numbered"), ":scope > p") : caption(f, "figcaption")})),
  tables: Array.from(article.querySelectorAll("table")).map(t => ({
    id: t.id, paper: !!t.closest(".paper-numbered"),
    caption: t.closest(".paper-numbered") ? caption(t.closest(".paper-numbered"), ":scope > p") : caption(t, "caption"),
    overflow: t.parentElement.scrollWidth - t.parentElement.clientWidth})),
  text: visibleText(article),
  page_overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  title: document.title,
};
"""
# The text a reader sees: rendered text nodes, without inline code in the prose (where the book may
# name `None` or `{glue:figure}` on purpose), folded code cells, scripts or the "#" link anchors.
VISIBLE_TEXT = """
function visibleText(root) {
  const parts = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const parent = walker.currentNode.parentElement;
    if (parent.closest("code.literal, .cell_input, script, style, .headerlink")) continue;
    if (parent.getClientRects().length === 0) continue;
    parts.push(walker.currentNode.textContent);
  }
  return parts.join("");
}
"""


def visit(driver, url: str) -> dict:
    driver.get(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if driver.execute_script("return document.readyState === 'complete' && "
                                 "Array.from(document.images).every(i => i.complete)"):
            break
        time.sleep(0.1)
    return driver.execute_script(VISIBLE_TEXT + INSPECT)


def screenshot(driver, page: str) -> None:
    """The whole page, not only the first screenful: the viewport is made as tall as the page
    (Chrome DevTools' device metrics), captured, and restored."""
    width, height = driver.execute_script(
        "return [document.documentElement.clientWidth, document.documentElement.scrollHeight]")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": min(height, 20000), "deviceScaleFactor": 1, "mobile": False})
    try:
        time.sleep(0.3)  # let the layout settle at the new size
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        (SCREENSHOTS / f"{page.replace('/', '_')}.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(driver, book_url, page):
    seen = visit(driver, f"{book_url}/{page}.html")
    screenshot(driver, page)  # before the checks, so that a failing page leaves its picture
    assert "404" not in seen["title"], f"{page}: {seen['title']}"
    assert seen["page_overflow"] <= 1, f"{page}: the page is {seen['page_overflow']} px wider than the window"
    assert seen["broken"] == [], f"{page}: images that did not load: {seen['broken']}"
    assert seen["bare"] == [], f"{page}: images outside a numbered figure (a bare cell output?): {seen['bare']}"
    repeated = sorted({s for s in seen["sources"] if seen["sources"].count(s) > 1})
    assert repeated == [], f"{page}: figures shown more than once: {repeated}"
    for figure in seen["figures"]:
        number = r"Figure \d+ \(the paper[’']s\)" if figure["paper"] else r"Fig\. \d+"
        assert re.match(number, figure["caption"]), f"{page}: figure {figure['id']!r} has no number: {figure}"
        assert figure["alt"].strip(), f"{page}: figure {figure['id']!r} has no alt text"
    for table in seen["tables"]:
        number = r"Table \d+ \(the paper[’']s\)" if table["paper"] else r"Table \d+"
        assert re.match(number, table["caption"]), f"{page}: table {table['id']!r} has no number: {table}"
        assert table["overflow"] <= 1, f"{page}: table {table['id']!r} is {table['overflow']} px wider than the page"
    missing = sorted({m.group(0) for m in MISSING_VALUE.finditer(seen["text"])})
    assert missing == [], f"{page}: the page shows {missing}: " + _context(seen["text"], MISSING_VALUE)
    assert not UNRENDERED.search(seen["text"]), f"{page}: unrendered role: " + _context(seen["text"], UNRENDERED)


def _context(text: str, pattern: re.Pattern) -> str:
    match = pattern.search(text)
    return repr(text[max(0, match.start() - 80):match.end() + 80]) if match else ""


def test_table1_has_16_rows_of_numbers_beside_the_papers(driver, book_url):
    visit(driver, f"{book_url}/notebooks/table1.html")
    table = driver.execute_script("""
        const t = document.getElementById("tbl-table1");
        if (!t) return null;
        return {header: Array.from(t.querySelectorAll("thead th")).map(c => c.innerText.trim()),
                rows: Array.from(t.querySelectorAll("tbody tr")).map(r => Array.from(r.cells).map(c => c.innerText.trim()))};
    """)
    assert table is not None, "no table with id tbl-table1 on the Table 1 page"
    assert table["header"].count("paper") == 7, table["header"]
    assert len(table["rows"]) == 16, f"{len(table['rows'])} rows"
    for row in table["rows"]:
        values = [float(cell) for cell in row[2:]]  # after subject and method
        assert len(values) == 14 and all(0.0 <= v <= 1.0 for v in values), row
    methods = [row[1] for row in table["rows"]]
    assert methods == ["[30]", "+T", "+T+G", "+T+G+D"] * 4, methods
    assert [row[0] for row in table["rows"] if row[0]] == ["subj01", "subj02", "subj05", "subj07"]


def _page_of(url: str, base: str) -> str:
    path = urlparse(url).path[len(urlparse(base).path):].lstrip("/")
    return re.sub(r"\.html$", "", path) or "index"


def test_navigation_reaches_every_page(driver, book_url):
    root = f"{book_url}/{PAGES[0]}.html"
    visit(driver, root)
    links = driver.execute_script(
        "return Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference.internal')).map(a => a.href)")
    in_sidebar = {_page_of(urljoin(root, link).split("#")[0], book_url) for link in links}
    assert set(PAGES[1:]) <= in_sidebar, f"pages missing from the sidebar: {sorted(set(PAGES[1:]) - in_sidebar)}"

    # "Next" from the first page walks the whole book in the order of _toc.yml.
    walked, url = [PAGES[0]], root
    while len(walked) <= len(PAGES):
        visit(driver, url)
        following = driver.execute_script("const a = document.querySelector('a.right-next'); return a ? a.href : null")
        if following is None:
            break
        url = following
        walked.append(_page_of(url.split("#")[0], book_url))
    assert walked == PAGES
