"""check, prio and dm-config log in with the configuration file's CHAP credentials
(real rig whose target demands CHAP), and fail clearly with a wrong secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mpath.cli import main
from mpath.rig import Rig

pytestmark = pytest.mark.rig

RIGHT = {"T_CHAP": "initiator-secret-1"}
WRONG = {"T_CHAP": "wrong-secret-99"}


def config_file(tmp_path: Path) -> str:
    path = tmp_path / "mpath.toml"
    path.write_text('[[chap]]\nusername = "host1"\npassword_env = "T_CHAP"\n')
    return str(path)


def run(*args: str, env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def test_check_uses_the_config_files_chap(chap_rig: Rig, tmp_path: Path) -> None:
    url, config = chap_rig.urls[0], config_file(tmp_path)
    good = run("check", url, "--config", config, "--json", env=RIGHT)
    assert good.exit_code == 0, good.output
    assert [p["state"] for p in json.loads(good.stdout)] == ["up"], good.stdout
    bad = run("check", url, "--config", config, "--json", env=WRONG)
    assert bad.exit_code == 1
    assert "Authentication failure" in bad.stdout + bad.stderr
    assert "wrong-secret-99" not in bad.stdout + bad.stderr


def test_prio_probe_uses_the_config_files_chap(chap_rig: Rig, tmp_path: Path) -> None:
    url, config = chap_rig.urls[0], config_file(tmp_path)
    store = str(tmp_path / "paths.json")
    args = ("prio", url, "--config", config, "--store", store, "--json")
    good = run(*args, env=RIGHT)
    assert good.exit_code == 0, good.output
    assert json.loads(good.stdout)["priority"] > 0, good.stdout
    bad = run(*args, "--no-record", env=WRONG)
    assert bad.exit_code == 0  # the callout contract: always a number
    assert json.loads(bad.stdout)["priority"] == 0
    assert "Authentication failure" in bad.stderr, bad.stderr


def test_dm_config_measures_with_the_config_files_chap(chap_rig: Rig, tmp_path: Path) -> None:
    url, config = chap_rig.urls[0], config_file(tmp_path)
    store = str(tmp_path / "paths.json")
    args = ("dm-config", url, "--config", config, "--store", store, "--seconds", "0.5")
    good = run(*args, "--style", "service-time", "--json", env=RIGHT)
    assert good.exit_code == 0, good.output
    bad = run(*args, "--style", "service-time", env=WRONG)
    assert bad.exit_code != 0
    assert "Authentication failure" in bad.stdout + bad.stderr, bad.output
