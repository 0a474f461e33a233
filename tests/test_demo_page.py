"""The demo page at / in a real browser: headless Chromium (Debian's chromium and chromium-driver, through
Selenium) against a live ``serve.py`` process: a sample photo, and a photo of noise that the page flags as
novel. Its screenshot is the README's docs/demo_page.png when
``PERSPECTIVE_WRITE_SCREENSHOT=1`` is set, and a temporary file otherwise (a test run leaves the checkout as it was)."""

from __future__ import annotations

import os
import signal

import httpx
import numpy as np
import pytest
from browser import chromium, needs_chromium
from conftest import ROOT
from PIL import Image
from server_process import start_server

pytestmark = needs_chromium

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
    with chromium(1200, 1500) as driver:
        yield driver


def test_the_page_shows_the_scores_the_api_gives_and_a_readable_error(live, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{live}/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: "resnet18" in d.find_element(By.ID, "model").text)
    noise = tmp_path / "noise.jpg"  # a photo of nothing the model has seen: the page flags it
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(noise)
    browser.find_element(By.ID, "files").send_keys(f"{SAMPLE}\n{noise}")  # one request with both
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 2)
    car = f".card[data-filename='{SAMPLE.name}']"
    rows = browser.find_elements(By.CSS_SELECTOR, f"{car} .bar-row")
    shown = {row.get_attribute("data-name"): float(row.get_attribute("data-value")) for row in rows}
    answer = httpx.post(f"{live}/predict", files=[("file", (SAMPLE.name, SAMPLE.read_bytes(), "image/jpeg"))],
                        timeout=60).json()["predictions"][0]
    assert shown == answer["scores"]  # the page shows the endpoint's numbers, one bar per target
    assert len(browser.find_elements(By.CSS_SELECTOR, f"{car} .interval")) == len(shown)
    badge = browser.find_element(By.CSS_SELECTOR, f"{car} .novelty")
    assert badge.get_attribute("data-novel") == str(answer["novel"]).lower() == "false"
    assert f"{answer['novelty_p']:.4f}" in badge.text
    flagged = browser.find_element(By.CSS_SELECTOR, ".card[data-filename='noise.jpg'] .novelty")
    assert flagged.get_attribute("data-novel") == "true" and "novel" in flagged.get_attribute("class").split()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card img.saliency")) == 2)
    wait.until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('.card img.saliency')].every(i => i.complete && i.naturalWidth > 0)"))
    shot = SCREENSHOT if os.environ.get("PERSPECTIVE_WRITE_SCREENSHOT") == "1" else tmp_path / "demo_page.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("this is not a photo")
    browser.find_element(By.ID, "files").send_keys(str(not_an_image))
    message = wait.until(seen.visibility_of_element_located((By.ID, "message")))
    assert "400" in message.text and "not an image" in message.text
