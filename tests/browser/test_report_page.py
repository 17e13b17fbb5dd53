"""The small study's results/report.html as headless Chromium renders it: every image
decodes, the metric tables have a row per model, and the page asks the network for
nothing. A screenshot of the whole page is kept in the test's tmp folder."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from devtools import Browser
from PIL import Image

from workflow_helpers import four_decimals

pytestmark = [pytest.mark.browser, pytest.mark.workflow]

# Every <img>: loaded, its size once decoded, drawn; decode() rejects an undecodable one.
IMAGES = """Promise.all([...document.images].map(async img => ({
    alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
    drawn: img.getBoundingClientRect().width > 0,
    decoded: await img.decode().then(() => true, () => false),
})))"""
# Each <h2> and the first table after it (before the next <h2>), as the page shows it.
TABLES = """[...document.querySelectorAll('h2')].map(h2 => {
    let node = h2.nextElementSibling;
    while (node && !['TABLE', 'H2'].includes(node.tagName)) node = node.nextElementSibling;
    const table = node && node.tagName === 'TABLE' ? node : null;
    return {
        heading: h2.innerText,
        header: table ? [...table.tHead.rows[0].cells].map(c => c.innerText) : [],
        rows: table ? [...table.tBodies[0].rows].filter(r => r.getClientRects().length > 0)
            .map(r => [...r.cells].map(c => c.innerText)) : [],
    };
})"""


def outside_requests(browser: Browser, page: str) -> list[str]:
    """What the page requested besides itself and data: URLs (the embedded images)."""
    return [url for url in browser.requested() if url != page and not url.startswith("data:")]


# Each test asks for the browser (or chromium) first: a missing Chromium then skips it
# before the study runs.
@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    browser = Browser(chromium, tmp_path_factory.mktemp("chromium-profile"))
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def report(browser, small_study) -> str:
    """The report's file: URL, opened in the browser (its load event fired)."""
    url = (small_study / "results" / "report.html").as_uri()
    browser.open(url)
    return url


def table_under(browser: Browser, heading: str) -> pd.DataFrame:
    """The visible rows of the first table under the <h2> that starts with `heading`."""
    found = [t for t in browser.evaluate(TABLES) if t["heading"].startswith(heading)]
    assert len(found) == 1, f"one <h2> starting {heading!r}: {[t['heading'] for t in found]}"
    return pd.DataFrame(found[0]["rows"], columns=found[0]["header"])


def assert_rows_per_model(shown: pd.DataFrame, runs: pd.DataFrame, columns: list[str]) -> None:
    """One row per model of `runs` (metrics.tsv rows), in order, each showing the mean over
    seeds of every column to 4 decimals (then ± std for several seeds)."""
    means = runs.groupby("model", sort=False)[columns].mean()
    assert list(shown["model"]) == list(means.index)
    for model, row in zip(shown["model"], shown.itertuples(index=False), strict=True):
        cells = dict(zip(shown.columns, row, strict=True))
        assert int(cells["seeds"]) == (runs["model"] == model).sum()
        for column in columns:
            mean = cells[column].split(" ± ")[0]
            assert mean in four_decimals(means.loc[model, column]), (model, column, cells)


def test_every_image_decodes_and_is_drawn(browser, report, small_study):
    images = browser.evaluate(IMAGES)
    page = (small_study / "results" / "report.html").read_text()
    assert len(images) == page.count("<img ") > 0  # every image of the file is in the DOM
    for image in images:
        assert image["complete"] and image["decoded"] and image["drawn"], image
        assert image["width"] > 0 and image["height"] > 0, image


def test_the_test_metrics_table_has_a_row_per_model_and_baseline(browser, report, small_study):
    metrics = pd.read_csv(small_study / "results" / "metrics.tsv", sep="\t")
    shown = table_under(browser, "Test metrics")
    assert_rows_per_model(shown, metrics.dropna(subset="rmse"), ["mse", "rmse", "mae"])
    assert {"fm (stars)", "deepfm (stars)", "bias"} <= set(shown["model"])


def test_the_ranking_table_has_a_row_per_ranking_model(browser, report, small_study):
    metrics = pd.read_csv(small_study / "results" / "metrics.tsv", sep="\t")
    ranking = [column for column in metrics.columns if "@" in column]  # ndcg@K, hr@K, ...
    assert ranking
    shown = table_under(browser, "Ranking")
    assert_rows_per_model(shown, metrics.dropna(subset=ranking, how="all"), ranking)
    assert {"fm (ranking)", "deepfm (ranking)", "popularity", "itemknn", "ease"} <= set(
        shown["model"]
    )


def test_the_page_requests_nothing_from_the_network(browser, report):
    requested = browser.requested()
    assert report in requested and any(url.startswith("data:image/png") for url in requested)
    assert outside_requests(browser, report) == []


def test_an_external_image_would_be_caught(chromium, small_study, tmp_path):
    """The check above fails on a page with one <img src="https://...">."""
    page = tmp_path / "report.html"
    shutil.copy(small_study / "results" / "report.html", page)
    external = "https://example.com/pixel.png"
    page.write_text(page.read_text().replace("</h1>", f'</h1><img src="{external}">', 1))
    browser = Browser(chromium, tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        assert outside_requests(browser, page.as_uri()) == [external]
    finally:
        browser.close()


# The page's height and the box of its last <img>, in page pixels (after screenshot(),
# the window is the whole page: no scrolling).
LAST_IMAGE = """[document.documentElement.scrollHeight,
    (r => [r.left, r.top, r.right, r.bottom])(
        [...document.images].at(-1).getBoundingClientRect())]"""


def test_a_screenshot_of_the_whole_page(browser, report, tmp_path_factory):
    """The PNG decodes to the whole page, longer than one 900-pixel window, and the page's
    last figure, below that window, is drawn in it (its coloured curves or bars)."""
    shot = tmp_path_factory.mktemp("screenshot") / "report.png"
    width, height = browser.screenshot(shot)
    print(f"screenshot: {shot}")
    page_height, box = browser.evaluate(LAST_IMAGE)
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    assert pixels.shape[:2] == (height, width) and height >= page_height > 900
    left, top, right, bottom = (round(value) for value in box)
    assert 900 < top < bottom <= height
    figure = pixels[top:bottom, left:right]
    coloured = figure.max(axis=2) - figure.min(axis=2) > 100  # not white, grey or black
    assert coloured.mean() > 0.005, coloured.mean()
