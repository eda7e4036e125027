"""Who may do what in the staff area: one table, read by the views and by the role-matrix test."""

from __future__ import annotations

EDITOR, APPROVER, ADMIN = "editor", "approver", "admin"
ROLES = (EDITOR, APPROVER, ADMIN)

PERMISSIONS: dict[str, frozenset[str]] = {
    # Read the staff area: dashboard, change sets, mailbox, notices and their proof.
    "view": frozenset({EDITOR, APPROVER, ADMIN}),
    # Draft and edit change sets, comment, submit for review.
    "draft": frozenset({EDITOR, APPROVER}),
    # Approve, schedule, withdraw; never a change set the approver drafted or edited (four eyes).
    "approve": frozenset({APPROVER}),
    "audit": frozenset({APPROVER, ADMIN}),
    "subscribers": frozenset({EDITOR, APPROVER, ADMIN}),
    "import_contacts": frozenset({APPROVER, ADMIN}),
    "manage_users": frozenset({ADMIN}),
    "manage_policies": frozenset({ADMIN}),
    # Customer organisations: their domains, contractual notice terms and designated contacts.
    "manage_organisations": frozenset({APPROVER, ADMIN}),
}


def can(role: str | None, permission: str) -> bool:
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return role in PERMISSIONS[permission]
