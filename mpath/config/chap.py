"""iSCSI CHAP credentials from the configuration file, for discovery and login.

Secrets never come from the command line (argv is world-readable through ``ps`` and
``/proc``) and never appear in output: a :class:`Secret` prints as ``***``. Each
``[[chap]]`` entry names the initiator's user name and its secret, given either in the
file (``password``, then the file should be readable by root only) or, better, as the
name of an environment variable that holds it (``password_env``). Mutual CHAP adds the
name and secret the *target* must answer with (``target_username``,
``target_password`` / ``target_password_env``).

Entries apply to a portal, a target, both, or (with neither) to everything; the most
specific entry that matches wins, as in open-iscsi where node settings beat discovery
defaults. Environment variables are read only when credentials are asked for, so a
missing variable breaks only the logins that need it, with the file and line to fix.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mpath.config.errors import ConfigError

DEFAULT_ISCSI_PORT = 3260


class Secret:
    """A CHAP secret: compares and hashes by value, never prints its value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the login call and nothing else."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class SecretSource:
    """Where one secret comes from: the file itself (``literal``) or ``env``."""

    literal: Secret | None
    env: str | None
    key: str
    line: int | None

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else "the configuration file"

    def get(self, file: Path | None, environ: Mapping[str, str]) -> Secret:
        """The secret, or ConfigError (exit 2) naming the variable and the line."""
        if self.literal is not None:
            return self.literal
        assert self.env is not None
        value = environ.get(self.env)
        if not value:
            state = "is empty" if value == "" else "is not set"
            raise ConfigError(
                f"{self.key} names environment variable {self.env}, which {state}",
                file=file,
                line=self.line,
            )
        return Secret(value)


@dataclass(frozen=True, slots=True)
class ChapCredentials:
    """What a login needs for CHAP: one-way (``username``/``password``) and, for
    mutual CHAP, what the target must answer with."""

    username: str
    password: Secret
    target_username: str | None = None
    target_password: Secret | None = None

    @property
    def mutual(self) -> bool:
        return self.target_username is not None


def parse_portal(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (IPv6 in brackets) as a normalised (host, port); ValueError if bad."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError("unclosed '[' in the IPv6 address")
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise ValueError(f"unexpected {rest!r} after the IPv6 address")
        ipaddress.IPv6Address(host)
    elif text.count(":") > 1:
        raise ValueError("put an IPv6 address in brackets: [fd00::1]:3260")
    else:
        host, sep, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if sep else None
    if not host:
        raise ValueError("no host")
    port = DEFAULT_ISCSI_PORT
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"port {port_text!r} is not a number between 1 and 65535")
        port = int(port_text)
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        host = host.lower().rstrip(".")
    return host, port


@dataclass(frozen=True, slots=True)
class ChapEntry:
    """One ``[[chap]]`` table. ``portal``/``target`` None means "any"."""

    index: int
    line: int | None
    portal: tuple[str, int] | None
    target: str | None
    username: str
    password: SecretSource
    target_username: str | None
    target_password: SecretSource | None

    def specificity(self, portal: tuple[str, int], target: str) -> int | None:
        """How specific the match is (higher wins), or None when it does not apply."""
        if self.portal is not None and self.portal != portal:
            return None
        if self.target is not None and self.target != target:
            return None
        return (2 if self.target is not None else 0) + (1 if self.portal is not None else 0)

    def describe(self) -> str:
        scope = []
        if self.portal is not None:
            host, port = self.portal
            scope.append(f"portal {'[' + host + ']' if ':' in host else host}:{port}")
        if self.target is not None:
            scope.append(f"target {self.target}")
        kind = "mutual" if self.target_username is not None else "one-way"
        return f"{kind} CHAP for {' '.join(scope) or 'every portal and target'}"


@dataclass(frozen=True, slots=True)
class ChapTable:
    """The ``[[chap]]`` entries of one file."""

    entries: tuple[ChapEntry, ...] = ()
    file: Path | None = None

    def entry_for(self, portal: str, target: str) -> ChapEntry | None:
        """The most specific entry for ``portal`` (``HOST[:PORT]``) and ``target``."""
        try:
            key = parse_portal(portal)
        except ValueError:
            return None
        best: tuple[int, int] | None = None
        chosen: ChapEntry | None = None
        for entry in self.entries:
            score = entry.specificity(key, target)
            if score is not None and (best is None or (score, entry.index) > best):
                best, chosen = (score, entry.index), entry
        return chosen

    def credentials_for(
        self, portal: str, target: str, *, environ: Mapping[str, str] | None = None
    ) -> ChapCredentials | None:
        """CHAP credentials for a login to ``target`` through ``portal``, or None.

        Raises :class:`ConfigError` when the matching entry names an environment
        variable that is not set (exit 2: the setup is incomplete, not the target).
        """
        entry = self.entry_for(portal, target)
        if entry is None:
            return None
        env = os.environ if environ is None else environ
        password = entry.password.get(self.file, env)
        target_password = (
            entry.target_password.get(self.file, env) if entry.target_password else None
        )
        return ChapCredentials(
            username=entry.username,
            password=password,
            target_username=entry.target_username,
            target_password=target_password,
        )
