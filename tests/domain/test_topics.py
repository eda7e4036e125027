"""The new-topic rule and the other pure topic rules."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.domain import topics
from registry.domain.topics import TopicRule


@given(st.lists(st.booleans()), st.booleans())
def test_new_topic_rule(configurable, default_on):
    choice = topics.new_topic_choice(configurable, default_on)
    if configurable and not any(configurable):
        assert choice is False  # unchecked every configurable topic: new topics arrive unchecked
    else:
        assert choice is default_on


@given(st.integers(min_value=1, max_value=30), st.booleans())
def test_someone_who_unchecked_everything_never_gets_a_new_topic(count, default_on):
    assert topics.new_topic_choice([False] * count, default_on) is False


topic_rules = st.lists(
    st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=8
).map(lambda specs: [TopicRule(i + 1, admin, default) for i, (admin, default) in enumerate(specs)])


@given(topic_rules, st.data())
def test_form_choices_always_keep_administrative_on(rules, data):
    chosen = data.draw(st.sets(st.sampled_from([r.id for r in rules])))
    choices = topics.choices_from_form(rules, chosen)
    assert set(choices) == {r.id for r in rules}
    for rule in rules:
        assert choices[rule.id] is (rule.is_administrative or rule.id in chosen)


@given(topic_rules, st.data())
def test_confirmation_applies_the_rule_to_topics_added_after_the_form(rules, data):
    ids = [r.id for r in rules]
    offered = data.draw(st.sets(st.sampled_from(ids)))
    chosen = data.draw(st.sets(st.sampled_from(sorted(offered)))) if offered else set()
    choices = topics.choices_on_confirm(rules, chosen, offered)
    offered_configurable = [r.id in chosen for r in rules if r.id in offered and not r.is_administrative]
    for rule in rules:
        if rule.is_administrative:
            assert choices[rule.id]
        elif rule.id in offered:
            assert choices[rule.id] is (rule.id in chosen)
        else:
            assert choices[rule.id] is topics.new_topic_choice(offered_configurable, rule.is_default_on)


def test_defaults_for_imported_contacts():
    rules = [TopicRule(1, True, False), TopicRule(2, False, True), TopicRule(3, False, False)]
    assert topics.defaults(rules) == {1: True, 2: True, 3: False}


def test_one_click_on_administrative_ends_the_subscription():
    assert topics.one_click_ends_subscription(TopicRule(1, True, True))
    assert not topics.one_click_ends_subscription(TopicRule(2, False, True))


@pytest.mark.parametrize("key", ["subprocessors", "non-material", "document:privacy-policy", "a"])
def test_valid_keys(key):
    assert topics.check_key(key) == key


@pytest.mark.parametrize("key", ["", "Upper", "has space", "document:", ":x", "a" * 61, "x\x00",
                                 "document:Bad_Slug", "-lead"])
def test_invalid_keys(key):
    with pytest.raises(ValueError, match="topic key"):
        topics.check_key(key)
