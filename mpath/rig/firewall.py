"""Packet-drop faults: an nftables table of the rig's own, inside its namespace.

A dropped path loses every packet silently (no RST, no ICMP), the case that makes an
initiator wait for TCP's own timeouts. The table lives only in the rig's namespace and
is named ``mpath_rig``; the host's ruleset is never read or changed.
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
