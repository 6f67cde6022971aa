"""Withholding parts of a recording before it is released (DESIGN: releases; ICO right-of-access guidance on
other people's information). One module for each:

- `ranges`: the parts staff mark on an original (add, change, remove), whether they may (`can_edit`), and what
  the pages show (`copy_state`, `status_json`, `redaction_summary`, `withheld_parts`);
- `copies`: asking for a redacted copy and the worker making it, with the proof that every part is silent;
- `waveforms`: each recording's waveform, drawn once by the worker.

`run_pending(worker)` is the worker's step: one copy, then one waveform, each round.
"""

from core.services.redaction.copies import process_next_copy, request_copy
from core.services.redaction.ranges import (
    NOTE_MAX,
    CopyState,
    RedactionError,
    WithheldPart,
    add_range,
    can_edit,
    change_range,
    copy_state,
    range_on,
    ranges_for,
    redaction_summary,
    remove_range,
    status_json,
    withheld_parts,
)
from core.services.redaction.waveforms import draw_next_waveform, waveform_for


def run_pending(worker: str) -> bool:
    """The worker's step: make one redacted copy (staff are waiting for it), then draw one waveform. True when
    either did something, so a caller draining the queue knows to go round again."""
    made = process_next_copy(worker)
    drawn = draw_next_waveform(worker)
    return made or drawn


__all__ = [
    "NOTE_MAX",
    "CopyState",
    "RedactionError",
    "WithheldPart",
    "add_range",
    "can_edit",
    "change_range",
    "copy_state",
    "draw_next_waveform",
    "process_next_copy",
    "range_on",
    "ranges_for",
    "redaction_summary",
    "remove_range",
    "request_copy",
    "run_pending",
    "status_json",
    "waveform_for",
    "withheld_parts",
]
