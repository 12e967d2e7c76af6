"""The head-to-head benchmark in its quick form (lab): both stacks, one policy each.

benchmarks/vs_dm_multipath.py's own steps, shortened (2 s per balance run, the hold as
the only cut): open-iscsi + multipathd under ``service-time 0`` and ``mpath serve`` on
kernel NBD under ``share``, on one LIO rig. The figures are the emulated machine's,
so the checks are the ones its physics fixes: each path alone carries about its
link's rate, both stacks use both paths, tuned dm-multipath cannot give up a held
path before its NOP-Out timers run out, and mpath does it in a fraction of that.
"""

from __future__ import annotations

import json

import pytest

from benchmarks.vs_dm_multipath import ISCSI_TUNING, Options, document, measure

pytestmark = pytest.mark.lab


def test_quick_head_to_head_gives_the_document_with_both_stacks_figures() -> None:
    doc = document(measure(Options(seconds=2, ramp=0, stall_seconds=8, quick=True)))
    print("MUST-SHOW vs_dm_multipath --quick:", json.dumps({k: doc[k] for k in list(doc)[:3]}))
    assert set(doc) == {"balance", "stall_ms", "stale_chunks", "details"}
    alone = doc["balance"]["alone_mb_s"]
    # 16 and 48 mbit links: 2 and 6 MB/s, less what iSCSI and TCP carry besides data.
    assert 1.4 < alone[0] <= 2.0 and 4.5 < alone[1] <= 6.0, alone
    # Both stacks spread the reads: more than the faster path carries alone.
    assert doc["balance"]["dm"]["service-time"] > alone[1], doc["balance"]
    assert doc["balance"]["mpath"]["share"] > alone[1], doc["balance"]
    # A held path still looks alive to open-iscsi until a NOP-Out goes unanswered: the
    # NOP-Out interval passes without a reply, then the NOP-Out's own timeout.
    noop_s = sum(
        int(ISCSI_TUNING[f"node.conn[0].timeo.noop_out_{k}"]) for k in ("interval", "timeout")
    )
    dm_stall, mpath_stall = doc["stall_ms"]["dm"]["hold"], doc["stall_ms"]["mpath"]["hold"]
    assert dm_stall > noop_s * 1000, doc["stall_ms"]
    assert mpath_stall < dm_stall / 5, doc["stall_ms"]
    assert doc["details"]["stall"]["mpath"]["hold"]["errors"] == 0
    assert all(isinstance(n, int) and n >= 0 for n in doc["stale_chunks"].values())
