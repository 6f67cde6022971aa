"""Producing the redacted copy: decode, fill the marked ranges, encode; one frame in memory at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import BinaryIO

from core.audio import spans as span_math
from core.audio.decoding import ProgressReporter, open_audio
from core.audio.encoding import AacWriter
from core.audio.fill import fill_range
from core.audio.model import FILLS, AudioError, RedactResult, Span


def redact(
    source: BinaryIO,
    spans: Sequence[Span],
    out: BinaryIO,
    *,
    fill: str,
    progress: Callable[[float], None] | None = None,
) -> RedactResult:
    """Write to `out` (seekable, writable) a mono AAC/M4A copy of `source` with every span, widened by
    GUARD_SECONDS and merged where they overlap, replaced by silence or the tone (`fill`).

    `source` is only read. The copy has the original's sample rate, or the nearest AAC rate. Raises
    AudioError if the recording cannot be decoded or a span starts after its end (nothing there to redact
    means the ranges were marked on something else); `out` is then unfinished and must be thrown away."""
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, not {fill!r}")
    if not spans:
        raise AudioError("Mark at least one range to redact.")
    filled = span_math.widened(spans)
    with open_audio(source) as audio:
        rate = audio.sample_rate
        ranges = [span_math.sample_range(span, rate) for span in filled]
        reporter = ProgressReporter(progress, audio.expected_duration)
        writer = AacWriter(out, rate)
        total = 0
        try:
            for first, samples in audio.chunks():
                for span_range in ranges:
                    hit = span_math.overlap(first, len(samples), span_range)
                    if hit:
                        fill_range(samples, *hit, first=first, rate=rate, fill=fill)
                writer.write(samples, first)
                total = first + len(samples)
                reporter.at(total / rate)
        except BaseException:
            writer.abandon()
            raise
        writer.close()
    duration = total / rate
    if max(span.start for span in spans) >= duration:
        raise AudioError("A marked range starts after the end of the recording.")
    reporter.done()
    return RedactResult(
        duration=duration, sample_rate=writer.sample_rate, spans_filled=span_math.clamped(filled, duration)
    )
