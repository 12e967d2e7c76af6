"""The head-to-head benchmark's pure part: the document, the claims, the report (the
measuring itself runs in the lab VM: tests/lab/test_vs_dm_multipath.py)."""

from __future__ import annotations

from typing import Any

from benchmarks.vs_dm_multipath import document, render, verdicts


def loads(seq: float, rand: float) -> dict[str, dict[str, float]]:
    return {
        "seq256k": {"mb_s": seq, "p99_ms": 500.0, "errors": 0},
        "rand4k": {"mb_s": rand, "p99_ms": 20.0, "errors": 0},
    }


def raw(share: float = 7.6, mpath_hold: int = 900, mpath_stale: int = 0) -> dict[str, Any]:
    def stall(ms: int, stale: int) -> dict[str, Any]:
        return {"max_ms": ms, "errors": 0, "ios": 100, "stale_chunks": stale}

    return {
        "options": {"seconds": 8, "ramp": 2, "stall_seconds": 24, "quick": False},
        "guest_seconds": 500,
        "dm": {
            "alone": [loads(1.9, 0.48), loads(5.7, 1.44)],
            "weights": [30, 100],
            "fragment": "...",
            "policies": {
                "service-time": loads(7.4, 1.8),
                "round-robin": loads(3.8, 0.96),
                "historical-service-time": None,
            },
            "unavailable": {"historical-service-time": "not in this kernel"},
            "stall": {"down": stall(15000, 0), "drop": stall(16000, 0), "hold": stall(16000, 3)},
            "stale": stall(17000, 2),
        },
        "mpath": {
            "alone": [loads(1.9, 0.48), loads(5.7, 1.3)],
            "policies": {"share": loads(share, 1.8), "quota": loads(7.0, 1.7)},
            "stall": {
                "down": stall(800, 0),
                "drop": stall(900, 0),
                "hold": stall(mpath_hold, mpath_stale),
            },
            "stale": stall(40, 0),
        },
    }


def test_the_document_has_the_issues_keys_with_256k_figures() -> None:
    doc = document(raw())
    assert doc["balance"] == {
        "alone_mb_s": [1.9, 5.7],
        "dm": {"service-time": 7.4, "round-robin": 3.8, "historical-service-time": None},
        "mpath": {"share": 7.6, "quota": 7.0},
    }
    assert doc["stall_ms"] == {
        "dm": {"down": 15000, "drop": 16000, "hold": 16000},
        "mpath": {"down": 800, "drop": 900, "hold": 900},
    }
    assert doc["stale_chunks"] == {"dm": 5, "mpath": 0}  # both hold runs
    assert doc["details"]["quota_weights"] == [30, 100]


def test_the_claims_are_judged_from_the_figures() -> None:
    good = verdicts(document(raw()))
    assert "seq256k: mpath `share` 7.60 MB/s vs dm's best `service-time` 7.40" in good[0]
    assert "within 3% or ahead: yes" in good[0] and "(ahead)" in good[0]
    assert "0.06x (at most 0.20x: yes)" in good[2]
    bad = verdicts(document(raw(share=7.0, mpath_hold=4000, mpath_stale=2)))
    assert "-5.4%; within 3% or ahead: **no**" in bad[0]
    assert "`hold` stall: mpath 4000 ms vs tuned dm-multipath 16000 ms, 0.25x" in bad[3]
    assert "(0 for mpath: **no**)" in bad[-1]


def test_the_report_shows_every_row_against_the_sum_of_the_paths_alone() -> None:
    doc = document(raw())
    doc["details"]["accel"] = "tcg"
    text = render(doc, 600)
    assert "| path 1 alone | (`/dev/sdX`) | 1.90 | 25% |" in text
    assert "| dm-multipath | `round-robin` | 3.80 | 50% |" in text
    assert "| dm-multipath | `historical-service-time` | not in this kernel |" in text
    assert "| mpath | `quota` (weights 30,100) | 7.00 | 92% |" in text
    assert "| hold | 16000 | 0 | 900 | 0 | 0.06x |" in text
    assert "dm-multipath **5**, mpath **0** (dm-multipath: 3 after the mid-run hold, 2" in text
