"""The audio engine for redaction (core.audio): every input format in, a proven AAC copy out.

Two kinds of audio: the synthetic sample call in tests/fixtures/audio (WAV, MP3, Ogg Vorbis, M4A), and
audio made here with a loud tone in a known place, encoded with the encoders PyAV's wheel has, so a test can
say exactly where the sound is and show that the proof fails when the sound is still there.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from core.audio import (
    FILL_SILENCE,
    FILL_TONE,
    GUARD_SECONDS,
    PEAKS_PER_SECOND,
    SILENCE_THRESHOLD_DBFS,
    TONE_DBFS,
    TONE_HZ,
    AudioError,
    Span,
    compute_peaks,
    probe,
    prove,
    redact,
)
from core.audio.decoding import open_audio
from core.audio.fill import tone
from core.audio.proof import RangeMeter

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"
SAMPLE_FORMATS = ["wav", "mp3", "ogg", "m4a"]
# Two ranges in the sample call, each with speech in it and around it.
SAMPLE_SPANS = [Span(2.0, 3.5), Span(7.2, 8.4)]
AAC_FRAME = 1024

# The generated call: 6 s; digital silence for the first second, then a quiet hiss (-34 dBFS) throughout, and
# a loud 440 Hz tone (-6 dBFS) from 2.0 s to 3.0 s.
GENERATED_RATE = 16_000
GENERATED_SECONDS = 6.0
TONE_PLACE = Span(2.0, 3.0)
ELSEWHERE = Span(4.0, 5.0)
# How each generated format is made. FFmpeg's own Vorbis encoder is experimental and codes only two channels,
# so the Ogg Vorbis file is stereo (which also shows a stereo original becomes a mono copy); Opus is the other
# codec an Ogg recording may hold (it always decodes at 48 kHz).
GENERATED_FORMATS = {
    "wav": ("wav", "pcm_s16le", "mono"),
    "mp3": ("mp3", "libmp3lame", "mono"),
    "ogg-vorbis": ("ogg", "vorbis", "stereo"),
    "ogg-opus": ("ogg", "libopus", "mono"),
    "m4a": ("ipod", "aac", "mono"),
}


def sample(extension: str) -> bytes:
    return (FIXTURES / f"call-sample.{extension}").read_bytes()


def generated_samples(rate: int = GENERATED_RATE) -> np.ndarray:
    count = round(GENERATED_SECONDS * rate)
    hiss = np.random.default_rng(15).uniform(-0.02, 0.02, count)
    hiss[:rate] = 0.0
    time = np.arange(count) / rate
    inside = (time >= TONE_PLACE.start) & (time < TONE_PLACE.end)
    hiss[inside] += 0.5 * np.sin(2 * np.pi * 440 * time[inside])
    return hiss.astype(np.float32)


def encoded(samples: np.ndarray, rate: int, kind: str) -> bytes:
    """The samples as a file of `kind` (a key of GENERATED_FORMATS), made with PyAV."""
    container_format, codec, layout = GENERATED_FORMATS[kind]
    out = io.BytesIO()
    container = av.open(out, mode="w", format=container_format)
    stream = container.add_stream(codec, rate=rate, layout=layout)
    if codec == "vorbis":
        stream.codec_context.options = {"strict": "experimental"}
    planes = np.stack([samples] * (2 if layout == "stereo" else 1))
    frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
    frame.sample_rate, frame.time_base, frame.pts = rate, Fraction(1, rate), 0
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    return out.getvalue()


def generated(kind: str) -> bytes:
    return encoded(generated_samples(), GENERATED_RATE, kind)


def decoded(data: bytes) -> tuple[np.ndarray, int]:
    """All the samples of a file (mono, float) and its rate: an independent look at what a copy holds."""
    with open_audio(io.BytesIO(data)) as audio:
        return np.concatenate([samples for _, samples in audio.chunks()]), audio.sample_rate


def peak_dbfs(samples: np.ndarray, rate: int, span: Span) -> float:
    part = samples[round(span.start * rate) : round(span.end * rate)]
    peak = float(np.max(np.abs(part)))
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def tone_level_dbfs(samples: np.ndarray, rate: int, span: Span) -> float:
    """The level of the TONE_HZ component in a range (least-squares fit of a sine at that frequency)."""
    first = round(span.start * rate)
    part = samples[first : round(span.end * rate)].astype(np.float64)
    angle = 2 * np.pi * TONE_HZ * np.arange(first, first + len(part)) / rate
    basis = np.stack([np.sin(angle), np.cos(angle)], axis=1)
    (a, b), *_ = np.linalg.lstsq(basis, part, rcond=None)
    return 20 * math.log10(math.hypot(a, b))


def redacted(data: bytes, spans, *, fill: str = FILL_SILENCE):
    out = io.BytesIO()
    result = redact(io.BytesIO(data), spans, out, fill=fill)
    return result, out.getvalue()


# ---------------------------------------------------------------------------------------------------------
# The sample call, in the four formats staff upload
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", SAMPLE_FORMATS)
def test_each_sample_format_is_redacted_proven_and_keeps_the_rest_of_the_call(extension):
    original = sample(extension)
    source = io.BytesIO(original)
    out = io.BytesIO()
    result = redact(source, SAMPLE_SPANS, out, fill=FILL_SILENCE)
    copy = out.getvalue()

    assert source.getvalue() == original
    assert result.spans_filled == [Span(2.0 - GUARD_SECONDS, 3.5 + GUARD_SECONDS), Span(6.9, 8.4 + GUARD_SECONDS)]
    proof = prove(io.BytesIO(copy), SAMPLE_SPANS, fill=FILL_SILENCE, original_duration=result.duration)
    assert proof.ok, proof.reason
    assert proof.reason == ""
    assert [level.peak_dbfs <= SILENCE_THRESHOLD_DBFS for level in proof.ranges] == [True, True]

    info = probe(io.BytesIO(copy))
    assert (info.codec, info.channels, info.sample_rate) == ("aac", 1, result.sample_rate)
    assert abs(info.duration - probe(io.BytesIO(original)).duration) <= AAC_FRAME / info.sample_rate

    before, after = compute_peaks(io.BytesIO(original)), compute_peaks(io.BytesIO(copy))
    kept = [
        index
        for index, level in enumerate(before.values)
        if level >= 20
        and all(
            abs((index + 0.5) / PEAKS_PER_SECOND - edge) > GUARD_SECONDS + 0.2
            for span in SAMPLE_SPANS
            for edge in (span.start, span.end)
        )
        and not any(span.start <= index / PEAKS_PER_SECOND < span.end for span in SAMPLE_SPANS)
    ]
    assert len(kept) > 30
    assert all(after.values[index] >= before.values[index] / 2 for index in kept)


@pytest.mark.parametrize(
    ("extension", "expected"),
    [
        ("wav", (13.544125, 8000, 1, "pcm_s16le")),
        ("mp3", (13.544125, 16000, 1, "mp3")),
        ("ogg", (13.544125, 16000, 1, "vorbis")),
        ("m4a", (13.568, 16000, 1, "aac")),  # the sample's own AAC encoder padded its last frame
    ],
)
def test_probe_reports_the_decoded_length_and_format_of_each_sample(extension, expected):
    info = probe(io.BytesIO(sample(extension)))
    assert (info.duration, info.sample_rate, info.channels, info.codec) == expected


def test_no_marked_range_is_refused():
    result, copy = redacted(sample("wav"), SAMPLE_SPANS)
    with pytest.raises(AudioError, match="at least one range"):
        redacted(sample("wav"), [])
    with pytest.raises(AudioError, match="at least one range"):
        prove(io.BytesIO(copy), [], fill=FILL_SILENCE, original_duration=result.duration)


def test_a_span_starting_after_the_end_of_the_recording_is_refused():
    with pytest.raises(AudioError, match="after the end"):
        redacted(sample("wav"), [Span(20.0, 21.0)])


def test_a_span_must_end_after_it_starts():
    with pytest.raises(AudioError, match="end after it starts"):
        Span(3.0, 2.0)
    with pytest.raises(AudioError):
        Span(-1.0, 2.0)


def test_overlapping_spans_are_filled_as_one_and_clamped_to_the_recording():
    result, _ = redacted(sample("wav"), [Span(12.0, 20.0), Span(0.1, 1.0), Span(1.2, 2.0)])
    assert result.spans_filled == [Span(0.0, 2.0 + GUARD_SECONDS), Span(12.0 - GUARD_SECONDS, result.duration)]


# ---------------------------------------------------------------------------------------------------------
# Generated audio: a tone in a known place
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", GENERATED_FORMATS)
def test_redacting_exactly_the_tones_place_removes_it_and_keeps_the_rest(kind):
    original = generated(kind)
    source, rate = decoded(original)
    assert peak_dbfs(source, rate, TONE_PLACE) > -7

    result, copy = redacted(original, [TONE_PLACE])
    proof = prove(io.BytesIO(copy), [TONE_PLACE], fill=FILL_SILENCE, original_duration=result.duration)

    assert proof.ok, proof.reason
    samples, copy_rate = decoded(copy)
    assert peak_dbfs(samples, copy_rate, TONE_PLACE) <= SILENCE_THRESHOLD_DBFS
    assert peak_dbfs(samples, copy_rate, Span(4.0, 5.5)) > -40  # the hiss after it is still there


@pytest.mark.parametrize("kind", GENERATED_FORMATS)
def test_redacting_elsewhere_leaves_the_tone_and_its_proof_fails(kind):
    original = generated(kind)
    result, copy = redacted(original, [ELSEWHERE])

    proof = prove(io.BytesIO(copy), [TONE_PLACE, ELSEWHERE], fill=FILL_SILENCE, original_duration=result.duration)

    assert not proof.ok
    assert proof.duration_ok
    tone_range, elsewhere_range = proof.ranges
    assert (tone_range.ok, elsewhere_range.ok) == (False, True)
    assert tone_range.peak_dbfs > -10
    assert proof.reason == "Sound is still audible in the marked range 00:02.0 to 00:03.0."
    samples, rate = decoded(copy)
    assert tone_level_dbfs(samples, rate, Span(2.2, 2.8)) < -50  # not 1 kHz: the 440 Hz tone is what is there
    assert peak_dbfs(samples, rate, Span(2.2, 2.8)) > -7


def test_a_stereo_original_gives_a_mono_copy():
    original = generated("ogg-vorbis")
    assert probe(io.BytesIO(original)).channels == 2
    _, copy = redacted(original, [TONE_PLACE])
    assert probe(io.BytesIO(copy)).channels == 1


def test_an_original_at_a_rate_aac_lacks_is_copied_at_the_nearest_one():
    original = encoded(generated_samples(6000), 6000, "wav")
    result, copy = redacted(original, [TONE_PLACE])
    assert result.sample_rate == probe(io.BytesIO(copy)).sample_rate == 8000
    assert prove(io.BytesIO(copy), [TONE_PLACE], fill=FILL_SILENCE, original_duration=result.duration).ok


# ---------------------------------------------------------------------------------------------------------
# The tone fill
# ---------------------------------------------------------------------------------------------------------


def test_tone_fill_puts_the_soft_tone_in_the_ranges_and_its_proof_passes():
    original = sample("wav")
    result, copy = redacted(original, SAMPLE_SPANS, fill=FILL_TONE)

    proof = prove(io.BytesIO(copy), SAMPLE_SPANS, fill=FILL_TONE, original_duration=result.duration)

    assert proof.ok, proof.reason
    samples, rate = decoded(copy)
    for span in SAMPLE_SPANS:
        assert abs(tone_level_dbfs(samples, rate, span) - TONE_DBFS) < 1.0
    # Measured as silence, the tone is far too loud: the modes really measure different things.
    assert not prove(io.BytesIO(copy), SAMPLE_SPANS, fill=FILL_SILENCE, original_duration=result.duration).ok


def test_in_tone_mode_speech_left_in_a_range_fails_the_proof():
    original = sample("wav")
    speech = Span(4.6, 5.4)
    source, rate = decoded(original)
    assert peak_dbfs(source, rate, speech) > -20
    result, copy = redacted(original, SAMPLE_SPANS, fill=FILL_TONE)

    proof = prove(io.BytesIO(copy), [*SAMPLE_SPANS, speech], fill=FILL_TONE, original_duration=result.duration)

    assert not proof.ok
    assert [level.ok for level in proof.ranges] == [True, True, False]
    assert "00:04.6 to 00:05.4" in proof.reason


# ---------------------------------------------------------------------------------------------------------
# Copies and files the engine refuses
# ---------------------------------------------------------------------------------------------------------


def test_a_truncated_copy_fails_on_its_duration():
    original = sample("wav")
    full = probe(io.BytesIO(original)).duration
    result, short_copy = redacted(original[: len(original) // 2], SAMPLE_SPANS[:1])

    proof = prove(io.BytesIO(short_copy), SAMPLE_SPANS[:1], fill=FILL_SILENCE, original_duration=full)

    assert result.duration < full - 5
    assert proof.ranges[0].ok
    assert (proof.ok, proof.duration_ok) == (False, False)
    assert proof.reason.startswith("The copy lasts 6.8 seconds but the original lasts 13.5 seconds")


NOT_AUDIO = {
    "empty": b"",
    "garbage": bytes(range(256)) * 40,
    "cut-header": sample("wav")[:30],
    "text": b"This is not a recording.\n" * 100,
}


@pytest.mark.parametrize("data", NOT_AUDIO.values(), ids=NOT_AUDIO.keys())
def test_what_is_not_audio_raises_audio_error_from_every_function(data):
    calls = [
        lambda: probe(io.BytesIO(data)),
        lambda: compute_peaks(io.BytesIO(data)),
        lambda: redact(io.BytesIO(data), SAMPLE_SPANS, io.BytesIO(), fill=FILL_SILENCE),
        lambda: prove(io.BytesIO(data), SAMPLE_SPANS, fill=FILL_SILENCE, original_duration=13.5),
    ]
    for call in calls:
        with pytest.raises(AudioError) as raised:
            call()
        assert str(raised.value) == "The recording could not be decoded: it may be damaged or not an audio file."


def test_the_proof_is_json_safe_even_for_digital_silence():
    result, copy = redacted(sample("wav"), SAMPLE_SPANS)
    proof = prove(io.BytesIO(copy), SAMPLE_SPANS, fill=FILL_SILENCE, original_duration=result.duration)
    stored = json.loads(json.dumps(proof.as_dict(), allow_nan=False))
    assert stored["ok"] is True
    assert stored["ranges"][0] == {"start": 2.0, "end": 3.5, "peak_dbfs": proof.ranges[0].peak_dbfs, "ok": True}


# ---------------------------------------------------------------------------------------------------------
# The waveform and progress
# ---------------------------------------------------------------------------------------------------------


def test_peaks_are_high_where_the_call_is_loud_and_zero_where_it_is_silent():
    peaks = compute_peaks(io.BytesIO(generated("wav")))

    assert peaks.per_second == PEAKS_PER_SECOND
    assert len(peaks.values) == math.ceil(peaks.duration * PEAKS_PER_SECOND) == 60
    assert peaks.values[:10] == [0] * 10
    assert all(48 <= value <= 52 for value in peaks.values[20:30])
    assert all(1 <= value <= 3 for value in peaks.values[11:19] + peaks.values[31:])


def test_peaks_at_another_resolution_cover_a_partial_last_slice():
    peaks = compute_peaks(io.BytesIO(sample("mp3")), per_second=4)
    assert peaks.duration == pytest.approx(13.544, abs=0.001)
    assert len(peaks.values) == 55  # 54 whole quarter seconds and the last 0.044 s
    assert max(peaks.values) > 50


def test_progress_is_reported_in_order_up_to_one_at_most_about_a_hundred_times():
    original = sample("wav")
    runs: dict[str, list[float]] = {"redact": [], "peaks": [], "prove": []}
    out = io.BytesIO()
    result = redact(io.BytesIO(original), SAMPLE_SPANS, out, fill=FILL_SILENCE, progress=runs["redact"].append)
    compute_peaks(io.BytesIO(original), progress=runs["peaks"].append)
    copy = io.BytesIO(out.getvalue())
    prove(copy, SAMPLE_SPANS, fill=FILL_SILENCE, original_duration=result.duration, progress=runs["prove"].append)

    for run in runs.values():
        assert 10 < len(run) <= 101
        assert run == sorted(run) and run[0] >= 0 and run[-1] == 1.0


# ---------------------------------------------------------------------------------------------------------
# The measurement itself
# ---------------------------------------------------------------------------------------------------------


def test_a_range_just_above_the_threshold_fails_even_where_the_report_rounds_to_it():
    just_above = 10 ** ((SILENCE_THRESHOLD_DBFS + 0.04) / 20)
    meter = RangeMeter(Span(0.0, 1.0), 8000, FILL_SILENCE)
    meter.feed(0, np.full(8000, just_above, dtype=np.float32))
    level = meter.result()
    assert (level.peak_dbfs, level.ok) == (SILENCE_THRESHOLD_DBFS, False)


def test_the_tone_is_recognised_across_frames_of_any_size_and_speech_is_not():
    rate = 8000
    filled = tone(0, 2 * rate, rate)
    sizes = np.random.default_rng(7).integers(50, 1500, 40)
    edges = [0, *np.cumsum(sizes)[np.cumsum(sizes) < len(filled)].tolist(), len(filled)]
    meter = RangeMeter(Span(0.25, 1.75), rate, FILL_TONE)
    for start, stop in itertools.pairwise(edges):
        meter.feed(start, filled[start:stop])
    assert meter.result().peak_dbfs < -90

    speechlike = filled + np.random.default_rng(8).normal(0, 0.01, len(filled)).astype(np.float32)
    meter = RangeMeter(Span(0.25, 1.75), rate, FILL_TONE)
    meter.feed(0, speechlike)
    assert not meter.result().ok


class FailingSource(io.BytesIO):
    """A source that fails part-way, as a store does when a stored chunk no longer decrypts."""

    def read(self, size=-1):
        if self.tell() > 20_000:
            raise RuntimeError("chunk 3 failed its integrity check")
        return super().read(size)


def test_a_failure_of_the_source_itself_is_not_reported_as_undecodable_audio():
    with pytest.raises(RuntimeError, match="integrity"):
        redact(FailingSource(sample("wav")), SAMPLE_SPANS, io.BytesIO(), fill=FILL_SILENCE)
