"""What a recording is: its length and format, found by decoding it (a header's duration can be a guess)."""

from __future__ import annotations

from typing import BinaryIO

from core.audio.decoding import open_audio
from core.audio.model import AudioInfo


def probe(source: BinaryIO) -> AudioInfo:
    """The decoded duration (samples / rate), sample rate, channel count and codec of `source`'s first audio
    stream. The duration is exact, the same one redact() and prove() count, so it decodes the whole file
    (streaming; a 60-minute recording takes a few seconds). Raises AudioError for a file it cannot decode."""
    with open_audio(source) as audio:
        total = 0
        for first, samples in audio.chunks():
            total = first + len(samples)
        return AudioInfo(
            duration=total / audio.sample_rate,
            sample_rate=audio.sample_rate,
            channels=audio.channels,
            codec=audio.codec,
        )
