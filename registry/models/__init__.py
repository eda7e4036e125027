"""Typed SQLAlchemy models, one module per area; importing this package registers them all."""

from registry.models.audit import AuditEntry, RefusalWindow
from registry.models.changes import ChangeSet, ChangeSetEvent, ChangeStatus, Comment, NoticePolicy
from registry.models.documents import Comparison, Document, DocumentVersion
from registry.models.endpoints import (
    Endpoint,
    EndpointAttempt,
    EndpointDelivery,
    EndpointEvent,
    EndpointTopic,
)
from registry.models.mail import OutgoingMail
from registry.models.messages import MessageBody
from registry.models.notices import (
    Delivery,
    DispatchClaim,
    Notice,
    ProviderPause,
    SendAttempt,
    Suppression,
    WebhookBatch,
    WebhookEvent,
)
from registry.models.objections import Objection, ObjectionEvent, ObjectionSequence
from registry.models.organisations import Organisation, OrganisationContact, OrganisationDomain
from registry.models.site import SiteState
from registry.models.subprocessors import RecordAction, SubProcessor, SubProcessorRecord
from registry.models.subscribers import ConfirmationToken, MailQuota, Subscriber, Subscription, Topic
from registry.models.users import LoginThrottle, PasswordResetToken, Role, StaffSession, User
from registry.models.workers import InboxDigest, WorkerBeat

__all__ = [
    "AuditEntry",
    "ChangeSet",
    "ChangeSetEvent",
    "ChangeStatus",
    "Comment",
    "Comparison",
    "ConfirmationToken",
    "Delivery",
    "DispatchClaim",
    "Document",
    "DocumentVersion",
    "Endpoint",
    "EndpointAttempt",
    "EndpointDelivery",
    "EndpointEvent",
    "EndpointTopic",
    "InboxDigest",
    "LoginThrottle",
    "MailQuota",
    "MessageBody",
    "Notice",
    "NoticePolicy",
    "Objection",
    "ObjectionEvent",
    "ObjectionSequence",
    "Organisation",
    "OrganisationContact",
    "OrganisationDomain",
    "OutgoingMail",
    "PasswordResetToken",
    "ProviderPause",
    "RecordAction",
    "RefusalWindow",
    "Role",
    "SendAttempt",
    "SiteState",
    "StaffSession",
    "SubProcessor",
    "SubProcessorRecord",
    "Subscriber",
    "Subscription",
    "Suppression",
    "Topic",
    "User",
    "WebhookBatch",
    "WebhookEvent",
    "WorkerBeat",
]
