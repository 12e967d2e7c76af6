"""``mpath simulate``: the CLI contract (options, JSON keys, errors, exit codes)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mpath.cli import main


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["simulate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_has_the_contract_keys_and_reaches_the_sum() -> None:
    code, out, _ = invoke(
        "--mbps", "50,200", "--qd", "32", "--bs", "256K", "--ios", "4000", "--json"
    )
    assert code == 0
    document = json.loads(out)
    assert document["policy"] == "share"
    assert document["sum_mbps"] == 250
    assert document["efficiency"] >= 0.95
    assert document["mb_per_s"] == pytest.approx(document["efficiency"] * 250, rel=1e-3)
    assert set(document["latency_ms"]) >= {"p50", "p99", "max"}
    assert [path["mbps"] for path in document["paths"]] == [50, 200]
    for path in document["paths"]:
        assert set(path) >= {"mbps", "bytes", "share"}
    assert sum(path["bytes"] for path in document["paths"]) == 4000 * 256 * 1024


def test_round_robin_text_report() -> None:
    code, out, _ = invoke("--mbps", "50,200", "--policy", "round-robin", "--ios", "2000")
    assert code == 0
    assert out.startswith("policy round-robin: ")
    assert "of 250.0 MB/s (40.0%)" in out
    assert "latency ms: p50" in out


def test_failures_recoveries_rate_changes_and_trace() -> None:
    code, out, _ = invoke(
        "--mbps", "100,100", "--ios", "3000", "--fail", "1:1", "--recover", "2:1",
        "--rate", "0.5:2:50", "--trace", "0.5", "--seed", "3", "--json",
    )  # fmt: skip
    assert code == 0
    document = json.loads(out)
    assert document["retries"] > 0
    assert document["unfinished"] == 0
    assert document["trace"][0]["time"] == 0.5
    assert len(document["trace"][0]["shares"]) == 2


def test_per_path_and_policy_arguments_reach_the_selector() -> None:
    code, out, _ = invoke(
        "--mbps", "50,200", "--policy", "quota", "--policy-arg", "quantum=256K",
        "--path-args", "1", "--path-args", "4", "--ios", "3000", "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["efficiency"] >= 0.95


def test_same_seed_same_result() -> None:
    first = invoke("--mbps", "50,200", "--ios", "1000", "--seed", "5", "--json")
    assert first == invoke("--mbps", "50,200", "--ios", "1000", "--seed", "5", "--json")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mbps", "50,fast"], "bad --mbps 'fast': expected a number"),
        (["--mbps", "50,,200"], "bad --mbps list '50,,200'"),
        (["--mbps", "50,0"], "bad path speed 0.0"),
        (["--mbps", "50", "--bs", "huge"], "bad size 'huge'"),
        (["--mbps", "50", "--fail", "1:2"], "bad --fail '1:2': path index must be 1..1"),
        (["--mbps", "50", "--fail", "soon:1"], "bad --fail time 'soon'"),
        (["--mbps", "50", "--rate", "1:1"], "bad --rate '1:1': expected T:INDEX:MBPS"),
        (["--mbps", "50,50", "--latency-ms", "1,2,3"], "--latency-ms gives 3 values for 2 paths"),
        (["--mbps", "50,50", "--path-args", "1"], "--path-args given 1 times for 2 paths"),
        (
            ["--mbps", "50", "--policy", "quota", "--policy-arg", "x=1"],
            "quota ps: invalid argument",
        ),
        (
            ["--mbps", "50", "--policy", "weighted", "--path-args", "w"],
            "weighted ps: invalid weight",
        ),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(args: list[str], message: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2
    assert out == ""
    assert err.startswith("mpath: error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_policy_is_a_usage_error() -> None:
    code, _, err = invoke("--mbps", "50", "--policy", "fastest")
    assert code == 2
    assert "fastest" in err


def test_help_has_examples() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    assert "Examples:" in out
    assert "mpath simulate --mbps 50,200" in out
    for option in ("--mbps", "--policy", "--qd", "--bs", "--ios", "--json", "--latency-ms",
                   "--seed", "--fail", "--recover"):  # fmt: skip
        assert option in out


def test_each_path_shows_what_it_achieved_beside_its_configured_speed() -> None:
    code, out, _ = invoke("--mbps", "50,200", "--policy", "round-robin", "--ios", "2000")
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("path"))
    assert lines[header].split()[:5] == ["path", "MB/s", "set", "MB/s", "got"]
    rows = [lines[header + 1].split(), lines[header + 2].split()]
    # Round-robin gives both paths the same bytes: the slow one is full, the fast one
    # carries about a quarter of its speed (50 of 200 MB/s).
    assert [float(r[1]) for r in rows] == [50.0, 200.0]
    got = [float(r[2]) for r in rows]
    assert got[0] == pytest.approx(50, rel=0.02)
    assert got[1] == pytest.approx(got[0], rel=0.01)
    code, out, _ = invoke("--mbps", "50,200", "--policy", "round-robin", "--ios", "2000", "--json")
    document = json.loads(out)
    achieved = [path["achieved_mbps"] for path in document["paths"]]
    assert achieved == pytest.approx(got, abs=0.06)
    assert sum(achieved) == pytest.approx(document["mb_per_s"], rel=1e-3)


def test_every_example_in_the_help_runs_as_printed() -> None:
    import shlex

    text = CliRunner().invoke(main, ["simulate", "--help"]).output
    examples = [
        shlex.split(line.strip())[1:]
        for line in text.split("Examples:")[1].split("Options:")[0].splitlines()
        if line.strip().startswith("mpath simulate")
    ]
    assert len(examples) >= 6
    assert any("--policy-arg" in e for e in examples)
    for args in examples:
        result = CliRunner().invoke(main, [*args, "--ios", "500"])
        assert result.exit_code == 0, (args, result.output)
