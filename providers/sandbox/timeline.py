"""How sandbox orders and refills progress with time.

Nothing runs in the background: an order stores when it was created and how its life is
planned (when it starts, when it finishes, how it ends) and its status is computed from the
clock whenever someone asks. That keeps the server a plain request/response process and makes
every answer reproducible from the stored plan and a timestamp.

A life is split into a Pending phase (the first ``PENDING_SHARE`` of the duration), a delivery
phase in which ``remains`` falls linearly, and a final status. Markers in the order's link
choose unusual endings, so a tester can provoke them on purpose from the panel's order form:

====================  ======================================================================
link contains         effect
====================  ======================================================================
``partial``           ends ``Partial`` with a third of the quantity undelivered (refunded)
``fail``              goes from ``Pending`` straight to ``Canceled`` (fully refunded)
``processing``        reports ``Processing`` instead of ``In progress`` while delivering
``reject-refill``     refills of this order end ``Rejected``
``reject-cancel``     cancel requests are accepted, then end ``Rejected``
====================  ======================================================================
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

PENDING_SHARE = 0.1

# Order statuses, spelled as providers send them.
PENDING = "Pending"
IN_PROGRESS = "In progress"
PROCESSING = "Processing"
COMPLETED = "Completed"
PARTIAL = "Partial"
CANCELED = "Canceled"
REJECTED = "Rejected"  # refills and cancels only

MARK_PARTIAL = "partial"
MARK_FAIL = "fail"
MARK_PROCESSING = "processing"
MARK_REJECT_REFILL = "reject-refill"
MARK_REJECT_CANCEL = "reject-cancel"


def has_marker(target: str, marker: str) -> bool:
    return marker in target.lower()


def stable_percent(target: str) -> int:
    """0..99, the same for the same link in every run (crc32, unlike hash(), is not salted)."""
    return zlib.crc32(target.encode()) % 100


@dataclass(frozen=True)
class OrderPlan:
    """Everything about an order's future, fixed when the order is created."""

    started_at: float  # end of Pending
    finish_at: float  # when the final status is reached
    outcome: str  # COMPLETED, PARTIAL or CANCELED
    final_remains: int
    start_count: int
    working_label: str  # IN_PROGRESS or PROCESSING


@dataclass(frozen=True)
class Progress:
    status: str
    remains: int
    start_count: int


def plan_order(
    *, target: str, quantity: int, created_at: float, duration: float, partial_percent: int = 0
) -> OrderPlan:
    """Plan an order's life. `target` is the link (or username for subscriptions)."""
    started_at = created_at + duration * PENDING_SHARE
    finish_at = created_at + duration
    if has_marker(target, MARK_FAIL):
        outcome, final_remains, finish_at = CANCELED, quantity, started_at
    elif has_marker(target, MARK_PARTIAL) or stable_percent(target) < partial_percent:
        outcome, final_remains = PARTIAL, max(1, quantity // 3)
    else:
        outcome, final_remains = COMPLETED, 0
    working = PROCESSING if has_marker(target, MARK_PROCESSING) else IN_PROGRESS
    # A believable, fixed "count before we started" for the same link.
    start_count = 100 + zlib.crc32(target.encode()) % 9900
    return OrderPlan(started_at, finish_at, outcome, final_remains, start_count, working)


def order_progress(
    plan: OrderPlan, *, quantity: int, now: float, canceled: bool = False
) -> Progress:
    """The status an order shows at `now`."""
    if canceled:
        # A canceled order is refunded in full, so it reports nothing delivered.
        return Progress(CANCELED, quantity, plan.start_count if now >= plan.started_at else 0)
    if now < plan.started_at:
        return Progress(PENDING, quantity, 0)
    if now >= plan.finish_at:
        return Progress(plan.outcome, plan.final_remains, plan.start_count)
    share = (now - plan.started_at) / (plan.finish_at - plan.started_at)
    delivered = int((quantity - plan.final_remains) * share)
    return Progress(plan.working_label, quantity - delivered, plan.start_count)


@dataclass(frozen=True)
class RefillPlan:
    started_at: float
    finish_at: float
    outcome: str  # COMPLETED or REJECTED


def plan_refill(*, target: str, created_at: float, duration: float) -> RefillPlan:
    outcome = REJECTED if has_marker(target, MARK_REJECT_REFILL) else COMPLETED
    return RefillPlan(created_at + duration * PENDING_SHARE, created_at + duration, outcome)


def refill_status(plan: RefillPlan, *, now: float) -> str:
    if now < plan.started_at:
        return PENDING
    if now < plan.finish_at:
        return IN_PROGRESS
    return plan.outcome
