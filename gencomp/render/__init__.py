"""Rendering what compressors generate, so people can look at it and listen to it: pure
functions from data to PNG, WAV and HTML (nothing here samples, reads or writes files).

- `images`: the paper's Figure 3 grid (original, then one enlarged panel per compressor,
  a red bar between the given and the generated pixels).
- `audio`: exact 8-bit WAV files and a waveform + spectrogram figure.
- `text`: continuations with every byte visible, as HTML and Markdown.
- `page`: the gallery page's sections and the page itself; `gencomp.gallery` (the
  `gencomp render` application) generates what they show.
"""

from gencomp.render.audio import AudioClip, audio_figure, figure_png, wav_bytes, wav_samples
from gencomp.render.images import ImagePanel, image_grid, image_prompt_region
from gencomp.render.text import TextSample, text_html, text_markdown, visible_text

__all__ = [
    "AudioClip",
    "ImagePanel",
    "TextSample",
    "audio_figure",
    "figure_png",
    "image_grid",
    "image_prompt_region",
    "text_html",
    "text_markdown",
    "visible_text",
    "wav_bytes",
    "wav_samples",
]
