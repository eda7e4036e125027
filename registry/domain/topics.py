"""Topic rules: what a subscriber receives, and what a newly introduced topic starts as for them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# `subprocessors`, `non-material`, or `document:<slug>` for a per-document topic.
KEY_PATTERN = r"[a-z0-9][a-z0-9-]{0,39}(:[a-z0-9][a-z0-9-]{0,79})?"
KEY_MAX = 60
DOCUMENT_PREFIX = "document:"


@dataclass(frozen=True)
class TopicRule:
    id: int
    is_administrative: bool
    is_default_on: bool


def check_key(key: str) -> str:
    if len(key) > KEY_MAX or not re.fullmatch(KEY_PATTERN, key):
        raise ValueError(
            "A topic key is lowercase letters, digits and hyphens (for example `subprocessors`), "
            "or `document:<slug>` for one document; at most 60 characters."
        )
    return key


def new_topic_choice(configurable_choices: Iterable[bool], is_default_on: bool) -> bool:
    """Whether a subscriber gets a newly introduced configurable topic.

    The privacy policy's rule: whoever has unchecked every configurable topic has said they want
    nothing optional, so new topics arrive unchecked for them; everyone else gets the staff default.
    Someone who never had a configurable topic to uncheck has said nothing, so the default applies.
    """
    choices = list(configurable_choices)
    if choices and not any(choices):
        return False
    return is_default_on


def choices_from_form(topics: Iterable[TopicRule], chosen_ids: Iterable[int]) -> dict[int, bool]:
    """Every topic's state after a form submission: Administrative is on whatever was sent."""
    chosen = set(chosen_ids)
    return {topic.id: topic.is_administrative or topic.id in chosen for topic in topics}


def choices_on_confirm(topics: Iterable[TopicRule], chosen_ids: Iterable[int],
                       offered_ids: Iterable[int]) -> dict[int, bool]:
    """The choices a confirmation applies: the form's, and for topics introduced after the form was
    shown, the new-topic rule applied to what the form chose."""
    topics = list(topics)
    offered = set(offered_ids)
    chosen = set(chosen_ids)
    configurable = [t.id in chosen for t in topics if t.id in offered and not t.is_administrative]
    choices = {}
    for topic in topics:
        if topic.is_administrative:
            choices[topic.id] = True
        elif topic.id in offered:
            choices[topic.id] = topic.id in chosen
        else:
            choices[topic.id] = new_topic_choice(configurable, topic.is_default_on)
    return choices


def defaults(topics: Iterable[TopicRule]) -> dict[int, bool]:
    """An imported contact: Administrative on (their contract requires it), the rest as staff set."""
    return {topic.id: topic.is_administrative or topic.is_default_on for topic in topics}


def one_click_ends_subscription(topic: TopicRule) -> bool:
    """Administrative cannot be turned off, so its unsubscribe link ends the whole subscription."""
    return topic.is_administrative
