"""The mail worker's health: its heartbeat, and whether mail waits with no worker alive to send it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from registry.models import Delivery, OutgoingMail, WorkerBeat
from registry.services.sql import dialect_insert

# A running worker beats at most every BEAT_SECONDS (notices dispatch's loop; --once beats when it starts);
# silence for ALIVE_FOR means it is gone. One cycle of requests can take --client-timeout times
# --claim-requests (120 s by default) between two beats.
BEAT_SECONDS = 30.0
ALIVE_FOR = timedelta(minutes=5)


def beat(session: Session, worker: str, now: datetime) -> None:
    """Record that `worker` is alive now (one row per worker process), and commit."""
    statement = dialect_insert(session)(WorkerBeat).values(worker=worker[:200], beat_at=now)
    session.execute(statement.on_conflict_do_update(index_elements=["worker"],
                                                    set_={"beat_at": statement.excluded.beat_at}))
    session.commit()


@dataclass(frozen=True)
class Health:
    last_beat_at: datetime | None
    is_alive: bool
    waiting: int  # deliveries and single mails waiting to be sent

    @property
    def is_stalled(self) -> bool:
        """Mail waits and no worker is alive: nothing will send it."""
        return self.waiting > 0 and not self.is_alive


def worker_health(session: Session, now: datetime) -> Health:
    last = session.scalar(select(func.max(WorkerBeat.beat_at)))
    waiting = (session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.status.in_(("queued", "sending")))) or 0) + (session.scalar(
        select(func.count()).select_from(OutgoingMail).where(
            or_(OutgoingMail.status == "queued", OutgoingMail.status == "sending"))) or 0)
    return Health(last_beat_at=last, is_alive=last is not None and now - last <= ALIVE_FOR, waiting=waiting)
