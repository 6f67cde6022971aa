"""Reading a recording frame by frame as mono floating-point samples, whatever its format.

Time in the engine is counted in decoded samples from the first one the decoder gives (FFmpeg has already
dropped the encoder's start-up samples of MP3 and AAC, as players do), so a second means the same place in
the waveform, the redaction and the proof. Only one frame is held at a time: memory does not grow with the
length of the recording.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

import av
import numpy as np

from core.audio.model import AudioError

NOT_DECODED = "The recording could not be decoded: it may be damaged or not an audio file."
# What FFmpeg (through PyAV) raises for bytes it cannot read as audio: its own errors, and EOFError for a file
# that ends before its header does. Anything the source itself raises (a store that fails to decrypt) passes.
DECODE_ERRORS = (av.FFmpegError, EOFError)


class DecodedAudio:
    """An opened recording: its first audio stream's format, and its samples as a stream of chunks."""

    def __init__(self, container, stream) -> None:
        self._container = container
        self._stream = stream
        self.sample_rate: int = stream.codec_context.sample_rate or stream.rate
        self.channels: int = stream.codec_context.channels or 1
        # The format's name ("mp3"), not the decoder's ("mp3float").
        self.codec: str = stream.codec_context.codec.canonical_name
        self.expected_duration: float | None = header_duration(container, stream)

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(index of the first sample, float32 mono samples in -1..1) for each decoded frame, in order.

        Raises AudioError if the stream cannot be decoded or holds no samples at all. A frame at another
        sample rate than the first (legal in some MP3s) is brought to the first rate."""
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=self.sample_rate)
        position = 0
        try:
            for frame in self._container.decode(self._stream):
                for mono in resampler.resample(frame):
                    samples = mono.to_ndarray()[0]
                    yield position, samples
                    position += len(samples)
            for mono in resampler.resample(None):
                samples = mono.to_ndarray()[0]
                yield position, samples
                position += len(samples)
        except DECODE_ERRORS as exc:
            raise AudioError(NOT_DECODED) from exc
        if position == 0:
            raise AudioError("The recording holds no sound to work on.")


def batched(chunks: Iterator[tuple[int, np.ndarray]], size: int) -> Iterator[tuple[int, np.ndarray]]:
    """The same samples in chunks of at least `size` (the last may be shorter): measuring a second at a time
    costs far less Python than a frame at a time (an 8 kHz MP3 frame is 72 ms), in no noticeable memory."""
    pending: list[np.ndarray] = []
    pending_first = pending_count = 0
    for first, samples in chunks:
        if not pending:
            pending_first = first
        pending.append(samples)
        pending_count += len(samples)
        if pending_count >= size:
            yield pending_first, np.concatenate(pending)
            pending, pending_count = [], 0
    if pending:
        yield pending_first, np.concatenate(pending)


def header_duration(container, stream) -> float | None:
    """The duration the file's header claims (only for reporting progress: it can be an estimate)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


@contextmanager
def open_audio(source: BinaryIO) -> Iterator[DecodedAudio]:
    """Open `source` (read from its start; never written) and give its first audio stream.

    Raises AudioError for anything that is not a readable recording: garbage, an empty file, no audio."""
    if source.seekable():
        source.seek(0)
    try:
        container = av.open(source, mode="r")
    except DECODE_ERRORS as exc:
        raise AudioError(NOT_DECODED) from exc
    try:
        if not container.streams.audio:
            raise AudioError("The file holds no audio.")
        yield DecodedAudio(container, container.streams.audio[0])
    finally:
        container.close()


class ProgressReporter:
    """Calls `callback(fraction)` as work moves through a recording: at most once per whole per cent, and
    1.0 at the end. Without an expected duration only the end is reported."""

    def __init__(self, callback: Callable[[float], None] | None, expected_seconds: float | None) -> None:
        self._callback = callback
        self._expected = expected_seconds if expected_seconds and expected_seconds > 0 else None
        self._last_percent = -1

    def at(self, seconds: float) -> None:
        if self._callback is None or self._expected is None:
            return
        percent = min(99, int(100 * seconds / self._expected))
        if percent > self._last_percent:
            self._last_percent = percent
            self._callback(percent / 100)

    def done(self) -> None:
        if self._callback is not None:
            self._callback(1.0)
