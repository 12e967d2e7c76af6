"""The one error a configuration file can cause.

A configuration mistake is bad input, so it exits 2 like any usage error, and it says
where the mistake is (``FILE:LINE[:COLUMN]: what is wrong``): an administrator with a
40-line file should not have to bisect it to find the typo.
"""

from __future__ import annotations

from pathlib import Path

from mpath.errors import UsageError


class ConfigError(UsageError):
    """The configuration file cannot be used: unreadable, bad TOML, or a bad value.

    ``file`` is the file (None for values that came from the command line), ``line``
    and ``column`` count from 1 and are None when unknown, ``problem`` is what is wrong
    without the location.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        where = ""
        if file is not None:
            where = str(file)
            if line is not None:
                where += f":{line}"
                if column is not None:
                    where += f":{column}"
            where += ": "
        super().__init__(f"{where}{problem}")
        self.file = None if file is None else Path(file)
        self.line = line
        self.column = column
        self.problem = problem
