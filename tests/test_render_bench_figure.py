"""The benchmark figure with few data sets: bars keep a bar's width, each panel centres
the compressors it has, and the unchunked panel says which compressors it leaves out."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gencomp.bench_report import MAX_BAR_WIDTH, figure_png, rates_figure


def _row(compressor: str, chunked: float, unchunked: float | None) -> dict:
    return {"compressor": compressor, "dataset": "text", "is_model": unchunked is None,
            "chunked_rate": chunked, "unchunked_rate": unchunked, "num_parameters": 0}


def test_one_data_set_gets_narrow_centred_bars_and_a_note() -> None:
    figure = rates_figure([_row("cm", 43.1, None), _row("gzip", 49.1, 36.5)])
    chunked, unchunked = figure.axes
    for axis in (chunked, unchunked):
        assert axis.get_xlim() == (-0.5, 0.5)
        assert all(bar.get_width() <= MAX_BAR_WIDTH for bar in axis.patches)
    (gzip_bar,) = unchunked.patches
    assert gzip_bar.get_x() + gzip_bar.get_width() / 2 == pytest.approx(0)  # centred
    assert gzip_bar.get_height() == 36.5
    assert "without cm" in unchunked.get_title()
    assert [bar.get_height() for bar in chunked.patches] == [43.1, 49.1]
    assert chunked.patches[1].get_facecolor() == gzip_bar.get_facecolor()  # gzip's colour
    assert Image.open(io.BytesIO(figure_png([_row("gzip", 49.1, 36.5)]))).format == "PNG"
