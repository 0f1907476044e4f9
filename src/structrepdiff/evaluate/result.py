"""Small result types: a value and, when something failed, the reason (never an exception)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Result(Generic[T]):
    """``value`` and ``reason``: ``reason`` is None on success, else says what went wrong.

    For checks (validity) ``value`` is the verdict and ``reason`` says why it is False; for
    computations (fingerprints, structures) ``value`` is None when ``reason`` is set.
    Unpacks as a pair: ``value, reason = result``.
    """

    value: T | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return self.reason is None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.value, self.reason))


def fail(reason: str) -> Result[Any]:
    """A failed computation: no value, a reason."""
    return Result(None, reason)


def reason_kind(reason: str, depth: int = 1) -> str:
    """The kind of a reason: its first ``depth`` ':'-separated parts (details follow)."""
    return ":".join(reason.split(":", depth)[:depth]).strip()


def count_reasons(reasons: Iterable[str | None], depth: int = 1) -> dict[str, int]:
    """How often each kind of reason occurs (None entries, i.e. successes, are not counted)."""
    return dict(Counter(reason_kind(r, depth) for r in reasons if r is not None))


def exception_reason(prefix: str, exc: BaseException) -> str:
    """``"<prefix>: <ExceptionType>: <message>"``, one line, at most ~200 characters."""
    msg = " ".join(str(exc).split())
    if len(msg) > 160:
        msg = msg[:157] + "..."
    return f"{prefix}: {type(exc).__name__}: {msg}" if msg else f"{prefix}: {type(exc).__name__}"
