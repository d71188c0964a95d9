"""Drive a generator plan: one blocking driver and one awaitable driver.

A plan is a generator that yields effects and is resumed with what each effect gave
(or has the effect's error thrown into it). What an effect does, and how it waits, is
the caller's *perform*: the logic is written once, in the plan, for both kinds of client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

__all__ = ["adrive", "drive"]

E = TypeVar("E")
T = TypeVar("T")

Catch = type[BaseException] | tuple[type[BaseException], ...]


def _advance(
    plan: Generator[E, Any, T], reply: Any, error: BaseException | None
) -> tuple[bool, Any]:
    """Resume *plan* with a reply or an error: ``(True, result)`` or ``(False, next effect)``."""
    try:
        step = plan.throw(error) if error is not None else plan.send(reply)
    except StopIteration as stop:
        return True, stop.value
    return False, step


def drive(plan: Generator[E, Any, T], perform: Callable[[E], Any], catch: Catch = Exception) -> T:
    """Run *plan* to its end, each effect by ``perform(effect)``; return its result.

    An error of the *catch* kinds raised by *perform* is thrown into the plan; any other
    propagates as it is.
    """
    done, value = _advance(plan, None, None)
    while not done:
        try:
            reply = perform(value)
        except catch as exc:
            done, value = _advance(plan, None, exc)
        else:
            done, value = _advance(plan, reply, None)
    return value  # type: ignore[no-any-return]


async def adrive(
    plan: Generator[E, Any, T], perform: Callable[[E], Awaitable[Any]], catch: Catch = Exception
) -> T:
    """:func:`drive`, awaiting ``perform(effect)``."""
    done, value = _advance(plan, None, None)
    while not done:
        try:
            reply = await perform(value)
        except catch as exc:
            done, value = _advance(plan, None, exc)
        else:
            done, value = _advance(plan, reply, None)
    return value  # type: ignore[no-any-return]
