"""Measuring decoded audio in tests, independently of core.audio: PyAV decodes, numpy measures."""

from __future__ import annotations

import io
import math

import av
import numpy as np


def decode_mono(data: bytes) -> tuple[np.ndarray, int]:
    """Every sample of the first audio stream as float32 in -1..1 (channels averaged), and the sample rate."""
    parts = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono")
        rate = stream.codec_context.sample_rate
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
                rate = out.sample_rate
        for out in resampler.resample(None):
            parts.append(out.to_ndarray().reshape(-1))
    return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)), rate


def peak_dbfs(samples: np.ndarray, rate: int, start: float, end: float) -> float:
    """The loudest sample between `start` and `end` seconds, in dBFS (-inf for digital silence)."""
    window = samples[int(start * rate) : math.ceil(end * rate)]
    peak = float(np.max(np.abs(window))) if window.size else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf
