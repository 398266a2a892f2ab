"""Images and audio as prompts: loading the paper's way, continuing, and the PNG layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from gencomp import get_compressor
from gencomp.codecs.png import PngImageLayout, complete_last_row
from gencomp.errors import UsageError
from gencomp.render import wav_bytes
from gencomp.render.audio import loudest_window
from samplers import sample_continuation
from samplers.defaults import SIGNAL_MODEL_SETTINGS
from samplers.modalities import (
    continue_audio,
    continue_image_rows,
    continue_patch,
    load_audio_prompt,
    load_image_prompt,
)
from samplers.quality import (
    PLAUSIBLE_FLATNESS,
    PLAUSIBLE_LOUDNESS,
    loudness,
    plausible_roughness,
    roughness,
    spectral_flatness,
    textured,
)


@pytest.fixture(scope="module")
def small_image() -> np.ndarray:
    rows, columns = np.mgrid[0:6, 0:16]
    return ((rows * 20 + columns * 7) % 256).astype(np.uint8)


def test_load_image_prompt_is_the_mean_of_rgb(data_dir: Path, tmp_path: Path) -> None:
    jpeg = sorted((data_dir / "imagenet").glob("*.JPEG"))[0]
    image = load_image_prompt(jpeg)
    assert image.dtype == np.uint8 and image.ndim == 2
    rgb = np.asarray(Image.open(jpeg).convert("RGB"), dtype=np.float64)
    np.testing.assert_array_equal(image, np.mean(rgb, axis=-1).astype(np.uint8))
    image[0, 0] ^= 0xFF  # a copy: the loader's cache is untouched
    assert load_image_prompt(jpeg)[0, 0] != image[0, 0]


def test_load_image_prompt_refuses_what_is_not_an_image(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(UsageError, match="cannot read image"):
        load_image_prompt(text)
    with pytest.raises(UsageError, match="not found"):
        load_image_prompt(tmp_path / "missing.png")


def test_load_audio_prompt_librispeech(data_dir: Path) -> None:
    flac = sorted((data_dir / "librispeech").rglob("*.flac"))[0]
    samples = load_audio_prompt(flac, seconds=0.1)
    assert samples.dtype == np.uint8 and samples.shape == (1600,)
    original, rate = soundfile.read(flac, frames=1600, dtype="int16")
    assert rate == 16000
    np.testing.assert_array_equal(samples, ((original >> 8) + 128).astype(np.uint8))


def test_load_audio_prompt_mixes_and_resamples(tmp_path: Path) -> None:
    tone = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 50) * 20000).astype(np.int16)
    path = tmp_path / "stereo8k.wav"
    soundfile.write(path, np.stack([tone, tone], axis=1), 8000, subtype="PCM_16")
    samples = load_audio_prompt(path)
    assert samples.shape == (16000,)  # one second at 16 kHz
    assert abs(int(samples.max()) - (20000 // 256 + 128)) <= 1
    with pytest.raises(UsageError, match="cannot read audio"):
        (tmp_path / "x.wav").write_bytes(b"RIFF garbage")
        load_audio_prompt(tmp_path / "x.wav")


def test_wav_round_trip(tmp_path: Path) -> None:
    samples = np.arange(256, dtype=np.uint8)
    path = tmp_path / "a.wav"
    path.write_bytes(wav_bytes(samples))
    np.testing.assert_array_equal(load_audio_prompt(path), samples)


@pytest.mark.parametrize("unit", ["bytes", "bits"])
def test_png_scores_partial_images_without_a_padding_artifact(unit: str) -> None:
    image_png = get_compressor("png").for_image(16)
    assert isinstance(image_png, PngImageLayout) and image_png.params == {"width": 16}
    gzip = get_compressor("gzip")
    assert gzip.for_image(16) is gzip
    data = bytes(range(100, 140))
    # Shorter than a row: a row of its own length.
    row = get_compressor("png", width=10)
    assert image_png.code_length_bits(data[:10], unit) == (
        row.code_length_bits(data[:10]) if unit == "bytes" else
        row.streaming_bits(data[:10], data[:10]))
    # A partial last row is completed as PNG's Average filter predicts it, not by zeros;
    # in bytes the completed file is counted, in bits what a decoder reads until the last
    # real pixel (tests/test_bit_lengths.py checks that count).
    completed = complete_last_row(data[:20], 16)  # row 1 has 4 pixels; 12 are predicted
    left = data[19]
    for column in range(4, 16):  # each the floor of the mean of its left and upper pixels
        left = (left + data[column]) // 2
        assert completed[16 + column] == left
    assert len(completed) == 32 and completed[:20] == data[:20]
    assert complete_last_row(data[:32], 16) == data[:32]
    full = get_compressor("png", width=16)
    if unit == "bytes":
        assert image_png.code_length_bits(data[:20], unit) == full.code_length_bits(completed)
    else:
        assert image_png.code_length_bits(data[:20], unit) < full.code_length_bits(completed,
                                                                                   unit)
    # Files are plain PNG at the image width.
    assert image_png.decompress(image_png.compress(data[:20])) == data[:20]
    assert image_png.compress(data[:20]) == get_compressor("png", width=16).compress(data[:20])


@pytest.mark.parametrize("name", ["png", "gzip"])
def test_continue_image_rows_keeps_first_halves(name: str, small_image: np.ndarray) -> None:
    compressor = get_compressor(name)
    result = continue_image_rows(compressor, small_image, seed=3)
    assert result.shape == small_image.shape and result.dtype == np.uint8
    np.testing.assert_array_equal(result[:, :8], small_image[:, :8])
    np.testing.assert_array_equal(result, continue_image_rows(compressor, small_image, seed=3))
    # Row r is the continuation of its first half alone, sampled with seed + r.
    layout = compressor.for_image(16)
    row = sample_continuation(layout, small_image[2, :8].tobytes(), 8, seed=5)
    np.testing.assert_array_equal(result[2, 8:], np.frombuffer(row, dtype=np.uint8))


def test_continue_image_rows_with_rows_above(small_image: np.ndarray) -> None:
    png = get_compressor("png")
    result = continue_image_rows(png, small_image, seed=0, rows_above=2, sampler="lookahead",
                                 horizon=4)
    row = sample_continuation(png.for_image(16), small_image[1:3].tobytes()
                              + small_image[3, :8].tobytes(), 8, "lookahead", horizon=4,
                              seed=3)
    np.testing.assert_array_equal(result[3, 8:], np.frombuffer(row, dtype=np.uint8))


def test_continue_patch(small_image: np.ndarray) -> None:
    result = continue_patch(get_compressor("png"), small_image, rows_given=4, seed=1)
    np.testing.assert_array_equal(result[:4], small_image[:4])
    assert result.shape == small_image.shape
    with pytest.raises(UsageError, match="rows_given"):
        continue_patch(get_compressor("png"), small_image, rows_given=7)


def test_frozen_cm_continues_real_patches_as_rough_as_the_images(data_dir: Path) -> None:
    """Issue 16: the bottom half of real 32×64 crops from their top half, sampled as
    `gencomp sample` does (frozen, T 0.8): both roughness ratios within 0.5-2 in at least
    70 % of the textured crops of the first 16 images, which noise (3-35) or stripes
    (≈ 0 across rows) would fail."""
    crops = []
    for path in sorted((data_dir / "imagenet").glob("*.JPEG"))[:16]:
        image = load_image_prompt(path)
        top, left = (image.shape[0] - 32) // 2, (image.shape[1] - 64) // 2
        crop = image[top:top + 32, left:left + 64]
        if textured(crop):
            crops.append(crop)
    cm = get_compressor("cm")
    plausible = [plausible_roughness(roughness(
        continue_patch(cm, crop, 16, seed=index, **SIGNAL_MODEL_SETTINGS["patch"]), crop,
        (16, 0))) for index, crop in enumerate(crops)]
    assert len(crops) >= 10 and np.mean(plausible) >= 0.7, plausible


def test_flac_scores_audio_in_a_sliding_window_of_one_frame(data_dir: Path) -> None:
    """FLAC's frames are independent: past a frame boundary its own code lengths forget the
    context, so for audio it scores each candidate with the frame's worth of samples
    before it: in bytes as the plain codec codes that window, in bits by the Rice code of
    the candidate's residual under the predictor fitted to the prompt, cheapest nearest
    the prediction."""
    flac = get_compressor("flac")
    audio = load_audio_prompt(sorted((data_dir / "librispeech").rglob("*.flac"))[1]).tobytes()
    assert get_compressor("gzip").for_audio(audio[:10]).name == "gzip"
    context = audio[20_000:20_000 + 4096 + 10]  # the candidate would start a new frame
    window = flac.for_audio(context[:4000])
    candidates = [bytes([value]) for value in range(256)]
    expected = [flac.code_length_bits((context + candidate)[-4096:], "bytes")
                for candidate in candidates[::15]]
    scored = window.continuation_bits(context, candidates[::15], "bytes")
    np.testing.assert_array_equal(scored - scored[0], np.array(expected) - expected[0])
    # The plain codec's own lengths see only the 11 samples of the new frame.
    plain = flac.continuation_bits(context, candidates, "bits")
    np.testing.assert_array_equal(plain, flac.continuation_bits(context[-10:], candidates,
                                                                 "bits"))
    bits = window.continuation_bits(context, candidates, "bits")
    assert np.array_equal(bits, window.continuation_bits(b"\x80" * 50 + context, candidates,
                                                         "bits"))
    nearest = int(np.argmin(bits))
    assert np.all(np.diff(bits[nearest:]) >= 0) and np.all(np.diff(bits[:nearest + 1]) <= 0)
    assert bits.max() - bits.min() >= 8  # far candidates cost whole bytes more
    assert window.prompt_predictor == flac.for_audio(context[:4000]).prompt_predictor
    assert window.prompt_predictor != flac.for_audio(audio[:4000]).prompt_predictor
    assert window.compress(context) == flac.compress(context)
    # A silent prompt's residual is all zeros, yet one 8-bit step stays a few bits away.
    silence = flac.for_audio(b"\x80" * 512).continuation_bits(b"\x80" * 512, candidates,
                                                               "bits")
    assert 0 < silence[129] - silence[128] <= 4 and 0 < silence[127] - silence[128] <= 4


def test_flac_continues_speech_in_exact_bits(data_dir: Path) -> None:
    """FLAC's exact-bit continuations of real speech, from inside five utterances that the
    benchmarks do not use (0.25 s prompt, 0.1 s generated): a spectrum as uneven as
    speech's, as loud as the original continuation within the bar, and no drift of the
    level (`gencomp.codecs.flac_predictor`)."""
    flac = get_compressor("flac")
    paths = sorted((data_dir / "librispeech").rglob("*.flac"))[:100:20]
    flatness, loud, level = [], [], []
    for index, path in enumerate(paths):
        samples = load_audio_prompt(path)
        start = loudest_window(samples, 5600)
        clip = samples[start:start + 5600]
        generated = continue_audio(flac, clip[:4000], 1600, seed=index,
                                   length_unit="bits")[4000:]
        flatness.append(spectral_flatness(generated))
        loud.append(loudness(generated) / loudness(clip[4000:]))
        level.append(abs(generated.astype(np.float64).mean() - 128))
    low, high = PLAUSIBLE_LOUDNESS
    assert np.median(flatness) <= PLAUSIBLE_FLATNESS, flatness
    assert low <= np.median(loud) <= high, loud
    assert max(level) <= 5, level


def test_continue_audio() -> None:
    samples = (128 + 40 * np.sin(np.arange(400) / 6)).astype(np.uint8)
    result = continue_audio(get_compressor("flac"), samples, 5, seed=2)
    assert result.shape == (405,)
    np.testing.assert_array_equal(result[:400], samples)
    with pytest.raises(UsageError, match="1-D uint8"):
        continue_audio(get_compressor("flac"), samples.astype(np.int16), 5)
