"""The audio engine for redaction: probe a recording, draw its waveform, produce a redacted copy, prove it.

Pure functions over file-like objects (no Flask, no database, no store), so they run the same in the worker,
a CLI or a test. Every function streams: it holds one decoded frame at a time, whatever the recording's
length. Inputs: WAV (PCM), MP3, Ogg (Vorbis or Opus) and M4A (AAC); output: AAC in M4A.
"""

from core.audio.model import (
    FILL_SILENCE,
    FILL_TONE,
    GUARD_SECONDS,
    OUTPUT_EXTENSION,
    OUTPUT_MEDIA_TYPE,
    PEAKS_PER_SECOND,
    SILENCE_THRESHOLD_DBFS,
    TONE_DBFS,
    TONE_HZ,
    AudioError,
    AudioInfo,
    Peaks,
    Proof,
    RangeLevel,
    RedactResult,
    Span,
)
from core.audio.peaks import compute_peaks
from core.audio.probing import probe
from core.audio.proof import prove
from core.audio.redaction import redact

__all__ = [
    "FILL_SILENCE",
    "FILL_TONE",
    "GUARD_SECONDS",
    "OUTPUT_EXTENSION",
    "OUTPUT_MEDIA_TYPE",
    "PEAKS_PER_SECOND",
    "SILENCE_THRESHOLD_DBFS",
    "TONE_DBFS",
    "TONE_HZ",
    "AudioError",
    "AudioInfo",
    "Peaks",
    "Proof",
    "RangeLevel",
    "RedactResult",
    "Span",
    "compute_peaks",
    "probe",
    "prove",
    "redact",
]
