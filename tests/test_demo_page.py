"""The demo page at / in a real browser: headless Chromium (Debian's chromium and chromium-driver, through
Selenium) against a live ``serve.py`` process. Its screenshot is the README's docs/demo_page.png when
``PERSPECTIVE_WRITE_SCREENSHOT=1`` is set, and a temporary file otherwise (a test run leaves the checkout as it was)."""

from __future__ import annotations

import os
import shutil
import signal

import httpx
import pytest
from conftest import ROOT
from server_process import start_server

pytestmark = pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                                reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")

SAMPLE = ROOT / "sample_set" / "000000.jpg"
SCREENSHOT = ROOT / "docs" / "demo_page.png"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("demo"), "--interval", "0.9")
    try:
        yield server.wait_ready()
    finally:
        server.proc.send_signal(signal.SIGTERM)
        server.wait_stopped()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_shows_the_scores_the_api_gives_and_a_readable_error(live, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{live}/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: "resnet18" in d.find_element(By.ID, "model").text)
    browser.find_element(By.ID, "files").send_keys(str(SAMPLE))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card .bar-row"))
    rows = browser.find_elements(By.CSS_SELECTOR, ".card .bar-row")
    shown = {row.get_attribute("data-name"): float(row.get_attribute("data-value")) for row in rows}
    answer = httpx.post(f"{live}/predict", files=[("file", (SAMPLE.name, SAMPLE.read_bytes(), "image/jpeg"))],
                        timeout=60).json()["predictions"][0]
    assert shown == answer["scores"]  # the page shows the endpoint's numbers, one bar per target
    assert len(browser.find_elements(By.CSS_SELECTOR, ".card .interval")) == len(shown)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card img.saliency"))
    wait.until(lambda d: d.execute_script(
        "const i = document.querySelector('.card img.saliency'); return i.complete && i.naturalWidth > 0"))
    shot = SCREENSHOT if os.environ.get("PERSPECTIVE_WRITE_SCREENSHOT") == "1" else tmp_path / "demo_page.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("this is not a photo")
    browser.find_element(By.ID, "files").send_keys(str(not_an_image))
    message = wait.until(seen.visibility_of_element_located((By.ID, "message")))
    assert "400" in message.text and "not an image" in message.text
