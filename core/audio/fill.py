"""What goes into a redacted range, and how much of what should not be there is left in one."""

from __future__ import annotations

import numpy as np

from core.audio.model import FILL_TONE, TONE_DBFS, TONE_HZ

TONE_AMPLITUDE = 10 ** (TONE_DBFS / 20)


def tone(first: int, count: int, rate: int) -> np.ndarray:
    """`count` samples of the fill tone from sample `first`: its phase follows the sample index, so a range
    split across decoded frames is one unbroken tone."""
    index = np.arange(first, first + count, dtype=np.float64)
    return (TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * index / rate)).astype(np.float32)


def fill_range(samples: np.ndarray, start: int, stop: int, *, first: int, rate: int, fill: str) -> None:
    """Overwrite samples[start:stop] (a chunk whose first sample is number `first`) with the fill, in place."""
    if fill == FILL_TONE:
        samples[start:stop] = tone(first + start, stop - start, rate)
    else:
        samples[start:stop] = 0.0


def tone_residual_peak(samples: np.ndarray, *, first: int, rate: int) -> float:
    """The loudest sample left once the best-fitting sine at TONE_HZ (any amplitude and phase) is taken away.

    The fit is a least-squares projection on sin and cos at the tone's frequency over this block, so what is
    left is everything that is not the tone: speech left in the range stays (it is spread over many
    frequencies), the tone itself goes whatever level or phase the encoder gave it."""
    if len(samples) < 3:
        return float(np.max(np.abs(samples), initial=0.0))
    angle = 2 * np.pi * TONE_HZ * np.arange(first, first + len(samples), dtype=np.float64) / rate
    basis = np.stack([np.sin(angle), np.cos(angle)], axis=1)
    coefficients, *_ = np.linalg.lstsq(basis, samples.astype(np.float64), rcond=None)
    residual = samples - basis @ coefficients
    return float(np.max(np.abs(residual)))
