"""Notice policies: admins change them; every change is audited with before and after."""

from __future__ import annotations

from sqlalchemy.orm import Session

from registry.domain.notice import NoticeRule
from registry.models import NoticePolicy
from registry.services import audit


def snapshot(policy: NoticePolicy) -> dict:
    return {"length": policy.length, "unit": policy.unit, "calendars": list(policy.calendars or []),
            "timezone": policy.timezone, "objection_days": policy.objection_days}


def update_policy(session: Session, policy: NoticePolicy, rule: NoticeRule, *, actor: str,
                  actor_id: int | None) -> bool:
    """Apply a validated rule; audited with before and after. False when nothing changed."""
    before = snapshot(policy)
    after = {"length": rule.length, "unit": rule.unit, "calendars": list(rule.calendars),
             "timezone": rule.timezone, "objection_days": rule.objection_days}
    if before == after:
        return False
    policy.length, policy.unit, policy.calendars = rule.length, rule.unit, list(rule.calendars)
    policy.timezone, policy.objection_days = rule.timezone, rule.objection_days
    audit.record(session, actor=actor, actor_id=actor_id, action="notice_policy.update",
                 object_type="notice_policy", object_id=policy.key, before=before, after=after)
    return True
