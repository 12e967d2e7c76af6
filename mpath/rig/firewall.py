"""Packet-drop and packet-loss faults: an nftables table of the rig's own, in its namespace.

A dropped path loses every packet silently (no RST, no ICMP), the case that makes an
initiator wait for TCP's own timeouts. A lossy path loses a random share of its packets
both ways (``numgen random``), as a bad cable or an overrun switch port does: TCP
retransmits, and the path gets slow and jittery without ever going away. The table
lives only in the rig's namespace and is named ``mpath_rig``; the host's ruleset is
never read or changed.
"""

from __future__ import annotations

from mpath.rig.system import in_namespace, run

TABLE = "mpath_rig"

_TABLE_RULES = f"""
table inet {TABLE} {{
    set dropped {{ type ifname; }}
    chain input {{ type filter hook input priority 0; policy accept; iifname @dropped drop; }}
    chain output {{ type filter hook output priority 0; policy accept; oifname @dropped drop; }}
}}
"""


def create_table(namespace: str) -> None:
    run(in_namespace(namespace, ["nft", "-f", "-"]), input_text=_TABLE_RULES)


def set_drop(namespace: str, ifname: str, drop: bool) -> None:
    """Start (``drop=True``) or stop dropping every packet on ``ifname``."""
    verb = "add" if drop else "delete"
    # "delete" of an absent element fails; the caller's state says whether it is there,
    # but a repeated "clear" must stay harmless, so ignore that one failure.
    element = f"{{ {ifname} }}"
    run(
        in_namespace(namespace, ["nft", verb, "element", "inet", TABLE, "dropped", element]),
        check=drop,
    )


def set_loss(namespace: str, ifname: str, percent: int) -> None:
    """Lose ``percent`` % of the packets on ``ifname`` at random, both ways (0: none).

    Each interface has a chain of its own (``loss_IFNAME``) that the input and output
    chains jump to; the chain holds at most one rule, so setting a new share is a
    flush and an add, and clearing it is a flush.
    """
    if not 0 <= percent <= 100:
        raise ValueError(f"loss percentage {percent} outside 0..100")
    chain = f"loss_{ifname}"
    exists = run(
        in_namespace(namespace, ["nft", "list", "chain", "inet", TABLE, chain]), check=False
    )
    script = []
    if exists.returncode != 0:
        script += [
            f"add chain inet {TABLE} {chain}",
            f"add rule inet {TABLE} input iifname {ifname} jump {chain}",
            f"add rule inet {TABLE} output oifname {ifname} jump {chain}",
        ]
    script.append(f"flush chain inet {TABLE} {chain}")
    if percent:
        script.append(f"add rule inet {TABLE} {chain} numgen random mod 100 < {percent} drop")
    run(in_namespace(namespace, ["nft", "-f", "-"]), input_text="\n".join(script) + "\n")
