"""Rows that several test modules build the same way."""

from registry.extensions import db
from registry.models import Topic


def subscription_topics() -> dict[str, Topic]:
    """The Administrative topic (required) and one optional topic, committed."""
    rows = {"administrative": Topic(key="administrative", name="Administrative", is_administrative=True,
                                    position=0),
            "documents": Topic(key="documents", name="Document updates", position=1)}
    db.session.add_all(rows.values())
    db.session.commit()
    return rows
