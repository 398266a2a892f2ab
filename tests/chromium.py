"""A gallery page in a real browser: every image decoded, every clip's duration, and a
screenshot of the whole page.

    python -m tests.chromium outputs/curated/index.html outputs/curated/screenshot.png

Chromium (the Debian package `chromium`) runs headless and is driven over
the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages separated by NUL
bytes on file descriptors 3 and 4), so no Python browser library is needed. The page is
asked, in its own JavaScript, to wait until the document has loaded and every <audio> has
its metadata (or failed), then to report each image's naturalWidth and each clip's
duration; the page is also screenshotted.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: A common laptop window: the page should use its width.
WINDOW_WIDTH = 1280
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-pipe", f"--window-size={WINDOW_WIDTH},900", "--hide-scrollbars",
]
TIMEOUT_SECONDS = 60

#: Called with the page's URL; resolves once that page (not the about:blank before it) has
#: loaded and every <audio> has its metadata or an error.
REPORT_FUNCTION = """
url => new Promise(resolve => {
  const ready = () => location.href === url && document.readyState === "complete" &&
      [...document.querySelectorAll("audio")].every(audio => audio.readyState >= 1 ||
                                                               audio.error);
  const report = () => ({
    images: [...document.images].map(image => ({src: image.getAttribute("src"),
                                                 width: image.naturalWidth})),
    audio: [...document.querySelectorAll("audio")].map(audio => ({
        src: audio.getAttribute("src"), duration: audio.duration || 0,
        error: audio.error ? audio.error.code : null})),
  });
  const poll = () => ready() ? resolve(JSON.stringify(report())) : setTimeout(poll, 50);
  poll();
})
"""


class Chromium:
    """A headless Chromium and a DevTools session on one page."""

    def __init__(self, profile: Path) -> None:
        if CHROMIUM is None:
            raise AssertionError("chromium is not installed: apt-get install -y chromium")
        to_browser_read, to_browser_write = os.pipe()
        from_browser_read, from_browser_write = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4; move our ends out of
        # the way first so that the dup2 calls in the child cannot clobber one another.
        child_read = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_write = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_browser_read)
        os.close(from_browser_write)

        def connect_pipes() -> None:
            os.dup2(child_read, 3)
            os.dup2(child_write, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=connect_pipes, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(child_read)
        os.close(child_write)
        self.commands = to_browser_write
        self.replies = from_browser_read
        self.buffer = b""
        self.last_id = 0
        self.session: str | None = None

    def call(self, method: str, **params: object) -> dict:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:
            while b"\0" not in self.buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self.replies], [], [], remaining)[0]:
                    raise AssertionError(f"chromium did not answer {method} in time")
                chunk = os.read(self.replies, 1 << 20)
                if not chunk:
                    raise AssertionError(f"chromium exited during {method}")
                self.buffer += chunk
            raw, _, self.buffer = self.buffer.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        self.call("Page.navigate", url=url)

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            os.close(self.commands)
            os.close(self.replies)


def inspect_page(page: Path, screenshot: Path, profile: Path) -> dict:
    """Open `page` in Chromium; return its images and audio report; save a screenshot."""
    browser = Chromium(profile)
    try:
        url = page.resolve().as_uri()
        browser.open(url)
        result = browser.call("Runtime.evaluate", awaitPromise=True, returnByValue=True,
                              expression=f"({REPORT_FUNCTION})({json.dumps(url)})")
        report = json.loads(result["result"]["value"])
        shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()
    return report


def assert_everything_loaded(report: dict, min_seconds: float = 0.0) -> None:
    """Every image decoded, every clip decoded and at least `min_seconds` long."""
    broken = [image["src"] for image in report["images"] if not image["width"] > 0]
    silent = [clip["src"] for clip in report["audio"]
              if clip["error"] is not None or not clip["duration"] > 0]
    short = [f"{clip['src']} ({clip['duration']:.3f} s)" for clip in report["audio"]
             if 0 < clip["duration"] < min_seconds]
    assert not broken and not silent and not short, \
        f"broken images {broken}, audio without duration {silent}, shorter than " \
        f"{min_seconds} s: {short}"


def main(page: Path, screenshot: Path) -> None:
    """Check `page` and save its screenshot as a 256-colour PNG (a third of the size)."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as scratch:
        shot = Path(scratch) / "shot.png"
        report = inspect_page(page, shot, Path(scratch) / "profile")
        Image.open(shot).convert("RGB").quantize(256).save(screenshot, optimize=True)
    print(json.dumps(report, indent=1))
    assert_everything_loaded(report, min_seconds=1.0)


if __name__ == "__main__":
    main(*map(Path, sys.argv[1:3]))
