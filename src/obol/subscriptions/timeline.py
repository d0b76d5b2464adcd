"""The subscription state machine and its timeline, pure: no database, no clock.

Effective dates mean "from this day on": a subscription terminated on D has its last day of
service on D-1; suspended on D is out of service from D.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from obol.core.errors import IllegalTransition

PENDING, ACTIVE, SUSPENDED, TERMINATED = "pending", "active", "suspended", "terminated"

# transition -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "activate": (frozenset({PENDING}), ACTIVE),
    "suspend": (frozenset({ACTIVE}), SUSPENDED),
    "resume": (frozenset({SUSPENDED}), ACTIVE),
    "terminate": (frozenset({PENDING, ACTIVE, SUSPENDED}), TERMINATED),
}
# Changes of plan or quantity keep the state; they are refused once terminated.
CHANGES_ALLOWED_IN = frozenset({PENDING, ACTIVE, SUSPENDED})


@dataclass(frozen=True)
class Step:
    """One row of the timeline: from `effective_date` on, the subscription is in this state."""

    seq: int
    kind: str
    effective_date: date
    status: str
    plan_id: int
    quantity: Decimal


def next_status(current: str, transition: str, number: str = "") -> str:
    """The state after `transition`, or IllegalTransition naming what is wrong."""
    if transition not in TRANSITIONS:
        raise IllegalTransition(f"unknown transition {transition!r}", field="transition")
    allowed_from, target = TRANSITIONS[transition]
    if current not in allowed_from:
        label = f"subscription {number}" if number else "subscription"
        raise IllegalTransition(
            f"{label} is {current}; cannot {transition} (allowed from: {', '.join(sorted(allowed_from))})",
            field="transition",
        )
    return target


def check_effective_date(steps: list[Step], effective_date: date) -> None:
    """Changes are appended in time: none may take effect before the last recorded one."""
    if steps and effective_date < steps[-1].effective_date:
        raise IllegalTransition(
            f"effective date {effective_date} is before the last change ({steps[-1].kind} on "
            f"{steps[-1].effective_date})",
            field="effective_date",
        )


def state_at(steps: list[Step], day: date) -> Step | None:
    """The step in force on `day` (None before the subscription starts)."""
    current = None
    for step in steps:
        if step.effective_date <= day:
            current = step
        else:
            break
    return current
