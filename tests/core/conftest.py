"""Fixtures shared by the core tests."""

from __future__ import annotations

import pytest
from flask import Flask


@pytest.fixture(params=["filesystem", "database"])
def store_kind(request, app: Flask, tmp_path, monkeypatch) -> str:
    """Each test using it runs once per recording store (RECORDING_STORE), with its own RECORDINGS_DIR."""
    monkeypatch.setitem(app.config, "RECORDING_STORE", request.param)
    monkeypatch.setitem(app.config, "RECORDINGS_DIR", str(tmp_path / "recordings"))
    return request.param
