"""Writing the redacted copy: AAC-LC, mono, in an MP4 audio file (.m4a, audio/mp4).

Why this format: AAC in MP4 plays with no extra software on every phone (iOS and Android), in every current
browser (so the portal can play it in the page and the patient's download opens anywhere) and in Windows' and
macOS's own players; at speech bit rates it is smaller than MP3 for the same clarity, and FFmpeg's own AAC
encoder ships in PyAV's wheel (no licence-encumbered extra library). The MP4 muxer writes an edit list, so
players skip the encoder's start-up samples and the copy starts exactly where the original does; its end is
padded to a whole AAC frame (under 1024 samples longer, within the proof's tolerance).
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np

# The AAC sample rates that every phone and browser plays (AAC also defines 7350 Hz and rates above 48 kHz,
# which some players refuse and speech does not need); the copy keeps the original's rate or the nearest of these.
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
AAC_FRAME_SAMPLES = 1024


def aac_rate(rate: int) -> int:
    """The AAC sample rate nearest `rate` (the higher one on a tie, to lose no bandwidth)."""
    return min(AAC_RATES, key=lambda candidate: (abs(candidate - rate), -candidate))


def bit_rate(rate: int) -> int:
    """Plenty for clear speech at the rate (narrow-band phone audio needs less); under AAC's ceiling of
    6144 bits per 1024-sample frame, which is 48 kbit/s at 8 kHz."""
    return 32_000 if rate <= 12_000 else 48_000 if rate <= 24_000 else 64_000


class AacWriter:
    """Encodes mono float samples at `input_rate` into `out` as M4A, a frame at a time."""

    def __init__(self, out: BinaryIO, input_rate: int) -> None:
        self.input_rate = input_rate
        self.sample_rate = aac_rate(input_rate)
        self._time_base = Fraction(1, input_rate)
        # "ipod" is FFmpeg's name for the .m4a flavour of MP4 (brand "M4A ").
        self._container = av.open(out, mode="w", format="ipod")
        self._stream = self._container.add_stream("aac", rate=self.sample_rate, layout="mono")
        self._stream.bit_rate = bit_rate(self.sample_rate)
        # FFmpeg's default AAC coder ("twoloop") spent 55 s on a 60-minute recording; "fast" takes a quarter of
        # that and speech loses nothing a listener would notice at these bit rates.
        self._stream.codec_context.options = {"aac_coder": "fast"}

    def write(self, samples: np.ndarray, first: int) -> None:
        """Encode `samples` (float32, -1..1), whose first sample is number `first` of the recording."""
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = self.input_rate
        frame.time_base = self._time_base
        frame.pts = first
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        """Flush the encoder and finish the file (the MP4 index is written last)."""
        self._container.mux(self._stream.encode(None))
        self._container.close()

    def abandon(self) -> None:
        """Release the encoder after a failure; what was written to `out` is unfinished and worthless."""
        # The copy is being thrown away: a trailer that cannot be written changes nothing.
        with contextlib.suppress(av.FFmpegError):
            self._container.close()
