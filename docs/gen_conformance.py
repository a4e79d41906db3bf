"""Write docs/CONFORMANCE.md: every OCTT charging-station case with the test that proves it.

    .venv/bin/pytest -q --junitxml=/tmp/junit.xml      # the whole suite: unit tests name cases too
    .venv/bin/python docs/gen_conformance.py --junit /tmp/junit.xml

A case is matched to the tests named ``test_<case id>_...`` (longest case id wins, so
``test_TC_043_1_...`` belongs to TC_043_1, not TC_043). With ``--junit`` the status is the test
result of that run; a case counts as passing only when all its tests passed.
"""

from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "conformance"

# Cases whose profile is not implemented yet, by section title prefix -> note
NOT_YET_16: dict[str, str] = {}  # every 1.6 section has its profile now

_ISO15118 = "not applicable: ISO 15118 (high-level communication with the EV) needs a PLC modem and stack this station does not have"
_SIGNED = "not applicable: signed meter values need a meter that signs its readings; none of the supported meters does"
# 2.0.1 cases that do not apply to this station, and why (shown instead of "not yet")
NOT_APPLICABLE_201: dict[str, str] = {
    **{c: _ISO15118 for c in ("TC_C_50", "TC_C_51", "TC_C_52", "TC_C_53", "TC_C_54", "TC_C_55", "TC_E_46",
                              "TC_K_53", "TC_K_54", "TC_K_56", "TC_K_57", "TC_K_58", "TC_M_15", "TC_M_24",
                              "TC_M_25", "TC_M_26", "TC_M_27", "TC_M_28", "TC_M_29", "TC_N_63")},
    **{c: _SIGNED for c in ("TC_E_11", "TC_J_04", "TC_J_11")},
    "TC_B_28": "not applicable: for a station that does not support Reset of one EVSE; this one does (TC_B_25..27)",
    "TC_B_29": "not applicable: for a station that does not support Reset of one EVSE; this one does (TC_B_25..27)",
    "TC_C_47": "not applicable: master pass with a user interface to choose transactions; the station has no screen (TC_C_49 passes)",
    "TC_C_48": "not applicable: master pass with a user interface to choose transactions; the station has no screen (TC_C_49 passes)",
    "TC_K_12": "not applicable: for a station with one charging rate unit; this one takes A and W",
    "TC_K_42": "not applicable: for a station with one charging rate unit; this one takes A and W",
    "TC_L_11": "not applicable: for a station that cannot cancel a firmware update; this one can (AcceptedCanceled)",
    "TC_L_12": "not applicable: for a station that cannot download during a transaction; this one can",
    "TC_L_13": "not applicable: for a station that cannot download during a transaction; this one can",
    "TC_L_16": "not applicable: for a station that installs during a transaction; this one waits until none runs",
    "TC_N_44": "not applicable: there are no hard-wired or preconfigured monitors whose clearing could be refused",
    "TC_O_17": "not applicable: every priority is supported (DisplayMessageCtrlr.SupportedPriorities)",
    "TC_O_18": "not applicable: every message state is supported",
    "TC_J_08": "not applicable: every reader belongs to one EVSE, so the EVSE is known when a transaction starts",
    **{c: "not applicable: the station does not offer AdditionalRootCertificateCheck (SecurityCtrlr variable false, "
          "read-only)" for c in ("TC_M_09", "TC_M_30", "TC_M_31")},
}


def parse_cases(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\*\*(.+?)\*\*", line.strip())
        if m:
            sections.append((m.group(1), []))
            continue
        m = re.match(r"- (TC_[A-Z0-9_]+?)_CS — (.*)", line.strip())
        if m and sections:
            sections[-1][1].append((m.group(1), m.group(2)))
    return sections


def find_tests() -> dict[str, list[str]]:
    """test function name -> ["file::name"]"""
    out: dict[str, list[str]] = {}
    for f in sorted((ROOT / "tests").rglob("test_*.py")):
        for m in re.finditer(r"^\s*(?:async\s+)?def (test_TC_\w+)\(", f.read_text(encoding="utf-8"), re.M):
            out.setdefault(m.group(1), []).append(f"{f.relative_to(ROOT)}::{m.group(1)}")
    return out


def junit_results(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    res: dict[str, str] = {}
    for tc in ET.parse(path).getroot().iter("testcase"):
        name = tc.get("name", "").split("[")[0]
        outcome = "passed"
        for child in tc:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "xfail" if "xfail" in (child.get("type", "") + child.get("message", "")) else "skipped"
        prev = res.get(name)
        res[name] = outcome if prev in (None, "passed") else prev
    return res


def named_cases(name: str, case_ids: set[str]) -> list[str]:
    """The 2.0.1 cases one test names before ``_CS``: ``test_TC_E_29_30_CS_...`` proves TC_E_29 and
    TC_E_30, ``test_TC_B_13_TC_B_53_CS_...`` TC_B_13 and TC_B_53."""
    m = re.match(r"test_((?:TC_[A-Z]_\d+)(?:_(?:TC_[A-Z]_)?\d+)*)_CS(?:_|$)", name)
    if not m:
        return []
    out, block = [], ""
    for part in re.findall(r"TC_[A-Z]_\d+|\d+", m.group(1)):
        if part.startswith("TC_"):
            block = part.rsplit("_", 1)[0]
            cid = part
        else:
            cid = f"{block}_{part}"
        if cid in case_ids and cid not in out:
            out.append(cid)
    return out


def assign(case_ids: list[str], tests: dict[str, list[str]]) -> dict[str, list[str]]:
    by_case: dict[str, list[str]] = {c: [] for c in case_ids}
    known = set(case_ids)
    for name in tests:
        several = named_cases(name, known)
        if len(several) > 1:
            for c in several:
                by_case[c].append(name)
            continue
        best = None
        for c in case_ids:
            if name == f"test_{c}" or name.startswith(f"test_{c}_"):
                if best is None or len(c) > len(best):
                    best = c
        if best:
            by_case[best].append(name)
    return by_case


def render(title: str, sections, tests, results, not_yet: dict[str, str], default_note: str,
           not_applicable: dict[str, str] | None = None) -> tuple[list[str], dict]:
    ids = [c for _, cases in sections for c, _ in cases]
    by_case = assign(ids, tests)
    lines = [f"## {title}", "", "| case | title | status | test |", "|---|---|---|---|"]
    counts = {"passing": 0, "failing": 0, "not yet": 0, "test exists": 0, "not applicable": 0}
    for sec, cases in sections:
        note = next((v for k, v in not_yet.items() if sec.startswith(k)), default_note)
        lines.append(f"| **{sec}** | | | |")
        for cid, name in cases:
            names = by_case[cid]
            if names:
                outcomes = [results.get(n) for n in names]
                if results and all(o == "passed" for o in outcomes):
                    status = "passing"
                elif results and any(o in ("failed", None) for o in outcomes):
                    status = "failing"
                elif results:
                    status = "not yet (" + ", ".join(sorted({o or "?" for o in outcomes if o != "passed"})) + ")"
                else:
                    status = "test exists"
                where = "<br>".join(t for n in names for t in tests[n])
            elif not_applicable and cid in not_applicable:
                status, where = "not applicable", not_applicable[cid]
            else:
                status, where = "not yet", note
            counts[status if status in counts else "not yet"] += 1
            lines.append(f"| {cid} | {name} | {status} | {where} |")
    lines.append("")
    return lines, counts


def profile_summary(statuses: dict[str, str]) -> list[str]:
    """Per 2.0.1 certification profile (octt201_cert_profiles.md): mandatory and conditional cases
    passing, not applicable, and the ones still missing."""
    path = SHARED / "octt201_cert_profiles.md"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = ["", "OCPP 2.0.1 by certification profile:", ""]
    pat = r"\*\*4\.\d+\. Test Cases ([^*]+)\*\* — CS mandatory \(\d+\): (.*?)\n\n  CS conditional \(\d+\): (.*?)\n"
    for m in re.finditer(pat, text, re.S):
        parts = []
        for kind, ids in (("mandatory", m.group(2)), ("conditional", m.group(3))):
            cases = [c.strip() for c in ids.split(",") if c.strip()]
            ok = sum(statuses.get(c) == "passing" for c in cases)
            na = sum(statuses.get(c) == "not applicable" for c in cases)
            missing = [c for c in cases if statuses.get(c) not in ("passing", "not applicable")]
            parts.append(f"{kind} {ok} passing" + (f", {na} not applicable" if na else "") + f" of {len(cases)}"
                         + (f" (missing: {', '.join(missing)})" if missing else ""))
        lines.append(f"- {m.group(1).strip()}: " + "; ".join(parts))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--junit")
    ap.add_argument("--out", default=str(ROOT / "docs" / "CONFORMANCE.md"))
    args = ap.parse_args()
    tests, results = find_tests(), junit_results(args.junit)
    s16 = parse_cases(SHARED / "octt16_cs.md")
    s201 = parse_cases(SHARED / "octt201_cs.md")
    l16, c16 = render("OCPP 1.6J", s16, tests, results, NOT_YET_16, "no test yet")
    l201, c201 = render("OCPP 2.0.1", s201, tests, results, {}, "no test yet", NOT_APPLICABLE_201)
    head = [
        "# Conformance: OCA test cases for a charging station",
        "",
        "Generated by `docs/gen_conformance.py` from ../shared/conformance/ and the tests named after each",
        "case (`test_TC_...`). *passing* means every test named after the case passed in the run the",
        "table was generated from (the whole suite), each integration test performing the case against the",
        "real station over a real websocket (tests/integration/harness.py plays the test tool's CSMS side;",
        "the station runs in the test process on virtual time, or as its own process where the case needs",
        "one: power cuts). Unit tests named after a case check the same rule in the core alone.",
        "",
        f"- OCPP 1.6J: {c16['passing']} passing, {c16['failing']} failing, {c16['not yet']} not yet, of {sum(c16.values())}",
        f"- OCPP 2.0.1: {c201['passing']} passing, {c201['not applicable']} not applicable, {c201['not yet']} not yet, "
        f"of {sum(c201.values())}",
        *profile_summary({ln.split(" | ")[0][2:]: ln.split(" | ")[2] for ln in l201 if ln.startswith("| TC_")}),
        "",
    ]
    Path(args.out).write_text("\n".join(head + l16 + l201), encoding="utf-8")
    print(f"wrote {args.out}: 1.6 {c16}, 2.0.1 {c201}")


if __name__ == "__main__":
    main()
