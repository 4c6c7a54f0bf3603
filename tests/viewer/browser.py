"""A headless Chromium driven through Debian's chromedriver, over the W3C WebDriver HTTP protocol (standard
library only: no Selenium needed).

    with Browser.start(width=1280, height=720) as browser:
        browser.open(Path("out/index.html"))
        browser.run("return document.title")
        png = browser.screenshot()          # H x W x 3 uint8 RGB of the viewport
        browser.console()                   # console messages since the last call (level, text)

WebGL runs on SwiftShader (Chromium's software GL), so the 3D view renders without a GPU or a display.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Debian's packages (apt-get install chromium chromium-driver)
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
DRIVER_CANDIDATES = ("/usr/lib/chromium/chromedriver", "chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--use-angle=swiftshader",  # WebGL in software
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) executables, or None when either is missing."""

    def which(names):
        for name in names:
            path = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
            if path:
                return path
        return None

    browser, driver = which(CHROMIUM_CANDIDATES), which(DRIVER_CANDIDATES)
    return (browser, driver) if browser and driver else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriverError(RuntimeError):
    pass


@dataclass
class Browser:
    driver: subprocess.Popen
    url: str
    session: str

    @classmethod
    @contextlib.contextmanager
    def start(cls, *, width: int = 1280, height: int = 720, timeout: float = 30.0):
        found = find_chromium()
        if found is None:
            raise FileNotFoundError("chromium and chromedriver not found (apt-get install chromium chromium-driver)")
        binary, driver_path = found
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        work = Path(tempfile.mkdtemp(prefix="maed_chromium_"))  # the browser's fresh profile and the driver's log
        browser = None
        with open(work / "chromedriver.log", "wb") as log:
            driver = subprocess.Popen([driver_path, f"--port={port}"], stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        if _request("GET", f"{url}/status", None, 2.0)["value"].get("ready"):
                            break
                    except (OSError, WebDriverError):
                        pass
                    if time.monotonic() > deadline or driver.poll() is not None:
                        log.flush()
                        tail = (work / "chromedriver.log").read_text(errors="replace")[-2000:]
                        raise WebDriverError(f"chromedriver did not start: {tail}")
                    time.sleep(0.1)
                caps = {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": binary,
                        "args": [*FLAGS, f"--user-data-dir={work / 'profile'}", f"--window-size={width},{height}"],
                    },
                    "goog:loggingPrefs": {"browser": "ALL"},
                }
                value = _request("POST", f"{url}/session", {"capabilities": {"alwaysMatch": caps}}, 60.0)["value"]
                browser = cls(driver=driver, url=url, session=value["sessionId"])
                yield browser
            finally:
                if browser is not None:
                    with contextlib.suppress(OSError, WebDriverError):
                        _request("DELETE", f"{url}/session/{browser.session}", None, 10.0)
                driver.terminate()
                try:
                    driver.wait(10)
                except subprocess.TimeoutExpired:
                    driver.kill()
                    driver.wait()
                shutil.rmtree(work, ignore_errors=True)

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 60.0):
        return _request(method, f"{self.url}/session/{self.session}{path}", body, timeout)["value"]

    def open(self, page: str | os.PathLike) -> None:
        """Navigate to a local file (as a file:// URL) and wait for its load event."""
        self._call("POST", "/url", {"url": Path(page).resolve().as_uri()})

    def run(self, script: str, *args, timeout: float = 60.0):
        """Run a function body in the page (``return ...``; a returned promise is awaited) and return its value."""
        return self._call("POST", "/execute/sync", {"script": script, "args": list(args)}, timeout)

    def click(self, css: str) -> None:
        """Click the element that the CSS selector names, as a user would (scrolled into view, at its centre)."""
        found = self._call("POST", "/element", {"using": "css selector", "value": css})
        element = next(iter(found.values()))
        self._call("POST", f"/element/{element}/click", {})

    def screenshot(self) -> np.ndarray:
        """The viewport as H x W x 3 uint8 RGB."""
        import cv2

        png = base64.b64decode(self._call("GET", "/screenshot"))
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def console(self) -> list[tuple[str, str]]:
        """Console messages and page errors since the last call: (level, text), level SEVERE for errors."""
        entries = self._call("POST", "/se/log", {"type": "browser"})
        return [(e["level"], e["message"]) for e in entries]


def _request(method: str, url: str, body: dict | None, timeout: float) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        try:
            value = json.loads(e.read())["value"]
            message = f"{value.get('error')}: {value.get('message', '').splitlines()[0]}"
        except (ValueError, KeyError, IndexError):
            message = str(e)
        raise WebDriverError(f"{method} {url}: {message}") from None
