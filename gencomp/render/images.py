"""Image continuations as a grid in the spirit of the paper's Figure 3.

One labelled panel per compressor, the original first, in one column or several. Every
panel is enlarged with nearest-neighbour (so each pixel stays a crisp square) and split by
a coloured bar between the given pixels and the generated ones. The bar is inserted
*between* pixels, so it hides none of them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gencomp.errors import UsageError

BOUNDARY_COLOR = (228, 26, 28)
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (20, 20, 20)
BAR_PIXELS = 3
MARGIN = 8
FONT_SIZE = 15


@dataclass(frozen=True)
class ImagePanel:
    """One row of the grid: a label and a uint8 grayscale image (H, W)."""

    label: str
    image: np.ndarray


def enlarge_to(image: np.ndarray, min_width: int = 384) -> int:
    """The integer scale that makes `image` at least `min_width` pixels wide."""
    return max(1, -(-min_width // image.shape[1]))


def _insert_bar(panel: Image.Image, scale: int, split_column: int | None,
                split_row: int | None) -> Image.Image:
    """The enlarged panel with a bar inserted after `split_column` (or `split_row`)."""
    width, height = panel.size
    if split_column is not None:
        cut = split_column * scale
        framed = Image.new("RGB", (width + BAR_PIXELS, height), BOUNDARY_COLOR)
        framed.paste(panel.crop((0, 0, cut, height)), (0, 0))
        framed.paste(panel.crop((cut, 0, width, height)), (cut + BAR_PIXELS, 0))
        return framed
    if split_row is not None:
        cut = split_row * scale
        framed = Image.new("RGB", (width, height + BAR_PIXELS), BOUNDARY_COLOR)
        framed.paste(panel.crop((0, 0, width, cut)), (0, 0))
        framed.paste(panel.crop((0, cut, width, height)), (0, cut + BAR_PIXELS))
        return framed
    return panel


def image_grid(panels: Sequence[ImagePanel], *, split_column: int | None = None,
               split_row: int | None = None, scale: int | None = None, columns: int = 1,
               title: str = "") -> Image.Image:
    """The grid as an RGB image: labelled, enlarged panels, `columns` to a line, each label
    above its panel.

    `split_column` marks row-wise continuation (each row's first `split_column` pixels were
    given, the rest generated: the paper's setup); `split_row` marks a patch whose first
    `split_row` rows were given. The original gets the bar too, so panels line up.
    """
    if not panels:
        raise UsageError("an image grid needs at least one panel")
    if not isinstance(columns, int) or columns < 1:
        raise UsageError(f"columns must be a positive integer, got {columns!r}")
    shape = panels[0].image.shape
    for panel in panels:
        if panel.image.dtype != np.uint8 or panel.image.ndim != 2 or panel.image.shape != shape:
            raise UsageError(f"panel {panel.label!r}: expected a 2-D uint8 image of shape "
                             f"{shape}, got {panel.image.dtype} {panel.image.shape}")
    scale = scale or enlarge_to(panels[0].image)
    rendered = [
        _insert_bar(Image.fromarray(panel.image).convert("RGB").resize(
            (shape[1] * scale, shape[0] * scale), Image.Resampling.NEAREST),
            scale, split_column, split_row)
        for panel in panels
    ]
    panel_width, panel_height = rendered[0].size
    font = ImageFont.load_default(size=FONT_SIZE)
    columns = min(columns, len(panels))
    cell_width = int(max(panel_width, *(font.getlength(panel.label) for panel in panels)))
    cell_height = FONT_SIZE + MARGIN // 2 + panel_height
    lines = -(-len(panels) // columns)
    title_height = FONT_SIZE + MARGIN if title else 0
    width = int(max(columns * (cell_width + MARGIN) + MARGIN,
                    font.getlength(title) + 2 * MARGIN))
    height = MARGIN + title_height + lines * (cell_height + MARGIN)
    grid = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    draw.text((MARGIN, MARGIN), title, fill=TEXT_COLOR, font=font)
    for index, (panel, image) in enumerate(zip(panels, rendered, strict=True)):
        line, column = divmod(index, columns)
        left = MARGIN + column * (cell_width + MARGIN)
        top = MARGIN + title_height + line * (cell_height + MARGIN)
        draw.text((left, top), panel.label, fill=TEXT_COLOR, font=font)
        grid.paste(image, (left, top + FONT_SIZE + MARGIN // 2))
    return grid


def png_bytes(image: Image.Image) -> bytes:
    """PNG file bytes of a Pillow image."""
    with io.BytesIO() as buffer:
        image.save(buffer, format="PNG")
        return buffer.getvalue()


def image_prompt_region(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centre of `image` at aspect `height:width`, downscaled to exactly (height, width).

    Box filtering averages whole source pixels, so the region is a faithful small version
    of the photo (a 32×64 patch of a full image instead of a 32×64 crop of texture).
    """
    source_height, source_width = image.shape
    if source_height < height or source_width < width:
        raise UsageError(f"image is {source_height}x{source_width}, smaller than the "
                         f"requested {height}x{width} region")
    crop_height = min(source_height, source_width * height // width)
    crop_width = min(source_width, crop_height * width // height)
    top = (source_height - crop_height) // 2
    left = (source_width - crop_width) // 2
    region = Image.fromarray(image).crop((left, top, left + crop_width,
                                                    top + crop_height))
    return np.asarray(region.resize((width, height), Image.Resampling.BOX), dtype=np.uint8)
