"""Built-in codecs, one module per family: `bytestream` (gzip, bz2, zstd, brotli: a library
turns bytes into a byte stream), `lzma2` (.xz files, raw LZMA2 code lengths), `png` (bytes as
a grayscale image), `flac` (bytes as 8-bit audio), `predictive` (a predictor plus an
arithmetic coder).

Importing this package loads none of them: `gencomp.compressor.BUILTIN_CODECS` names the
module of each compressor, and the registry imports it when that compressor is asked for.
"""
