"""deploy/k8s/fleet-job.yaml and the Containerfile fit the command line they run: the Job's
arguments parse and plan as `station fleet` (with the Job's index and shard count), its pods
together run every id once, and the image's entry point is the `station` console script."""

from __future__ import annotations

import re
from pathlib import Path

from station.cli import _parser
from station.sim.fleet import parse_shard, shard_range
from station.sim.fleet_cli import _plan

ROOT = Path(__file__).resolve().parents[2]
JOB = (ROOT / "deploy" / "k8s" / "fleet-job.yaml").read_text()


def _scalar(key: str) -> str:
    m = re.search(rf"^\s+{key}: (\S+)", JOB, re.M)
    assert m, key
    return m.group(1).strip('"')


def _args() -> list[str]:
    block = JOB.split("          args:\n", 1)[1]
    out = []
    for line in block.splitlines():
        m = re.match(r"\s+- (\S+)$", line)
        if not m:
            break
        out.append(m.group(1))
    return out


def test_the_indexed_job_runs_every_id_once(tmp_path, monkeypatch):
    args = _args()
    assert args[0] == "fleet" and "--shard=auto" in args
    assert _scalar("completionMode") == "Indexed"
    shards = int(_scalar("value"))  # FLEET_SHARDS
    assert shards == int(_scalar("completions")) == int(_scalar("parallelism"))
    profile = tmp_path / "fleet-profile.toml"
    profile.write_text(JOB.split("fleet-profile.toml: |\n", 1)[1].replace("\n    ", "\n").lstrip())
    args = [a if not a.startswith("--profile=") else f"--profile={profile}" for a in args]
    ns = _parser().parse_args(args)
    count = ns.count
    seen: list[str] = []
    for index in range(shards):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        monkeypatch.setenv("FLEET_SHARDS", str(shards))
        _, parts = _plan(ns)
        assert len(parts) == 1
        seen += parts[0]
        assert len(parts[0]) == len(shard_range(count, parse_shard("auto")))
    assert len(seen) == len(set(seen)) == count


def test_the_container_runs_the_station_console_script():
    text = (ROOT / "Containerfile").read_text()
    assert 'ENTRYPOINT ["station"]' in text
    assert re.search(r"^USER 10001$", text, re.M) and "runAsUser: 10001" in JOB
    for path in ("station", "hal", "pyproject.toml"):
        assert (ROOT / path).exists() and path in text
