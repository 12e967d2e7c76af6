"""mpath on open-iscsi's /dev/sdX (lab): the kernel initiator logged in to both portals.

iscsid and iscsiadm log in to both portals of a LIO rig, which gives one SCSI disk per
path. mpath then groups them by WWID, opens them with SG_IO, measures and checks them,
and keeps a verified write load going while a path is cut.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mpath.cli import main
from mpath.rig import RigManager
from tests.conftest import unique_rig_name
from tests.lab.iscsi import Sessions, logged_in, sh

pytestmark = pytest.mark.lab


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def sessions() -> Iterator[Sessions]:
    """A LIO rig, iscsid, and one open-iscsi session per path; all undone afterwards."""
    with logged_in(unique_rig_name("iscsi")) as result:
        yield result


def test_each_path_is_a_scsi_disk_with_the_rigs_wwid(sessions: Sessions) -> None:
    rig = sessions.rig
    assert len(set(sessions.disks)) == 2
    for disk in sessions.disks:
        device = Path("/sys/block") / os.path.basename(disk) / "device"
        assert (device / "wwid").read_text().strip() == f"naa.{rig.lun.designator}"
        assert (device / "vendor").read_text().strip() == "MPATH"
        assert (device / "dh_state").read_text().strip() == "alua"


def test_discover_block_groups_the_pair_by_wwid(sessions: Sessions) -> None:
    code, out, err = cli("discover", "--block", "--json")
    assert code == 0, err
    devices = {d["wwid"]: d for d in json.loads(out)["devices"]}
    assert sorted(devices[sessions.rig.lun.wwid]["paths"]) == sorted(sessions.disks)


def test_show_opens_both_disks_with_sg_io(sessions: Sessions) -> None:
    code, out, err = cli("show", *sessions.disks, "--json")
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    text = json.dumps(doc)
    assert sessions.rig.lun.wwid in text
    for disk in sessions.disks:
        assert disk in text
    print("MUST-SHOW show:", text)


def test_show_names_each_disks_open_iscsi_session(sessions: Sessions) -> None:
    rig = sessions.rig
    # iscsiadm's own view: "tcp: [N] ADDRESS:PORT,TPGT TARGET (non-flash)" per session.
    listed = sh("iscsiadm", "-m", "session").stdout
    expected = []
    for portal in rig.portals:
        number = next(
            line.split("[", 1)[1].split("]", 1)[0]
            for line in listed.splitlines()
            if f" {portal.ip}:{portal.port}," in line and rig.target.iqn in line
        )
        expected.append(
            {"name": f"session{number}", "target": rig.target.iqn,
             "address": str(portal.ip), "port": portal.port}
        )  # fmt: skip
    code, out, err = cli("show", *sessions.disks, "--json")
    assert code == 0, err
    shown = {p["url"]: p["iscsi_session"] for g in json.loads(out)["groups"] for p in g["paths"]}
    assert [shown[disk] for disk in sessions.disks] == expected, (listed, shown)
    code, text, err = cli("show", *sessions.disks)
    assert code == 0, err
    for disk, session in zip(sessions.disks, expected, strict=True):
        line = next(line for line in text.splitlines() if disk in line)
        assert (
            f"{session['name']} {rig.target.iqn} {session['address']}:{session['port']}" in line
        ), text
    print("MUST-SHOW show sessions:", text)


def test_bench_verify_with_a_path_cut_has_no_error_and_no_mismatch(sessions: Sessions) -> None:
    """A cut path's writes stay queued in the kernel (iSCSI session recovery) until the
    link returns; mpath reissues them only once its block-path fence has seen every
    system call of the failed path return, so no stale copy can land last (before
    fencing this run counted 8 mismatches)."""
    code, out, err = cli(
        "bench", *sessions.disks, "--rig", sessions.rig.name, "--verify",
        "--rw", "randwrite", "--seconds", "8", "--span", "16M", "--qd", "8",
        "--fault", "2:1:down", "--fault", "5:1:up", "--json", "--no-progress",
    )  # fmt: skip
    doc = json.loads(out)
    figures = {k: v for k, v in doc.items() if not isinstance(v, (dict, list))}
    print("MUST-SHOW bench:", json.dumps(figures))
    assert (doc["errors"], doc["verify_mismatches"]) == (0, 0), (figures, err)
    assert code == 0, err


def test_prio_and_check_work_on_the_disks(sessions: Sessions) -> None:
    for disk in sessions.disks:
        code, out, err = cli("prio", os.path.basename(disk), "--json")
        assert code == 0, err
        assert 0 < json.loads(out)["priority"] <= 100, out
    code, out, err = cli("check", *sessions.disks, "--checker", "directio", "--json")
    assert code == 0, err
    assert [entry["state"] for entry in json.loads(out)] == ["up", "up"]


def test_alua_standby_is_seen_by_the_kernel_and_by_mpath(sessions: Sessions) -> None:
    rig, (disk1, disk2) = sessions.rig, sessions.disks
    manager = RigManager()
    manager.fault(rig.name, 2, "alua", alua_state="standby")
    try:
        # A read on the standby port gets NOT READY 04/0B; the kernel's ALUA handler
        # then re-reads the port groups (REPORT TARGET PORT GROUPS).
        sh("dd", f"if={disk2}", "of=/dev/null", "bs=4k", "count=1", "iflag=direct", check=False)
        state = Path("/sys/block") / os.path.basename(disk2) / "device" / "access_state"
        assert state.read_text().strip() == "standby"
        _code, out, err = cli("check", disk1, disk2, "--checker", "directio", "--json")
        print("MUST-SHOW alua check:", out, err)
        assert json.loads(out)[0]["state"] == "up"
        assert json.loads(out)[1]["state"] != "up"
    finally:
        manager.fault(rig.name, 2, "alua", alua_state="active-optimized")
