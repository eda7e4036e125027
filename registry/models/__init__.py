"""Typed SQLAlchemy models, one module per area; importing this package registers them all."""

from registry.models.audit import AuditEntry
from registry.models.changes import ChangeSet, ChangeStatus, NoticePolicy
from registry.models.documents import Comparison, Document, DocumentVersion
from registry.models.notices import Delivery, Notice, Suppression, WebhookEvent
from registry.models.site import SiteState
from registry.models.subprocessors import RecordAction, SubProcessor, SubProcessorRecord
from registry.models.subscribers import Subscriber, Subscription, Topic
from registry.models.users import User

__all__ = [
    "AuditEntry",
    "ChangeSet",
    "ChangeStatus",
    "Comparison",
    "Delivery",
    "Document",
    "DocumentVersion",
    "Notice",
    "NoticePolicy",
    "RecordAction",
    "SiteState",
    "SubProcessor",
    "SubProcessorRecord",
    "Subscriber",
    "Subscription",
    "Suppression",
    "Topic",
    "User",
    "WebhookEvent",
]
