"""``mpath simulate``: the real selectors over simulated paths (docs/selectors.md)."""

from __future__ import annotations

import math

import click

from mpath.cli.common import emit_json, json_option
from mpath.errors import UsageError
from mpath.selectors import DEFAULT_POLICY, SELECTOR_NAMES
from mpath.sim import EventKind, PathEvent, Scenario, SimPath, SimResult
from mpath.sim import simulate as run_simulation
from mpath.sim.model import DEFAULT_JITTER, DEFAULT_LATENCY_MS
from mpath.units import format_size, parse_size


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"bad {what} {text!r}: expected a number") from None
    if not math.isfinite(value):
        raise UsageError(f"bad {what} {text!r}: expected a finite number")
    return value


def parse_list(text: str, what: str) -> list[float]:
    """``"50,200"`` -> ``[50.0, 200.0]``; every item must be a number."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise UsageError(f"bad {what} list {text!r}: expected numbers separated by commas")
    return [_number(item, what) for item in items]


def parse_event(text: str, kind: EventKind, paths: int) -> PathEvent:
    """``T:INDEX`` (fail, recover) or ``T:INDEX:MBPS`` (rate), INDEX counting from 1."""
    parts = text.split(":")
    expected = 3 if kind is EventKind.RATE else 2
    form = "T:INDEX:MBPS" if kind is EventKind.RATE else "T:INDEX"
    if len(parts) != expected:
        raise UsageError(f"bad --{kind.value} {text!r}: expected {form}, e.g. 2.5:1")
    at = _number(parts[0], f"--{kind.value} time")
    index_text = parts[1].strip()
    if not index_text.isdigit() or not 1 <= int(index_text) <= paths:
        raise UsageError(
            f"bad --{kind.value} {text!r}: path index must be 1..{paths} (counting from 1)"
        )
    mbps = _number(parts[2], "--rate speed") if kind is EventKind.RATE else None
    return PathEvent(at=at, path=int(index_text) - 1, kind=kind, mbps=mbps)


def build_scenario(
    *,
    mbps: str,
    policy: str,
    qd: int,
    bs: str,
    ios: int,
    latency_ms: str,
    seed: int,
    jitter: float,
    max_commands: int | None,
    policy_args: tuple[str, ...],
    path_args: tuple[str, ...],
    fail: tuple[str, ...],
    recover: tuple[str, ...],
    rate: tuple[str, ...],
    trace: float | None,
) -> Scenario:
    """Turn the command line into a :class:`~mpath.sim.Scenario` (UsageError if bad)."""
    speeds = parse_list(mbps, "--mbps")
    latencies = parse_list(latency_ms, "--latency-ms")
    if len(latencies) == 1:
        latencies *= len(speeds)
    if len(latencies) != len(speeds):
        raise UsageError(
            f"--latency-ms gives {len(latencies)} values for {len(speeds)} paths: "
            "give one for all or one per path"
        )
    if path_args and len(path_args) != len(speeds):
        raise UsageError(
            f"--path-args given {len(path_args)} times for {len(speeds)} paths: "
            "give it once per path, in path order"
        )
    per_path = [tuple(text.split()) for text in path_args] or [()] * len(speeds)
    paths = tuple(
        SimPath(mbps=speed, latency_ms=latency, args=args)
        for speed, latency, args in zip(speeds, latencies, per_path, strict=True)
    )
    events = [parse_event(text, EventKind.FAIL, len(paths)) for text in fail]
    events += [parse_event(text, EventKind.RECOVER, len(paths)) for text in recover]
    events += [parse_event(text, EventKind.RATE, len(paths)) for text in rate]
    return Scenario(
        paths=paths,
        policy=policy,
        policy_args=policy_args,
        qd=qd,
        bs=parse_size(bs),
        ios=ios,
        max_commands=max_commands,
        seed=seed,
        jitter=jitter,
        events=tuple(sorted(events, key=lambda event: event.at)),
        trace_interval=trace,
    )


def achieved_mbps(moved: int, result: SimResult) -> float:
    """What a path carried over the whole simulated run, in MB/s (10^6 B/s): beside its
    configured speed, how much of it the policy used."""
    return moved / result.elapsed / 1e6 if result.elapsed > 0 else 0.0


def _text_report(scenario: Scenario, result: SimResult) -> None:
    click.echo(
        f"policy {result.policy}: {result.mb_per_s:.1f} MB/s of {result.sum_mbps:.1f} MB/s "
        f"({result.efficiency:.1%}), {result.ios} I/Os of {format_size(scenario.bs)} "
        f"at qd {scenario.qd} in {result.elapsed:.3f} s simulated"
    )
    latency = result.latency_ms
    click.echo(f"latency ms: p50 {latency.p50:.2f}  p99 {latency.p99:.2f}  max {latency.max:.2f}")
    if result.retries or result.unfinished:
        click.echo(
            f"retried after a path failure: {result.retries}, unfinished: {result.unfinished}"
        )
    click.echo("path  MB/s set  MB/s got        bytes    share  selector share  state")
    for number, path in enumerate(result.paths, start=1):
        click.echo(
            f"{number:>4}  {path.mbps:8.1f}  {achieved_mbps(path.bytes, result):8.1f}  "
            f"{path.bytes:>11}  {path.share:7.1%}  {path.selector_share:14.1%}  {path.state}"
        )
    if result.trace:
        click.echo("trace: time s, then MB/s/share per path")
        for point in result.trace:
            cells = "  ".join(
                f"{mbps:7.1f}/{share:5.1%}"
                for mbps, share in zip(point.mbps, point.shares, strict=True)
            )
            click.echo(f"{point.time:8.2f}  {cells}")


@click.command()
@click.option("--mbps", required=True, help="Speed of each path in MB/s (10^6 B/s): R1,R2,...")
@click.option(
    "--policy",
    type=click.Choice(SELECTOR_NAMES),
    default=DEFAULT_POLICY,
    show_default=True,
    metavar="POLICY",
    help=f"Path selection policy: {', '.join(SELECTOR_NAMES)}.",
)
@click.option(
    "--qd", type=click.IntRange(min=1), default=32, show_default=True, help="I/Os kept outstanding."
)
@click.option("--bs", default="256K", show_default=True, help="I/O size (K/M/G suffixes).")
@click.option(
    "--ios", type=click.IntRange(min=1), default=20_000, show_default=True, help="I/Os to complete."
)
@click.option(
    "--latency-ms",
    default=str(DEFAULT_LATENCY_MS),
    show_default=True,
    help="Per-command latency in ms: one value for all paths or L1,L2,...",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the jitter.")
@click.option(
    "--jitter",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=DEFAULT_JITTER,
    show_default=True,
    help="Each transfer time varies uniformly by +-this fraction.",
)
@click.option(
    "--max-commands",
    type=click.IntRange(min=1),
    default=None,
    help="The LUN's cap on outstanding commands given to the selector [default: qd].",
)
@click.option(
    "--policy-arg",
    "policy_args",
    multiple=True,
    help="A selector argument of the --policy, e.g. --policy quota --policy-arg quantum=512K "
    "(repeatable; each policy's arguments: docs/selectors.md).",
)
@click.option(
    "--path-args",
    multiple=True,
    help="Per-path selector arguments, once per path in order, e.g. --path-args '0 20'.",
)
@click.option("--fail", multiple=True, metavar="T:INDEX", help="Fail path INDEX at T seconds.")
@click.option("--recover", multiple=True, metavar="T:INDEX", help="Recover path INDEX at T s.")
@click.option(
    "--rate", multiple=True, metavar="T:INDEX:MBPS", help="Set path INDEX's speed at T s."
)
@click.option(
    "--trace",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Record per-path MB/s and shares every SECONDS.",
)
@json_option
def simulate(
    mbps: str,
    policy: str,
    qd: int,
    bs: str,
    ios: int,
    latency_ms: str,
    seed: int,
    jitter: float,
    max_commands: int | None,
    policy_args: tuple[str, ...],
    path_args: tuple[str, ...],
    fail: tuple[str, ...],
    recover: tuple[str, ...],
    rate: tuple[str, ...],
    trace: float | None,
    as_json: bool,
) -> None:
    """Run the real path selectors against simulated paths (no I/O, no root).

    Each path is a server with a bandwidth and a per-command latency: commands on a
    path are transferred one after another at its speed and complete LATENCY later.
    QD I/Os of BS bytes are kept outstanding until IOS have completed. Paths are
    numbered from 1 in the order of --mbps. Runs are deterministic for a --seed.

    \b
    Examples:
      mpath simulate --mbps 50,200
      mpath simulate --mbps 50,200 --policy round-robin --json
      mpath simulate --mbps 200,200 --rate 5:2:50 --trace 0.5
      mpath simulate --mbps 100,100,100 --fail 2:1 --recover 6:1
      mpath simulate --mbps 50,200 --policy quota --path-args 1 --path-args 4
      mpath simulate --mbps 50,200 --policy quota --policy-arg quantum=512K
      mpath simulate --mbps 100,100 --latency-ms 0.1,5.1 --qd 8 --bs 64K --policy-arg fill=bdp
      mpath simulate --mbps 50,200 --policy service-time --path-args '0 20' --path-args '0 80'
    """
    scenario = build_scenario(
        mbps=mbps,
        policy=policy,
        qd=qd,
        bs=bs,
        ios=ios,
        latency_ms=latency_ms,
        seed=seed,
        jitter=jitter,
        max_commands=max_commands,
        policy_args=policy_args,
        path_args=path_args,
        fail=fail,
        recover=recover,
        rate=rate,
        trace=trace,
    )
    result = run_simulation(scenario)
    if as_json:
        document = result.to_json()
        for entry, path in zip(document["paths"], result.paths, strict=True):
            entry["achieved_mbps"] = round(achieved_mbps(path.bytes, result), 3)
        if result.trace:
            document["trace"] = [
                {"time": round(point.time, 6), "mbps": point.mbps, "shares": point.shares}
                for point in result.trace
            ]
        emit_json(document)
        return
    _text_report(scenario, result)
