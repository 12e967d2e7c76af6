"""The [daemon] section: values, origins, and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpath.config import ConfigError, load_config
from mpath.daemon.config import MapSpec, load_daemon_config, parse_metrics_address


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "mpath.toml"
    file.write_text(text)
    return file


def test_daemon_section_is_read_with_origins(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        '[defaults]\npolicy = "round-robin"\n\n[daemon]\nlisten_dir = "/run/x"\n'
        'metrics = "127.0.0.1:9586"\nportals = ["198.18.1.2", "198.18.2.2"]\n'
        'nbd_tcp = "localhost:10809"\n\n'
        '[[daemon.maps]]\npaths = ["iscsi://198.18.3.2/iqn.x:y/1"]\nalias = "db"\n',
    )
    config = load_config(file)  # the rest of the file still validates
    daemon = load_daemon_config(config.file, found=config.found)
    assert daemon.listen_dir == Path("/run/x")
    assert daemon.control_socket == Path("/run/x/control.sock")
    assert daemon.nbd_socket == Path("/run/x/nbd.sock")
    assert [str(a) for a in daemon.nbd_addresses] == [
        "unix:/run/x/nbd.sock",
        "tcp:127.0.0.1:10809",
    ]
    assert daemon.origins["nbd_tcp"] == f"{file}:8"
    assert str(daemon.metrics) == "127.0.0.1:9586"
    assert daemon.portals == ("198.18.1.2", "198.18.2.2")
    assert daemon.maps == (MapSpec(("iscsi://198.18.3.2/iqn.x:y/1",), "db"),)
    assert daemon.origins["metrics"] == f"{file}:6"


def test_missing_file_gives_defaults() -> None:
    daemon = load_daemon_config(Path("/nonexistent/mpath.toml"), found=False)
    assert daemon.listen_dir == Path("/run/mpath")
    assert daemon.nbd_tcp is None
    assert [str(a) for a in daemon.nbd_addresses] == ["unix:/run/mpath/nbd.sock"]
    assert daemon.maps == () and daemon.metrics is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[daemon]\nlisten_dri = "/x"\n', "did you mean 'listen_dir'"),
        ('[daemon]\nlisten_dir = "relative"\n', "absolute path"),
        ('[daemon]\nmetrics = "0.0.0.0:9586"\n', "only loopback"),
        ('[daemon]\nmetrics = "127.0.0.1"\n', "HOST:PORT"),
        ("[daemon]\nportals = [1]\n", "non-empty strings"),
        ('[[daemon.maps]]\nalias = "x"\n', "needs paths"),
        ('[[daemon.maps]]\npaths = ["a"]\nalias = "a/b"\n', "NBD export name"),
        ('[daemon]\nnbd_tcp = "0.0.0.0:10809"\n', "only loopback is served"),
        ('[daemon]\nnbd_tcp = "10809"\n', "expected HOST:PORT"),
        ("[daemon]\nnbd_tcp = 10809\n", "must be a string"),
        ('[[daemon.maps]]\npaths = ["a"]\nalias = "x"\n[[daemon.maps]]\npaths = ["b"]\n'
         'alias = "x"\n', "given twice"),
        ('[[daemon.maps]]\npaths = ["a", "b"]\npriorities = [1]\n',
         r"priorities has 1 value\(s\) for 2 path\(s\): give one per path"),
        ('[[daemon.maps]]\npaths = ["a"]\npriorities = ["high"]\n',
         "priorities must be an array of integers 0..1000000, one per path"),
        ('[[daemon.maps]]\npaths = ["a"]\npriorities = [-1]\n', "integers 0..1000000"),
        ('[[daemon.maps]]\npaths = ["a"]\npriorities = [true]\n', "integers 0..1000000"),
        ('[[daemon.maps]]\npaths = ["a"]\npriorities = 1\n', "integers 0..1000000"),
        ('[[daemon.maps]]\npaths = ["a", "b"]\npath_args = ["1", "2", "3"]\n',
         r"path_args has 3 value\(s\) for 2 path\(s\)"),
        ('[[daemon.maps]]\npaths = ["a"]\npath_args = [1]\n', "array of strings, one per path"),
        ('[[daemon.maps]]\npaths = ["a"]\npriority = [1]\n', "unknown key 'priority'"),
    ],
)  # fmt: skip
def test_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    file = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_daemon_config(load_config(file).file)
    assert caught.value.line is not None
    assert caught.value.exit_code == 2


def test_metrics_address_accepts_loopback_forms() -> None:
    assert parse_metrics_address("[::1]:0").port == 0
    assert parse_metrics_address("localhost:9").host == "localhost"


def test_priorities_and_path_args_per_map(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        '[[daemon.maps]]\npaths = ["/dev/a", "/dev/b", "/dev/c"]\n'
        'priorities = [50, 10, 50]\npath_args = ["4", "1 2", ""]\n\n'
        '[[daemon.maps]]\npaths = ["/dev/d"]\n',
    )
    daemon = load_daemon_config(load_config(file).file)
    first, second = daemon.maps
    assert first.priorities == (50, 10, 50)
    assert first.path_args == (("4",), ("1", "2"), ())
    assert (second.priorities, second.path_args) == (None, None)
    assert daemon.describe()["maps"][0] == {
        "paths": ["/dev/a", "/dev/b", "/dev/c"],
        "alias": None,
        "priorities": [50, 10, 50],
        "path_args": ["4", "1 2", ""],
    }


def test_a_reload_compares_what_each_path_gets_not_the_order_of_paths() -> None:
    spec = MapSpec(("/dev/a", "/dev/b"), priorities=(2, 1))
    assert spec.per_path() == MapSpec(("/dev/b", "/dev/a"), priorities=(1, 2)).per_path()
    assert spec.per_path() != MapSpec(("/dev/b", "/dev/a"), priorities=(2, 1)).per_path()
    assert spec.per_path() != MapSpec(("/dev/a", "/dev/b")).per_path()
    assert MapSpec(("/dev/a",)).per_path() == MapSpec(("/dev/a",)).per_path()
