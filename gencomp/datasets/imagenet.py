"""ImageNet: every image of a folder (recursive, sorted paths), grayscale as the paper
prepares it (`gencomp.preprocessing`), cut into non-overlapping 32×64 patches in row-major
order; a chunk is one patch, its 32 rows of 64 pixels one after the other (other chunk sizes
use the two closest factors, as PNG does)."""

from __future__ import annotations

from PIL import Image

from gencomp.datasets.base import DataSource, Segment
from gencomp.errors import UsageError
from gencomp.preprocessing import closest_factors, grayscale_image, image_patches


class ImageNet(DataSource):
    name = "image"
    title = "ImageNet"
    subfolder = "imagenet"
    suffixes = (".jpeg", ".jpg", ".png")
    paper_rates = {
        "unchunked": {"gzip": 70.7, "lzma2": 57.9, "png": 58.5, "flac": 61.9},
        "chunked": {"gzip": 68.6, "lzma2": 62.4, "png": 61.7, "flac": 60.9},
    }
    paper_chinchilla_rate = 48.0

    def count(self, source: str, chunk_size: int) -> int:
        rows, columns = closest_factors(chunk_size)
        try:
            with Image.open(source) as image:
                width, height = image.size
        except OSError as error:
            raise UsageError(f"cannot read image {source}: {error}") from error
        return (height // rows) * (width // columns)

    def read(self, segment: Segment, chunk_size: int) -> list[bytes]:
        return image_patches(grayscale_image(segment.source), segment.first,
                             segment.num_chunks, chunk_size)
