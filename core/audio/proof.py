"""Proving a redacted copy: decode it, and measure what is left in every range as staff marked it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import BinaryIO

import numpy as np

from core.audio import spans as span_math
from core.audio.decoding import ProgressReporter, batched, open_audio
from core.audio.encoding import AAC_FRAME_SAMPLES
from core.audio.fill import tone_residual_peak
from core.audio.model import FILL_TONE, FILLS, SILENCE_THRESHOLD_DBFS, AudioError, Proof, RangeLevel, Span, dbfs

# In tone mode the tone is fitted over blocks this long (short enough that the encoder's slight drift in level
# and phase along a long range does not leave part of the tone behind as "residual").
TONE_BLOCK_SECONDS = 0.05


class RangeMeter:
    """The loudest unwanted sample seen in one range so far, fed chunk by chunk."""

    def __init__(self, span: Span, rate: int, fill: str) -> None:
        self.span = span
        self.range = span_math.sample_range(span, rate)
        self.rate = rate
        self.tone = fill == FILL_TONE
        self.peak = 0.0
        self._block = max(16, round(TONE_BLOCK_SECONDS * rate))
        self._pending: list[np.ndarray] = []
        self._pending_first = self.range[0]
        self._pending_count = 0

    def feed(self, first: int, samples: np.ndarray) -> None:
        hit = span_math.overlap(first, len(samples), self.range)
        if hit is None:
            return
        part = samples[hit[0] : hit[1]]
        if not self.tone:
            self.peak = max(self.peak, float(np.max(np.abs(part))))
            return
        self._pending.append(part)
        self._pending_count += len(part)
        if self._pending_count >= self._block:
            self._measure_blocks(final=False)

    def _measure_blocks(self, *, final: bool) -> None:
        joined = np.concatenate(self._pending) if self._pending else np.zeros(0, dtype=np.float32)
        whole = len(joined) if final else len(joined) - len(joined) % self._block
        for offset in range(0, whole, self._block):
            block = joined[offset : min(offset + self._block, whole)]
            self.peak = max(self.peak, tone_residual_peak(block, first=self._pending_first + offset, rate=self.rate))
        self._pending = [joined[whole:]]
        self._pending_first += whole
        self._pending_count = len(joined) - whole

    def result(self) -> RangeLevel:
        if self.tone:
            self._measure_blocks(final=True)
        level = dbfs(self.peak)
        # Judged on the exact level; reported to 0.1 dB (rounding must not turn -59.96 into a pass).
        return RangeLevel(self.span.start, self.span.end, round(level, 1), level <= SILENCE_THRESHOLD_DBFS)


def prove(
    copy: BinaryIO,
    spans: Sequence[Span],
    *,
    fill: str,
    original_duration: float,
    progress: Callable[[float], None] | None = None,
) -> Proof:
    """Decode `copy` and check it: in every span (as marked, not widened) the loudest sample (silence), or
    the loudest sample that is not the tone (tone), at or below SILENCE_THRESHOLD_DBFS; and the copy's length
    within one AAC frame of `original_duration`. The ranges come back in the order of `spans`. Raises
    AudioError if the copy cannot be decoded."""
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, not {fill!r}")
    if not spans:
        raise AudioError("Mark at least one range to redact.")
    with open_audio(copy) as audio:
        rate = audio.sample_rate
        meters = [RangeMeter(span, rate, fill) for span in spans]
        reporter = ProgressReporter(progress, audio.expected_duration)
        total = 0
        for first, samples in batched(audio.chunks(), audio.sample_rate):
            for meter in meters:
                meter.feed(first, samples)
            total = first + len(samples)
            reporter.at(total / rate)
    copy_duration = total / rate
    ranges = [meter.result() for meter in meters]
    duration_ok = abs(copy_duration - original_duration) <= AAC_FRAME_SAMPLES / rate
    reporter.done()
    return Proof(
        ok=duration_ok and all(level.ok for level in ranges),
        ranges=ranges,
        original_duration=original_duration,
        copy_duration=copy_duration,
        duration_ok=duration_ok,
        reason=refusal_reason(ranges, duration_ok=duration_ok, copy_duration=copy_duration, original=original_duration),
    )


def refusal_reason(ranges: list[RangeLevel], *, duration_ok: bool, copy_duration: float, original: float) -> str:
    """One sentence for staff saying why the copy is refused, or "" if it is not."""
    loud = [level for level in ranges if not level.ok]
    if loud:
        where = ", ".join(f"{clock(level.start)} to {clock(level.end)}" for level in loud)
        return f"Sound is still audible in the marked range{'s' if len(loud) > 1 else ''} {where}."
    if not duration_ok:
        return f"The copy lasts {copy_duration:.1f} seconds but the original lasts {original:.1f} seconds."
    return ""


def clock(seconds: float) -> str:
    """mm:ss.s, the way staff type times."""
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:04.1f}"
