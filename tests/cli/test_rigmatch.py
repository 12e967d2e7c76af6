"""Faults and --rig act only on the rig the paths lead to (state files, no real rig)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpath.cli import main
from mpath.cli.rigmatch import check_rig_lun, fault_rig, rig_of_paths
from mpath.errors import UsageError
from mpath.rig.model import Rig, RigLUN, RigPath, RigPortal, RigTarget, RigTPG

IQN = "iqn.2026-11.org.mpath:rig."


def _rig(name: str, subnets: tuple[int, ...], wwid_digit: str) -> Rig:
    lun = RigLUN(1, f"/x/{name}.img", 1 << 20, f"MPATH{name.upper()}", wwid_digit * 32)
    portals = tuple(RigPortal(f"198.18.{s}.2") for s in subnets)
    return Rig(
        name=name,
        backend="tgt",
        namespace=f"mpath-rig-{name}",
        state_dir=f"/x/{name}",
        control_port=30001,
        target=RigTarget(IQN + name, (RigTPG(1, (lun,), portals),)),
        paths=[RigPath(i, s, f"mpr{s}", f"path{i}") for i, s in enumerate(subnets, start=1)],
    )


@pytest.fixture
def rigs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Rig]:
    """Two rigs' state files, as 'rig up' leaves them (no namespace is created)."""
    monkeypatch.setenv("MPATH_RIG_DIR", str(tmp_path))
    monkeypatch.delenv("MPATH_RIG_NAME", raising=False)
    made = {"newbie": _rig("newbie", (1, 2), "1"), "newbie2": _rig("newbie2", (3, 4), "2")}
    for rig in made.values():
        (tmp_path / rig.name).mkdir()
        (tmp_path / rig.name / "state.json").write_text(json.dumps(rig.to_state()))
    return made


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, list(args), prog_name="mpath", env=env)
    return result.exit_code, result.output.splitlines()


def test_a_fault_on_another_rig_is_refused_naming_both(rigs: dict[str, Rig]) -> None:
    urls = rigs["newbie"].urls
    for args, env in (
        ((*urls, "--rig", "newbie2"), None),
        (tuple(urls), {"MPATH_RIG_NAME": "newbie2"}),
    ):
        code, lines = _invoke("bench", *args, "--seconds", "2", "--fault", "1:1:down", env=env)
        assert code == 2
        assert len(lines) == 1, lines
        assert "'newbie2'" in lines[0] and "'newbie'" in lines[0], lines[0]
        assert lines[0].startswith("mpath: error: --fault: rig 'newbie2' is not the rig of")


def test_the_rig_is_inferred_from_the_paths_target(rigs: dict[str, Rig]) -> None:
    urls = rigs["newbie2"].urls
    assert fault_rig(urls, None, [1, 2]).name == "newbie2"
    assert fault_rig(urls, "newbie2", [2]).name == "newbie2"
    assert rig_of_paths(urls[1:], None, what="--rig") == rigs["newbie2"]


def test_a_fault_on_a_path_this_run_does_not_use_is_refused(rigs: dict[str, Rig]) -> None:
    only_second = rigs["newbie"].urls[1:]
    with pytest.raises(UsageError, match=r"rig 'newbie' path 1 \(iscsi://198\.18\.1\.2/"):
        fault_rig(only_second, None, [1])


def test_paths_of_no_rig_cannot_take_a_fault(rigs: dict[str, Rig]) -> None:
    foreign = ["iscsi://192.0.2.1/iqn.2001-04.com.example:disk/1"]
    with pytest.raises(UsageError, match="which no rig on this host serves"):
        fault_rig(foreign, None, [1])
    with pytest.raises(UsageError, match=r"rig 'newbie' is not the rig .*\(no rig on this host\)"):
        fault_rig(foreign, "newbie", [1])
    with pytest.raises(UsageError, match="block-device paths needs --rig"):
        fault_rig(["/dev/loop0"], None, [1])


def test_block_paths_are_checked_by_the_luns_wwid(rigs: dict[str, Rig]) -> None:
    rig = rigs["newbie"]
    check_rig_lun(rig, rig.lun.wwid, what="--fault")
    with pytest.raises(UsageError, match=r"rig 'newbie' serves LUN 3111.*LUN 3222"):
        check_rig_lun(rig, rigs["newbie2"].lun.wwid, what="--fault")


def test_a_fault_after_the_run_ends_is_refused_up_front(rigs: dict[str, Rig]) -> None:
    code, lines = _invoke(*("bench", *rigs["newbie"].urls, "--seconds", "2"), "--fault", "5:1:down")
    assert code == 2
    assert lines == [
        "mpath: error: --fault 5:1:down is at 5 s, but the run ends at 2 s (--seconds): "
        "it would never happen"
    ]


def test_show_does_not_ignore_rig(rigs: dict[str, Rig]) -> None:
    code, lines = _invoke("show", "--rig", "newbie2", rigs["newbie"].urls[0])
    assert code == 2
    assert len(lines) == 1 and "'newbie2'" in lines[0] and "'newbie'" in lines[0], lines


def test_check_does_not_ignore_rig_either(rigs: dict[str, Rig]) -> None:
    code, lines = _invoke("check", "--rig", "newbie2", rigs["newbie"].urls[1])
    assert code == 2
    assert len(lines) == 1 and "'newbie2'" in lines[0] and "'newbie'" in lines[0], lines
