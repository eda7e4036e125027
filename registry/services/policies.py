"""Notice policies: admins change them; every change is audited with before and after."""

from __future__ import annotations

from sqlalchemy.orm import Session

from registry.domain.notice import NoticeRule, objection_window_problem
from registry.models import NoticePolicy
from registry.services import audit


class PolicyError(ValueError):
    """A rule that is well-formed but not allowed as a policy; `field` names the form field."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.field = field


def check_policy(rule: NoticeRule) -> None:
    """Refuse what NoticeRule.validate accepts but the law does not: an objection window longer than the
    notice would let the change take effect while customers may still object (SCC 2021/914 cl. 9(a))."""
    problem = objection_window_problem(rule)
    if problem is not None:
        raise PolicyError(problem, field="objection_days")


def snapshot(policy: NoticePolicy) -> dict:
    return {"length": policy.length, "unit": policy.unit, "calendars": list(policy.calendars or []),
            "timezone": policy.timezone, "objection_days": policy.objection_days}


def update_policy(session: Session, policy: NoticePolicy, rule: NoticeRule, *, actor: str,
                  actor_id: int | None) -> bool:
    """Apply a validated rule; audited with before and after. False when nothing changed.

    Raises PolicyError (nothing changed) for a rule the law does not allow.
    """
    check_policy(rule)
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
