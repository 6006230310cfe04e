"""A real headless browser for page tests: Debian's chromium, driven through chromium-driver by Selenium.

chromedriver listens on a free loopback port and starts chromium, whose DevTools endpoint is on
loopback too; `stop` ends both (and any child chromium process) by process id. No browser is a test
failure, not a skip: `make test` and `.ci/run` install one where missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

# What a page test reads back: every image's state, the console, and whatever a probe script returns.
_IMAGES = "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LoadedPage:
    images: list[tuple[str, bool, int]]
    console: list[dict]
    title: str

    def errors(self) -> list[str]:
        return [entry["message"] for entry in self.console if entry.get("level") == "SEVERE"]

    def broken_images(self) -> list[str]:
        return [alt for alt, complete, width in self.images if not complete or width <= 0]


class Browser:
    def __init__(self, profile: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        driver = shutil.which("chromedriver")
        if chromium is None or driver is None:
            pytest.fail("no headless browser: install Debian's `chromium` and `chromium-driver` "
                        "(`make browser` does, as part of `make test` and `.ci/run`)")
        os.environ.setdefault("SE_OFFLINE", "true")  # Selenium must never try to download a driver
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--disable-extensions", "--disable-background-networking",
                         f"--user-data-dir={profile}", "--window-size=1280,2000"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.service = Service(executable_path=driver, port=free_loopback_port(),
                               service_args=["--allowed-ips=127.0.0.1"])
        self.driver = webdriver.Chrome(options=options, service=self.service)
        self.pids = [self.service.process.pid] + [p.pid for p in psutil.Process(self.service.process.pid).children(recursive=True)]

    def load(self, page: Path) -> LoadedPage:
        """Open a local page, wait until it and its images are loaded, read the console since the last load."""
        self.driver.get(page.resolve().as_uri())
        deadline = time.monotonic() + 30
        while self.driver.execute_script("return document.readyState") != "complete" and time.monotonic() < deadline:
            time.sleep(0.05)
        return LoadedPage(images=[tuple(i) for i in self.driver.execute_script(_IMAGES)],
                          console=self.driver.get_log("browser"), title=self.driver.title)

    def run(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def stop(self) -> None:
        try:
            self.driver.quit()
        finally:
            for pid in self.pids:
                try:
                    process = psutil.Process(pid)
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=5)
                except psutil.NoSuchProcess:
                    continue
                except psutil.TimeoutExpired:
                    process.kill()
