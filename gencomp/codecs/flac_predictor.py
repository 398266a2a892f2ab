"""FLAC's linear predictor, fitted once to a prompt, and the exact length of its subframes.

libFLAC refits its predictor to every frame it codes. Scoring an audio continuation by
recompressing a window that holds the generated samples lets that refit follow them: the
predictor and the Rice parameter of the last partition adapt to what the sampler just
drew, cheap samples make the next ones cheaper, and the continuation collapses into a
tone (or, at higher temperatures, hiss). `FlacWindow` prices continuations instead with
a predictor fitted to the prompt alone and kept: the code length of a window is the exact
length of the FLAC subframe that codes it with that predictor, so the cost of one more
sample is the Rice code of its prediction residual r, 1 + k + (zigzag(r) >> k) bits. At
T = 1 the code-length sampler then drives the prompt's all-pole filter with a residual as
large as the prompt's: linear-predictive synthesis, with the prompt's spectral envelope
and loudness.

The fit is FLAC's own analysis: a Tukey(0.5) window, autocorrelation, the Levinson-Durbin
recursion, coefficients quantized to `PRECISION` bits with error feedback as libFLAC
quantizes them. Of the orders 0 (no prediction) to `MAX_ORDER`, and the Rice parameters
0-14, the pair whose subframe codes the prompt shortest is kept. Only libFLAC's fixed
polynomial predictors are left out: their poles lie on the unit circle, so driven by
noise they drift without bound.

`FlacWindow` codes the window at the stream's full sample width, without FLAC's wasted
bits (the 8 zero low bits of the paper's widened 8-bit samples): counting in whole 8-bit
steps, the prediction's floor (the format's arithmetic shift) and the Rice code's folding
(r = −1 costs less than r = +1) both pull the sampled residual down, by about one step per
sample together, and the predictor's gain at zero frequency (1/A(1), 20-50 on speech)
turns that into a drift of tens of steps within 0.1 s. At 16 bits both biases shrink to
1/256 of a step; every candidate costs the same 8 bits more. The Rice parameter is then
kept at 8 or more, the bits below an 8-bit step: fitted to a silent prompt it would be 0,
and one step would cost 513 bits, so a pause would continue as exact silence.

The autocorrelation is summed exactly rounded (`math.fsum`), so the fit, and a sampler's
draws from it, do not depend on the order in which a machine's BLAS adds floats.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

#: Coefficient precision in bits, sign included: libFLAC's for frames of 4096 samples.
PRECISION = 12
#: The largest order tried (libFLAC's at its highest compression level).
MAX_ORDER = 12
#: Rice parameters codable with the 4-bit parameter field (15 marks an escape).
RICE_PARAMETERS = range(15)
#: The largest shift the 5-bit signed field holds.
MAX_SHIFT = 15
#: The subframe header (a zero bit, 6 bits of type, the wasted-bits flag), the residual's
#: coding method and partition order, and one partition's Rice parameter.
HEADER_BITS, RESIDUAL_HEADER_BITS, PARAMETER_BITS = 8, 2 + 4, 4
#: An LPC subframe's precision and shift fields.
LPC_FIELD_BITS = 4 + 5


def rice_bits(residual: np.ndarray, parameter: int) -> np.ndarray:
    """Bits of each residual value's Rice code with `parameter`: the folded value's
    quotient in unary (its zeros and a one), then its `parameter` low bits."""
    folded = np.where(residual >= 0, 2 * residual, -2 * residual - 1)
    return 1 + parameter + (folded >> parameter)


def tukey_window(length: int) -> np.ndarray:
    """Tukey(0.5) as libFLAC computes it: cosine tapers over the first and last quarter."""
    window = np.ones(length)
    taper = int(0.25 * length) - 1
    if taper > 0:
        rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(taper + 1) / taper)
        window[:taper + 1] = rise
        window[length - taper - 1:] = rise[::-1]
    return window


@dataclass(frozen=True)
class LinearPredictor:
    """s[n] ≈ (Σ_j coefficients[j] · s[n − 1 − j]) >> shift, its residual Rice-coded with
    `rice_parameter` in one partition; order 0 predicts 0 (FLAC's fixed order 0)."""

    coefficients: tuple[int, ...]
    shift: int
    rice_parameter: int
    #: Bits each coefficient is stored in.
    precision: int = PRECISION

    @property
    def order(self) -> int:
        return len(self.coefficients)

    def predictions(self, history: np.ndarray) -> np.ndarray:
        """The prediction of the sample after each row of `history` (int64, rows of at
        least `order` samples, the latest last)."""
        total = np.zeros(history.shape[:-1], dtype=np.int64)
        for lag, coefficient in enumerate(self.coefficients, start=1):
            total += coefficient * history[..., -lag]
        return total >> self.shift

    def residual(self, samples: np.ndarray) -> np.ndarray:
        """Prediction residuals of samples[order:]."""
        order = self.order
        if len(samples) <= order:
            return np.zeros(0, dtype=np.int64)
        if order == 0:
            return samples.copy()
        history = np.lib.stride_tricks.sliding_window_view(samples[:-1], order)
        return samples[order:] - self.predictions(history)

    def overhead_bits(self, sample_width: int, wasted_bits: int) -> int:
        """A subframe's bits other than its Rice codes, for samples of `sample_width` bits
        of which `wasted_bits` low zero bits are signalled in the header."""
        predictor = LPC_FIELD_BITS + self.order * self.precision if self.order else 0
        return (HEADER_BITS + wasted_bits + self.order * (sample_width - wasted_bits)
                + predictor + RESIDUAL_HEADER_BITS + PARAMETER_BITS)

    def subframe_bits(self, samples: np.ndarray, sample_width: int, wasted_bits: int) -> int:
        """Exact bits of the FLAC subframe that codes `samples` (at most one frame, in
        units of the wasted bits) with this predictor; a block no longer than the order is
        all warm-up, so coded verbatim."""
        if len(samples) <= self.order:
            return HEADER_BITS + wasted_bits + len(samples) * (sample_width - wasted_bits)
        return self.overhead_bits(sample_width, wasted_bits) + int(
            rice_bits(self.residual(samples), self.rice_parameter).sum())

    def continuation_bits(self, history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Rice bits of each row of `candidates` (int64, equal lengths) coded after
        `history` (at least `order` samples)."""
        rows, length = candidates.shape
        samples = np.concatenate(
            [np.broadcast_to(history[len(history) - self.order:], (rows, self.order)),
             candidates], axis=1)
        total = np.zeros(rows, dtype=np.int64)
        for index in range(length):
            end = self.order + index
            predicted = self.predictions(samples[:, index:end]) if self.order else 0
            total += rice_bits(samples[:, end] - predicted, self.rice_parameter)
        return total


def _quantized(coefficients: list[float]) -> tuple[tuple[int, ...], int]:
    """libFLAC's quantization: the largest shift (at most 15) that keeps every coefficient
    within PRECISION signed bits, rounding with the error carried to the next."""
    largest = max(abs(value) for value in coefficients)
    exponent = math.frexp(largest)[1] - 1 if largest > 0 else 0
    shift = min(MAX_SHIFT, max(0, PRECISION - 2 - exponent))
    limit = 1 << (PRECISION - 1)
    quantized, error = [], 0.0
    for value in coefficients:
        error += value * (1 << shift)
        integer = min(max(round(error), -limit), limit - 1)
        error -= integer
        quantized.append(integer)
    return tuple(quantized), shift


def _levinson(autocorrelation: list[float]) -> list[list[float]]:
    """The predictors of every order from 1 up, by the Levinson-Durbin recursion; stops
    early where the prediction error vanishes."""
    predictors, current, error = [], [], autocorrelation[0]
    for order in range(1, len(autocorrelation)):
        if error <= 0:
            break
        reflection = (autocorrelation[order] - sum(
            coefficient * autocorrelation[order - 1 - index]
            for index, coefficient in enumerate(current))) / error
        current = [coefficient - reflection * current[order - 2 - index]
                   for index, coefficient in enumerate(current)] + [reflection]
        error *= 1 - reflection * reflection
        predictors.append(current)
    return predictors


def fit(samples: np.ndarray, sample_width: int, wasted_bits: int,
        smallest_parameter: int = 0) -> LinearPredictor:
    """The predictor and Rice parameter (at least `smallest_parameter`) whose subframe
    codes `samples` (int64, in units of the wasted bits) in the fewest bits."""
    samples = np.asarray(samples, dtype=np.int64)
    windowed = samples * tukey_window(len(samples))
    autocorrelation = [math.fsum(windowed[:len(samples) - lag] * windowed[lag:])
                       for lag in range(min(MAX_ORDER, len(samples) - 1) + 1)] or [0.0]
    choices = [LinearPredictor((), 0, 0)] + [
        LinearPredictor(*_quantized(coefficients), 0)
        for coefficients in _levinson(autocorrelation)]
    best, best_bits = choices[0], None
    for predictor in choices:
        residual = predictor.residual(samples)
        for parameter in RICE_PARAMETERS[smallest_parameter:]:
            candidate = dataclasses.replace(predictor, rice_parameter=parameter)
            bits = candidate.overhead_bits(sample_width, wasted_bits) + int(
                rice_bits(residual, parameter).sum())
            if best_bits is None or bits < best_bits:
                best, best_bits = candidate, bits
    return best
