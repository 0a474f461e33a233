"""Headless Chromium for the browser tests (Debian's chromium and chromium-driver, through Selenium)."""

from __future__ import annotations

import shutil
from contextlib import contextmanager

import pytest

needs_chromium = pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")


@contextmanager
def chromium(width: int = 1200, height: int = 900):
    """A headless Chromium window of ``width`` x ``height``, quit afterwards."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()
