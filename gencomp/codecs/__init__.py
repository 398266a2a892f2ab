"""Built-in codecs. Importing this package registers every one of them.

One module per family: `bytestream` (gzip, bz2, zstd, brotli: a library turns bytes into a
byte stream), `lzma2` (.xz files, raw LZMA2 code lengths), `png` (bytes as a grayscale
image), `flac` (bytes as 8-bit audio), `predictive` (a predictor plus an arithmetic coder).
"""

from gencomp.codecs import bytestream, flac, lzma2, png, predictive  # noqa: F401
