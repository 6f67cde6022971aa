"""The audio engine's vocabulary: its settings, its one error, and the plain values it takes and returns.

Nothing here knows about Flask, the database or the recording store: the engine works on file-like objects,
so the worker, the pages and the tests can all call it the same way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# The redacted copy is AAC in an MP4 (.m4a) container: see core/audio/encoding.py for why.
OUTPUT_EXTENSION = "m4a"
OUTPUT_MEDIA_TYPE = "audio/mp4"

# A range counts as silent when its loudest sample is at or below this level (-60 dBFS is a thousandth of full
# scale: far below speech on any phone line, well above what the AAC encoder leaves in digital silence).
SILENCE_THRESHOLD_DBFS = -60.0
# The level reported for digital silence (a true zero would be minus infinity, which JSON cannot carry).
FLOOR_DBFS = -120.0
# One waveform value per 0.1 s: the resolution staff type times at (mm:ss.s).
PEAKS_PER_SECOND = 10
# AAC codes audio in overlapping blocks (2048 samples: 0.26 s at 8 kHz), so sound just outside a filled range
# leaks into its edges. Each range is filled this much wider on both sides. Measured on the sample call at
# 8 kHz (WAV) and 16 kHz (MP3), ranges at eight places with their edges in speech: silence needed 0.1 s and the
# tone 0.2 s (its sudden start is itself spread by the encoder) to stay below the threshold; 0.3 s leaves a
# margin, and a test fails if the guard is taken away.
GUARD_SECONDS = 0.3

FILL_SILENCE = "silence"
FILL_TONE = "tone"
FILLS = (FILL_SILENCE, FILL_TONE)
# A soft 1 kHz tone: inside the telephone band, plainly "something was removed here", not loud.
TONE_HZ = 1000
TONE_DBFS = -20.0


class AudioError(Exception):
    """A recording (or a copy) the engine cannot work with. Its text is one plain sentence staff can read."""


def dbfs(peak: float) -> float:
    """The level of a peak amplitude (1.0 is full scale) in dBFS, never below FLOOR_DBFS."""
    if peak <= 0:
        return FLOOR_DBFS
    return max(FLOOR_DBFS, 20 * math.log10(peak))


@dataclass(frozen=True)
class Span:
    """A range of the original recording, in seconds from its first sample."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.start < 0:
            raise AudioError("A marked range must start at or after the beginning of the recording.")
        if self.end <= self.start:
            raise AudioError("A marked range must end after it starts.")


@dataclass(frozen=True)
class AudioInfo:
    """What probe() found: the decoded length (samples / rate) and the first audio stream's format."""

    duration: float
    sample_rate: int
    channels: int
    codec: str


@dataclass(frozen=True)
class Peaks:
    """The waveform a page draws: values[i] is the loudest absolute sample in [i, i + 1) / per_second seconds,
    scaled 0..100 (100 is full scale); there are ceil(duration * per_second) values, the last one covering the
    partial slice at the end."""

    duration: float
    per_second: int
    values: list[int]


@dataclass(frozen=True)
class RedactResult:
    """What redact() produced: the original's decoded duration and the copy's sample rate, and the ranges that
    were actually filled (each span widened by GUARD_SECONDS, clamped to the recording, overlaps merged)."""

    duration: float
    sample_rate: int
    spans_filled: list[Span]


@dataclass(frozen=True)
class RangeLevel:
    """One marked range as measured in the copy: the peak level of what should not be there, and whether it
    is at or below SILENCE_THRESHOLD_DBFS."""

    start: float
    end: float
    peak_dbfs: float
    ok: bool


@dataclass(frozen=True)
class Proof:
    """The check of a redacted copy: every marked range quiet enough, and the copy as long as the original
    (within one AAC frame). `reason` is "" when ok, else one sentence for staff."""

    ok: bool
    ranges: list[RangeLevel]
    original_duration: float
    copy_duration: float
    duration_ok: bool
    reason: str

    def as_dict(self) -> dict:
        """Plain JSON-safe values (floats are finite), for the audit trail and the copy's record."""
        return asdict(self)
