"""The built documentation, as a reader's browser sees it.

The site is built strictly with mkdocs into a temporary folder, served on 127.0.0.1, and loaded by
headless Chromium (Debian's ``chromium`` package). The index and the quickstart must render, and
every link in the navigation must resolve to a page that exists. Skipped when mkdocs or Chromium is
missing; with ``LMBRIDGE_REQUIRE_BROWSER=1`` (set in CI) a missing Chromium fails instead.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.browser


class _NavLinks(HTMLParser):
    """Collects the hrefs inside the theme's navigation bar."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = dict(attrs).get("class") or ""
        if self.depth:
            self.depth += 1
            href = dict(attrs).get("href")
            if tag == "a" and href and not href.startswith("#"):
                self.links.append(href)
        elif "navbar" in classes.split():
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if CHROMIUM is None:
        if os.environ.get("LMBRIDGE_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (apt-get install chromium); LMBRIDGE_REQUIRE_BROWSER=1")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    out = tmp_path_factory.mktemp("site")
    tree = ROOT / ".venv" / "typecheck" / "lmbridge"  # where mkdocs.yml points mkdocstrings (see the Makefile)
    if not (tree / "__init__.py").exists():
        tree.mkdir(parents=True, exist_ok=True)
        for entry in (ROOT / "bridge").iterdir():
            (tree / entry.name).symlink_to(entry)
        (tree / "adapters").symlink_to(ROOT / "adapters")
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
                   cwd=ROOT, check=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *args: None  # type: ignore[assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


def _render(url: str, tmp_path: Path) -> str:
    """The DOM after Chromium has loaded and rendered the page."""
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=True)
    return result.stdout


def test_index_and_quickstart_render_in_a_browser(site: str, tmp_path: Path) -> None:
    index = _render(site, tmp_path)
    assert "<h1" in index and "lmbridge" in index
    quickstart = _render(site + "quickstart/", tmp_path)
    assert re.search(r"<h1[^>]*>\s*Quickstart", quickstart)
    assert "make demo" in quickstart


def test_every_nav_link_resolves(site: str, tmp_path: Path) -> None:
    parser = _NavLinks()
    parser.feed(_render(site, tmp_path))
    links = sorted(set(parser.links))
    assert len(links) >= 10, links  # the nav lists the reading order, not one page
    for href in links:
        url = urllib.request.urljoin(site, href)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200, url
        except urllib.error.HTTPError as error:  # pragma: no cover - the failure we look for
            pytest.fail(f"nav link {href!r} does not resolve: HTTP {error.code}")
