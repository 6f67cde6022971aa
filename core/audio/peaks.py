"""The waveform a recording's page draws, computed once on the server so the page never fetches the audio."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

from core.audio.decoding import ProgressReporter, batched, open_audio
from core.audio.model import PEAKS_PER_SECOND, Peaks


def compute_peaks(
    source: BinaryIO, *, per_second: int = PEAKS_PER_SECOND, progress: Callable[[float], None] | None = None
) -> Peaks:
    """The loudest absolute sample in each 1/per_second of a second, scaled 0..100, for the whole recording.

    There are ceil(duration * per_second) values (the last may cover a shorter slice). Raises AudioError for
    a file that cannot be decoded."""
    if per_second < 1:
        raise ValueError("per_second must be at least 1")
    buckets: list[float] = []
    with open_audio(source) as audio:
        rate = audio.sample_rate
        reporter = ProgressReporter(progress, audio.expected_duration)
        total = 0
        for first, samples in batched(audio.chunks(), audio.sample_rate):
            index = (np.arange(first, first + len(samples), dtype=np.int64) * per_second) // rate
            starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
            loudest = np.maximum.reduceat(np.abs(samples), starts)
            for bucket, level in zip(index[starts].tolist(), loudest.tolist(), strict=True):
                if bucket < len(buckets):
                    buckets[bucket] = max(buckets[bucket], level)
                else:
                    buckets.extend([0.0] * (bucket - len(buckets)))
                    buckets.append(level)
            total = first + len(samples)
            reporter.at(total / rate)
    duration = total / rate
    count = math.ceil(total * per_second / rate)
    buckets.extend([0.0] * (count - len(buckets)))
    reporter.done()
    return Peaks(duration=duration, per_second=per_second, values=[min(100, round(level * 100)) for level in buckets])
