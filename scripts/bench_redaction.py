"""Benchmark: the redaction engine (core/audio) on a long recording: its time, and its memory against a
process that only decodes the same file once.

Set-up: a synthetic recording of --minutes minutes (default 60) is generated in a temporary folder: 8 kHz mono
"speech-like" sound (noise shaped into syllables and pauses, with a few steady tones), encoded as MP3 (the
LAME encoder in PyAV's wheel) at 32 kbit/s, a frame at a time. It is made by this script, not a real call.

Then, each in a fresh child process, so that the peak resident memory (getrusage's ru_maxrss) is that step's:

- baseline: open the file with PyAV and decode every frame once to a numpy array, nothing else;
- probe, peaks (compute_peaks), redact (three spans, silence) and prove (the copy that redact wrote).

It prints the time of each step, its peak memory and the ratio to the baseline's. Redaction writes the copy to
a file in the temporary folder (--output file, the default) or to an io.BytesIO (--output memory, which adds
the copy's size to the figure). It prints figures and never fails on them.

    .venv/bin/python scripts/bench_redaction.py
    .venv/bin/python scripts/bench_redaction.py --minutes 10 --output memory
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

# Run as `python scripts/...`, only scripts/ is on the path; the project's packages sit one level up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Only the children import PyAV, numpy and the engine. Linux carries a process's peak memory over into a child
# it forks (ru_maxrss survives fork and exec), so the parent must stay smaller than any child it measures.
if "--child" in sys.argv:
    import av
    import numpy as np

    from core.audio import FILL_SILENCE, Span, compute_peaks, probe, prove, redact

RATE = 8000


def spans(minutes: float) -> list[Span]:
    """Three ranges to redact, at the same places in a recording of any length (in a 60-minute one: from
    1:00 for 15.5 s, from 10:00 for 2 s, from 30:00 for 30 s)."""
    seconds = minutes * 60
    return [
        Span(seconds / 60, seconds / 60 + 15.5),
        Span(seconds / 6, seconds / 6 + 2),
        Span(seconds / 2, seconds / 2 + 30),
    ]


STEPS = ("baseline", "probe", "peaks", "redact", "prove")
GENERATE = "generate"


def speech_like(second: int, rng: np.random.Generator) -> np.ndarray:
    """One second of noise shaped like talk: four syllables a second at varying loudness, a pause every few
    seconds, and a steady hum every so often (so the encoder sees tones as well as noise)."""
    time_axis = np.arange(RATE) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 4 * time_axis + rng.uniform(0, 6.3)), 0, None) * rng.uniform(0.1, 0.6)
    if second % 7 == 6:
        envelope *= 0.02
    sound = rng.normal(0, 0.3, RATE) * envelope
    if second % 11 == 0:
        sound += 0.1 * np.sin(2 * np.pi * rng.choice([300, 440, 850]) * time_axis)
    return np.clip(sound, -1, 1).astype(np.float32)


def generate(path: Path, minutes: float) -> None:
    """Write the synthetic recording, one second at a time (so making it takes no memory either)."""
    rng = np.random.default_rng(2026)
    with av.open(str(path), mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=RATE, layout="mono")
        stream.bit_rate = 32_000
        for second in range(round(minutes * 60)):
            frame = av.AudioFrame.from_ndarray(speech_like(second, rng).reshape(1, -1), format="fltp", layout="mono")
            frame.sample_rate, frame.time_base, frame.pts = RATE, Fraction(1, RATE), second * RATE
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def baseline(path: Path) -> dict:
    with av.open(str(path)) as container:
        samples = sum(frame.to_ndarray().shape[-1] for frame in container.decode(audio=0))
    return {"samples": samples}


def run_step(step: str, folder: Path, output: str, minutes: float) -> dict:
    """One step, timed, in this (child) process."""
    source, copy = folder / "recording.mp3", folder / "copy.m4a"
    started = time.perf_counter()
    if step == GENERATE:
        generate(source, minutes)
        extra = {"mb": source.stat().st_size / 2**20}
    elif step == "baseline":
        extra = baseline(source)
    elif step == "probe":
        with source.open("rb") as file:
            extra = {"duration": probe(file).duration}
    elif step == "peaks":
        with source.open("rb") as file:
            extra = {"values": len(compute_peaks(file).values)}
    elif step == "redact":
        extra = redact_step(source, copy, output, spans(minutes))
    else:
        duration = json.loads((folder / "redacted.json").read_text())["duration"]
        with copy.open("rb") as file:
            proof = prove(file, spans(minutes), fill=FILL_SILENCE, original_duration=duration)
        extra = {"ok": proof.ok, "levels": [level.peak_dbfs for level in proof.ranges]}
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}


def redact_step(source: Path, copy: Path, output: str, marked: list[Span]) -> dict:
    with source.open("rb") as file:
        if output == "memory":
            out = io.BytesIO()
            result = redact(file, marked, out, fill=FILL_SILENCE)
            copy.write_bytes(out.getvalue())
        else:
            with copy.open("w+b") as out:
                result = redact(file, marked, out, fill=FILL_SILENCE)
    (copy.parent / "redacted.json").write_text(json.dumps({"duration": result.duration}))
    return {"duration": result.duration, "copy_mb": copy.stat().st_size / 2**20}


def in_child(step: str, folder: Path, arguments: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", step, "--folder", str(folder)]
    command += ["--output", arguments.output, "--minutes", str(arguments.minutes)]
    finished = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)  # noqa: S603 (this script)
    return json.loads(finished.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the generated recording")
    parser.add_argument("--output", choices=("file", "memory"), default="file", help="where redact writes the copy")
    parser.add_argument("--child", choices=(GENERATE, *STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(run_step(arguments.child, arguments.folder, arguments.output, arguments.minutes)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-redaction-") as name:
        folder = Path(name)
        made = in_child(GENERATE, folder, arguments)
        print(f"Generated {arguments.minutes:g} min, 8 kHz mono MP3, {made['mb']:.1f} MB in {made['seconds']:.1f} s")
        results = {step: in_child(step, folder, arguments) for step in STEPS}
    base = results["baseline"]["max_rss_mb"]
    print(f"\n{'step':<10}{'seconds':>9}{'peak RSS MB':>13}{'vs baseline':>13}")
    for step, figures in results.items():
        print(
            f"{step:<10}{figures['seconds']:>9.2f}{figures['max_rss_mb']:>13.1f}{figures['max_rss_mb'] / base:>13.2f}"
        )
    redacted = results["redact"]
    print(
        f"\nCopy: {redacted['copy_mb']:.1f} MB AAC/M4A ({arguments.output}); proof ok: {results['prove']['ok']}, "
        f"levels {results['prove']['levels']} dBFS"
    )


if __name__ == "__main__":
    main()
