"""`station demo` (the README's first command) in both OCPP versions: the whole session is told,
in process on virtual time (the demo's waits cost no real time)."""

from __future__ import annotations

import pytest

from station.cli import _demo


@pytest.mark.virtual_time
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_demo_shows_a_whole_session(version, capsys):
    assert await _demo(version) == 0
    out = capsys.readouterr().out
    assert "booted" in out and "accepted" in out
    if version == "1.6":
        assert "started transaction" in out and "stopped transaction" in out
    else:
        assert "OCPP 2.0.1" in out and " started (" in out and " ended (" in out
    assert "meter values" in out or "Energy.Active.Import.Register" in out
    assert out.rstrip().endswith("Next: README.md")
