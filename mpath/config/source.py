"""Where each key of a TOML file is: the line numbers tomllib does not give.

``tomllib`` reports the line and column of *syntax* errors, but once a file has parsed
it returns plain dicts with no positions. A *semantic* error (an unknown key, a value
out of range, a regular expression that does not compile) must still point at its
line, so this module scans the text once more, lightly: it follows tables, arrays of
tables, keys, array elements and inline tables, skipping strings and comments, and
records the line where each one starts.

It runs only on text tomllib has already accepted, so it can be lenient: it never
raises, and anything it does not understand just has no recorded line (the caller then
falls back to the enclosing key or table).

>>> source = SourceMap('[defaults]\\npolicy = "share"\\n[[devices]]\\nvendor = "X"\\n')
>>> source.line_of(("devices", 0, "vendor"))
4
>>> source.line_of(("devices", 0, "product"))  # not in the file: its table's line
3
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

KeyPath = tuple[str | int, ...]

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class SourceMap:
    """Line numbers (from 1) of the tables, keys and array elements of one TOML text.

    A path is the sequence of names and indexes that reaches a value in the parsed
    document: ``("devices", 1, "product")`` is the ``product`` key of the second
    ``[[devices]]`` table, ``("blacklist", "wwid", 2)`` the third element of the
    blacklist's ``wwid`` array.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._lines: dict[KeyPath, int] = {}
        #: Arrays of tables seen so far (by their names) and the index of the last one.
        self._array_tables: dict[tuple[str, ...], int] = {}
        with contextlib.suppress(IndexError):  # truncated text: keep what was found
            self._scan()

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, else of its nearest enclosing key or table, else None."""
        key = tuple(path)
        while key:
            line = self._lines.get(key)
            if line is not None:
                return line
            key = key[:-1]
        return None

    def has(self, path: Sequence[str | int]) -> bool:
        """Whether ``path`` itself (not an enclosing table) was found in the text."""
        return tuple(path) in self._lines

    # -- scanning -------------------------------------------------------------------------

    def _line(self) -> int:
        return self._text.count("\n", 0, self._pos) + 1

    def _peek(self, count: int = 1) -> str:
        return self._text[self._pos : self._pos + count]

    def _at_end(self) -> bool:
        return self._pos >= len(self._text)

    def _record(self, path: KeyPath, line: int) -> None:
        self._lines.setdefault(path, line)

    def _skip_blank(self, *, newlines: bool) -> None:
        """Skip spaces, tabs, comments and (when asked) newlines."""
        while not self._at_end():
            char = self._text[self._pos]
            if char in " \t\r" or (newlines and char == "\n"):
                self._pos += 1
            elif char == "#":
                end = self._text.find("\n", self._pos)
                self._pos = len(self._text) if end < 0 else end
            else:
                return

    def _scan(self) -> None:
        table: KeyPath = ()
        while True:
            self._skip_blank(newlines=True)
            if self._at_end():
                return
            line = self._line()
            if self._peek(2) == "[[":
                self._pos += 2
                names = self._read_key()
                self._skip_to(("]]",))
                self._pos += 2
                self._array_tables[names] = self._array_tables.get(names, -1) + 1
                table = self._table_path(names)
                self._record(table, line)
            elif self._peek() == "[":
                self._pos += 1
                names = self._read_key()
                self._skip_to(("]",))
                self._pos += 1
                table = self._table_path(names)
                self._record(table, line)
            else:
                names = self._read_key()
                path = (*table, *names)
                self._record(path, line)
                self._skip_blank(newlines=False)
                if self._peek() == "=":
                    self._pos += 1
                self._skip_blank(newlines=False)
                self._read_value(path)
            self._skip_rest_of_line()

    def _table_path(self, names: tuple[str, ...]) -> KeyPath:
        """The document path of a table header, with array-of-tables indexes inserted."""
        path: list[str | int] = []
        for count in range(1, len(names) + 1):
            path.append(names[count - 1])
            index = self._array_tables.get(names[:count])
            if index is not None:
                path.append(index)
        return tuple(path)

    def _skip_to(self, endings: tuple[str, ...]) -> None:
        while not self._at_end() and not any(self._text.startswith(e, self._pos) for e in endings):
            self._pos += 1

    def _skip_rest_of_line(self) -> None:
        end = self._text.find("\n", self._pos)
        self._pos = len(self._text) if end < 0 else end + 1

    def _read_key(self) -> tuple[str, ...]:
        """A dotted key (bare or quoted parts), leaving the position after it."""
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            char = self._peek()
            if char in ('"', "'"):
                parts.append(self._read_string())
            else:
                start = self._pos
                while not self._at_end() and self._text[self._pos] in _BARE_KEY_CHARS:
                    self._pos += 1
                parts.append(self._text[start : self._pos])
                if start == self._pos:  # not a key at all: stop without looping
                    return tuple(parts)
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._pos += 1

    def _read_string(self) -> str:
        """A basic, literal or multi-line string; returns its raw inner text."""
        for quote in ('"""', "'''"):
            if self._peek(3) == quote:
                self._pos += 3
                start = self._pos
                while not self._at_end():
                    if quote == '"""' and self._peek() == "\\":
                        self._pos += 2
                        continue
                    if self._peek(3) == quote:
                        # A closing delimiter may be followed by up to two more quotes.
                        while self._peek(4) == quote + quote[0]:
                            self._pos += 1
                        inner = self._text[start : self._pos]
                        self._pos += 3
                        return inner
                    self._pos += 1
                return self._text[start:]
        quote = self._peek()
        self._pos += 1
        start = self._pos
        while not self._at_end():
            char = self._peek()
            if char == "\\" and quote == '"':
                self._pos += 2
                continue
            if char in (quote, "\n"):
                inner = self._text[start : self._pos]
                self._pos += 1
                return inner
            self._pos += 1
        return self._text[start:]

    def _read_value(self, path: KeyPath) -> None:
        char = self._peek()
        if char in ('"', "'"):
            self._read_string()
        elif char == "[":
            self._pos += 1
            index = 0
            while True:
                self._skip_blank(newlines=True)
                if self._at_end() or self._peek() == "]":
                    self._pos += 1
                    return
                if self._peek() == ",":
                    self._pos += 1
                    continue
                self._record((*path, index), self._line())
                self._read_value((*path, index))
                index += 1
        elif char == "{":
            self._pos += 1
            while True:
                self._skip_blank(newlines=True)
                if self._at_end() or self._peek() == "}":
                    self._pos += 1
                    return
                if self._peek() == ",":
                    self._pos += 1
                    continue
                line = self._line()
                names = self._read_key()
                if not names or not names[-1]:
                    self._pos += 1  # unexpected character: step over it
                    continue
                self._record((*path, *names), line)
                self._skip_blank(newlines=False)
                if self._peek() == "=":
                    self._pos += 1
                self._skip_blank(newlines=False)
                self._read_value((*path, *names))
        else:
            while not self._at_end() and self._peek() not in ",]}\n#":
                self._pos += 1
