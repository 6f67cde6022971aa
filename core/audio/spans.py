"""Turning the ranges staff marked into the sample ranges the engine fills or measures."""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.audio.model import GUARD_SECONDS, Span


def widened(spans: Sequence[Span], guard: float = GUARD_SECONDS) -> list[Span]:
    """Each span made `guard` seconds wider on both sides (not before 0), sorted, overlaps merged."""
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: s.start):
        start, end = max(0.0, span.start - guard), span.end + guard
        if merged and start <= merged[-1].end:
            start = merged[-1].start
            end = max(end, merged.pop().end)
        merged.append(Span(start, end))
    return merged


def clamped(spans: Sequence[Span], duration: float) -> list[Span]:
    """The spans cut to end at `duration`; a span starting at or after it is left out."""
    return [Span(span.start, min(span.end, duration)) for span in spans if span.start < duration]


def sample_range(span: Span, rate: int) -> tuple[int, int]:
    """The samples [first, last) a span covers at `rate`, rounded outwards: a partly covered sample is in."""
    return math.floor(span.start * rate), math.ceil(span.end * rate)


def overlap(first: int, count: int, span_range: tuple[int, int]) -> tuple[int, int] | None:
    """Where a span's samples fall in a chunk of `count` samples starting at `first`, as offsets in the chunk
    [start, stop), or None if they do not."""
    start, stop = max(span_range[0] - first, 0), min(span_range[1] - first, count)
    return (start, stop) if start < stop else None
