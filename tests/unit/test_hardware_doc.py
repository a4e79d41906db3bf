"""docs/hardware.md stays true to the code: every backend and every config key of it is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hal.board import KEYS
from hal.meter.registers import MODELS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "hardware.md").read_text()


@pytest.mark.parametrize(("device", "kind"), sorted(KEYS), ids=lambda v: str(v))
def test_every_key_of_every_backend_is_documented(device, kind):
    assert f'kind = "{kind}"' in DOC, f"docs/hardware.md does not describe {device} kind {kind!r}"
    def documented(key: str) -> bool:
        base = re.sub(r"_(chip|active_low|pull)$", "", key)
        if base != key and base in KEYS[(device, kind)]:  # the pin keys every pin has, documented once
            return f"`<pin>{key[len(base):]}`" in DOC and documented(base)
        return re.search(rf"`{key}`", DOC) is not None

    missing = [k for k in KEYS[(device, kind)] if not documented(k)]
    assert not missing, f"{device} kind {kind!r}: keys not in docs/hardware.md: {missing}"


def test_every_meter_model_is_listed():
    missing = [m for m in MODELS if f"`{m}`" not in DOC]
    assert not missing, f"meter models not in docs/hardware.md: {missing}"


def test_every_tamper_key_is_documented():
    from hal.tamper import KEYS as TAMPER_KEYS

    assert "[hardware] tamper" in DOC
    missing = [k for k in TAMPER_KEYS if f"`{k}`" not in DOC]
    assert not missing, f"[hardware] tamper keys not in docs/hardware.md: {missing}"
