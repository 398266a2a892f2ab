"""`gencomp render`: the gallery opens in a real browser with every image decoded and every
audio clip playable, is reproducible, is replaced only on request, and bad prompts get a
one-line error.

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
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from gencomp.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-pipe", "--window-size=1200,900",
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


def assert_everything_loaded(report: dict) -> None:
    broken = [image["src"] for image in report["images"] if not image["width"] > 0]
    silent = [clip["src"] for clip in report["audio"]
              if clip["error"] is not None or not clip["duration"] > 0]
    assert not broken and not silent, f"broken images {broken}, audio without duration {silent}"


def _bench_run(bench_dir: Path) -> None:
    """A compress-bench run folder as the bench writes it: table.md and figure.png."""
    run = bench_dir / "run-1"
    run.mkdir(parents=True)
    (run / "table.md").write_text("| compressor | text rate |\n| --- | --- |\n| gzip | 32.0 |\n")
    figure = Figure(figsize=(3, 2))
    figure.subplots().bar(["gzip"], [32.0])
    figure.savefig(run / "figure.png")


#: Tiny settings: an 8×16 image, 0.06 s of audio, 8 text bytes; two codecs.
TINY = ["--compressors", "gzip,png", "--image-size", "8x16", "--audio-prompt", "0.05",
        "--audio-length", "0.01", "--prompt-bytes", "64", "--length", "8"]


@pytest.fixture(scope="module")
def tiny_gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gallery")
    _bench_run(root / "bench")
    assert main(["render", "-o", str(root / "gallery"), *TINY,
                 "--bench-dir", str(root / "bench")]) == 0
    return root / "gallery"


def test_gallery_opens_with_every_image_and_clip(tiny_gallery: Path, tmp_path: Path) -> None:
    report = inspect_page(tiny_gallery / "index.html", tmp_path / "shot.png", tmp_path / "p")
    assert_everything_loaded(report)
    sources = sorted(image["src"] for image in report["images"])
    assert sources == ["audio_spectrogram.png", "bench_figure.png", "image_grid.png"]
    assert len(report["audio"]) == 3  # the original and two compressors
    for clip in report["audio"]:
        assert clip["duration"] == pytest.approx(0.06, abs=1e-3)
    screenshot = np.asarray(Image.open(tmp_path / "shot.png").convert("L"))
    assert screenshot.shape[0] > 900 and screenshot.std() > 10  # a long, non-blank page


def test_a_broken_image_or_clip_is_caught(tiny_gallery: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_gallery, broken)
    (broken / "image_grid.png").unlink()
    (broken / "audio_gzip_code-length.wav").write_bytes(b"RIFF not really a wav")
    report = inspect_page(broken / "index.html", tmp_path / "shot.png", tmp_path / "p")
    with pytest.raises(AssertionError, match="image_grid.png.*audio_gzip_code-length.wav"):
        assert_everything_loaded(report)
    images = {image["src"]: image["width"] for image in report["images"]}
    assert images["image_grid.png"] == 0
    assert images["audio_spectrogram.png"] > 0 and images["bench_figure.png"] > 0
    assert [clip["error"] for clip in report["audio"]] == [None, 4, None]  # 4: unsupported



def test_same_seed_same_gallery_and_force_replaces_it(tiny_gallery: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    again = tmp_path / "again"
    bench = tiny_gallery.parent / "bench"
    assert main(["render", "-o", str(again), *TINY, "--bench-dir", str(bench)]) == 0
    manifest = json.loads((again / "gallery.json").read_text())
    for name in manifest["files"]:
        assert (again / name).read_bytes() == (tiny_gallery / name).read_bytes(), name

    capsys.readouterr()
    assert main(["render", "-o", str(again), *TINY, "--modalities", "text"]) == 2
    assert "--force" in _one_error_line(capsys)
    assert (again / "image_grid.png").exists()  # untouched
    assert main(["render", "-o", str(again), *TINY, "--modalities", "text", "--seed", "1",
                 "--bench-dir", str(tmp_path / "no-bench"), "--force"]) == 0
    assert sorted(path.name for path in again.iterdir()) == ["gallery.json", "index.html",
                                                             "text_samples.md"]
    assert [path.name for path in tmp_path.iterdir()] == ["again"]  # no leftover staging


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gencomp: error:"), err
    return err[0]


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_a_prompt_of_the_wrong_kind_is_one_line_and_exit_2(
        modality: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_media = tmp_path / "notes.txt"
    not_media.write_text("this is text, not a picture or a sound\n" * 20)
    output = tmp_path / "gallery"
    assert main(["render", "-o", str(output), *TINY, "--modalities", modality,
                 f"--{modality}", str(not_media)]) == 2
    assert "notes.txt" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == [not_media]  # nothing written, no staging left


@pytest.mark.parametrize("options, message", [
    (["--compressors", "nosuch"], "unknown compressor"),
    (["--samplers", "nosuch"], "unknown sampler"),
    (["--samplers", "exact"], "model compressor"),
    (["--image-size", "32by64"], "HEIGHTxWIDTH"),
    (["--modalities", "video"], "unknown modality"),
    (["--text", "/nonexistent/prompt.txt"], "not found"),
])
def test_bad_options_are_one_line_and_exit_2(options: list[str], message: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-o", str(tmp_path / "gallery"), *TINY, *options]) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "gallery").exists()


def test_never_replaces_a_folder_that_is_not_a_gallery(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    assert main(["render", "-o", str(precious), *TINY, "--modalities", "text", "--force"]) == 2
    assert "holds no gallery" in _one_error_line(capsys)
    assert [path.name for path in precious.iterdir()] == ["thesis.tex"]


def test_bench_markdown_becomes_escaped_html() -> None:
    from gencomp.render.gallery import markdown_html

    page = markdown_html("# Title\n\nText with `code` and <b>.\n\n| a | b |\n|---|---:|\n"
                         "| 1 | <script> |\n\nNotes\n- one\n  continued\n- two\n")
    assert "<h3>Title</h3>" in page and "<code>code</code>" in page
    assert "<script>" not in page and "&lt;b&gt;" in page
    assert page.count("<tr>") == 2 and page.count("<td>") == 2
    assert "<li>one continued</li><li>two</li>" in page


def test_without_bench_results_the_page_says_how_to_make_them(tmp_path: Path) -> None:
    from gencomp.render.gallery import bench_section

    section = bench_section(tmp_path / "bench")
    assert "gencomp compress-bench" in section.body and not section.files
