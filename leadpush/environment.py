"""What a command runs in: its streams, whether they are terminals, and today's date."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from .files import printable


@dataclass
class Environment:
    """Built once per process (or per test) and passed down, so tests can say "stderr is a terminal".

    Everything a command prints goes through here: data to `stdout`, progress and errors to `stderr`.
    """

    stdin: IO[bytes]
    stdout: IO[str]
    stderr: IO[str]
    stdin_isatty: bool = False
    stderr_isatty: bool = False
    today: Callable[[], dt.date] = field(default=dt.date.today)

    @classmethod
    def from_process(cls) -> Environment:
        """The process's own streams (or, under a test runner, the ones it put in their place)."""
        return cls(stdin=sys.stdin.buffer, stdout=sys.stdout, stderr=sys.stderr,
                   stdin_isatty=_isatty(sys.stdin), stderr_isatty=_isatty(sys.stderr))

    def say(self, message: str) -> None:
        """One line for the person at the terminal (progress, notes, errors): stderr."""
        print(printable_lines(message), file=self.stderr, flush=True)


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def printable_lines(message: str) -> str:
    """A message with every control character escaped except its own line breaks (a traceback)."""
    return "\n".join(printable(line) for line in message.split("\n"))
