"""Rendering: every byte visible in text, exact pixels in the grid, exact samples in WAV."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gencomp.errors import UsageError
from gencomp.render import (
    AudioClip,
    ImagePanel,
    TextSample,
    audio_figure,
    figure_png,
    image_grid,
    image_prompt_region,
    text_html,
    text_markdown,
    visible_text,
    wav_bytes,
    wav_samples,
)
from gencomp.render.audio import SPECTROGRAM_HOP, loudest_window, spectrogram_sides
from gencomp.render.images import BAR_PIXELS, BOUNDARY_COLOR

_ESCAPE = re.compile(r"\\x([0-9a-f]{2})|\\u([0-9a-f]{4})|\\U([0-9a-f]{8})|\\\\|↵\n|⇥|(.)",
                     re.DOTALL)


def parse_visible(text: str) -> bytes:
    """The inverse of `visible_text`, written independently from its rules."""
    output = bytearray()
    for match in _ESCAPE.finditer(text):
        byte, short, long, literal = match.groups()
        if byte is not None:
            output.append(int(byte, 16))
        elif short or long:
            output += chr(int(short or long, 16)).encode("utf-8")
        elif literal is not None:
            assert literal.isprintable() and literal not in "↵⇥\\", repr(literal)
            output += literal.encode("utf-8")
        else:
            output += {"\\\\": b"\\", "↵\n": b"\n", "⇥": b"\t"}[match.group(0)]
    return bytes(output)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=32).map(lambda text: text.encode("utf-8")))
def test_visible_text_shows_every_byte_and_loses_none(data: bytes) -> None:
    shown = visible_text(data)
    assert all(character.isprintable() or character == "\n" for character in shown)
    assert parse_visible(shown) == data


def test_visible_text_examples() -> None:
    assert visible_text(b"plain text, 42!") == "plain text, 42!"
    assert visible_text(b"a\x00b\n\tc\\") == "a\\x00b↵\n⇥c\\\\"
    assert visible_text("café —".encode()) == "café —"
    assert visible_text(b"\xff\xc3") == "\\xff\\xc3"  # invalid UTF-8: raw bytes
    assert visible_text("\x85".encode()) == "\\u0085"  # valid but not printable


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=40))
def test_html_text_is_escaped_and_shows_the_same_text(prompt: bytes, continuation: bytes) -> None:
    page = text_html(prompt + b"<script>x</script>&amp;", [TextSample("gzip", continuation)])
    parser = _TextOf()
    parser.feed(page)
    assert "script" not in parser.tags
    shown = "".join(parser.text)
    assert visible_text(prompt + b"<script>x</script>&amp;") + visible_text(continuation) in shown


def test_markdown_table_keeps_one_cell_per_column() -> None:
    nasty = b"a | b ` *c* <d>\n| e \\"
    markdown = text_markdown(nasty, [TextSample("gzip · code-length", nasty)])
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    for row in rows:
        assert len(re.split(r"(?<!\\)\|", row)) == 4, row  # "", label, text, ""
    assert "<d>" not in markdown and "\\<d\\>" in markdown


def _stripes(height: int, width: int, offset: int = 0) -> np.ndarray:
    return ((np.arange(height * width).reshape(height, width) * 37 + offset) % 256).astype(
        np.uint8)


def test_image_grid_places_every_pixel_and_the_bar() -> None:
    original, generated = _stripes(4, 6), _stripes(4, 6, offset=100)
    scale, split = 5, 3
    grid = np.asarray(image_grid([ImagePanel("original", original),
                                  ImagePanel("gzip · code-length", generated)],
                                 split_column=split, scale=scale, title="a title"))
    panel_height = 4 * scale
    # Find each panel by its first pixel, then check every source pixel and the bar.
    for panel in (original, generated):
        corner = np.argwhere((grid == panel[0, 0]).all(axis=2))
        tops = {(row, column) for row, column in corner
                if (grid[row:row + scale, column:column + scale] == panel[0, 0]).all()}
        assert tops, "panel not found"
        top, left = min(tops)
        for row in range(4):
            for column in range(6):
                x = left + column * scale + (BAR_PIXELS if column >= split else 0)
                block = grid[top + row * scale:top + (row + 1) * scale, x:x + scale]
                assert (block == panel[row, column]).all()
        bar = grid[top:top + panel_height, left + split * scale:left + split * scale + BAR_PIXELS]
        assert (bar == BOUNDARY_COLOR).all()


def test_image_grid_lays_panels_out_in_columns() -> None:
    panels = [ImagePanel(f"panel {index}", _stripes(4, 6, offset=index)) for index in range(5)]
    one = image_grid(panels, split_column=3, scale=5)
    two = image_grid(panels, split_column=3, scale=5, columns=2)
    assert two.size[0] > 1.8 * one.size[0] - 20 and two.size[1] < 0.7 * one.size[1]
    with pytest.raises(UsageError):
        image_grid(panels, columns=0)


def test_image_grid_rejects_mismatched_panels() -> None:
    with pytest.raises(UsageError):
        image_grid([ImagePanel("a", _stripes(4, 6)), ImagePanel("b", _stripes(4, 8))])
    with pytest.raises(UsageError):
        image_grid([ImagePanel("a", _stripes(4, 6).astype(np.int16))])


def test_image_prompt_region_downscales_the_centre_faithfully() -> None:
    small = _stripes(8, 16)
    assert (image_prompt_region(small, 8, 16) == small).all()
    doubled = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)
    framed = np.zeros((40, 32), dtype=np.uint8)  # taller than 1:2, so the centre is cut
    framed[12:28] = doubled
    assert (image_prompt_region(framed, 8, 16) == small).all()
    with pytest.raises(UsageError):
        image_prompt_region(small, 16, 32)


def test_wav_holds_exactly_the_samples() -> None:
    samples = np.random.default_rng(0).integers(0, 256, 1234).astype(np.uint8)
    wav = wav_bytes(samples)
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    assert len(wav) == 44 + len(samples)  # 8-bit PCM: one byte per sample after the header
    assert (wav_samples(wav) == samples).all()
    with pytest.raises(UsageError):
        wav_bytes(samples.astype(np.int16))


def test_loudest_window_finds_the_speech() -> None:
    samples = np.full(16000, 128, dtype=np.uint8)
    samples[9000:10000] = np.random.default_rng(1).integers(0, 256, 1000)
    start = loudest_window(samples, 1000, step=100)
    assert start == 9000
    with pytest.raises(UsageError):
        loudest_window(samples[:10], 1000)


def test_audio_figure_draws_one_row_per_clip() -> None:
    rng = np.random.default_rng(2)
    clips = [AudioClip(label, rng.integers(0, 256, 1600).astype(np.uint8), 1200)
             for label in ("original", "gzip · code-length", "flac · code-length")]
    image = Image.open(io.BytesIO(figure_png(audio_figure(clips))))
    assert image.format == "PNG"
    width, height = image.size
    assert width == 1200 and 500 <= height <= 600  # 1.9 inches per row at 100 dpi


def test_the_spectrogram_changes_exactly_at_the_prompts_end() -> None:
    """Silence given, noise generated: every spectrogram column left of the boundary is
    silent and every column right of it loud, and the two sides meet at the boundary (a
    frame centred on its window would put noise half a window, 8 ms, before it)."""
    samples = np.full(6000, 128, dtype=np.uint8)
    samples[4000:] = np.random.default_rng(3).integers(0, 256, 2000)
    (before, start, end), (after, after_start, after_end) = spectrogram_sides(samples, 4000)
    assert end == after_start == 4000 / 16000
    assert start >= 0 and after_end <= 6000 / 16000
    assert before.max() < -90  # nothing but the floor: no generated sample leaked in
    assert after.max(axis=0).min() > 40  # every column after the boundary is loud
    columns = before.shape[1] + after.shape[1]
    assert columns * SPECTROGRAM_HOP == pytest.approx((after_end - start) * 16000)
