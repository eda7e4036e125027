"""Random sequences of create, schedule, supersede, withdraw, notice completion, the tick and clock
advances, on both databases, with the legal invariants checked at every instant in between:

- the version in force never goes back, and versions come into force one at a time, in order;
- each version in force was announced against (its notice and redline compared it with) the version in
  force immediately before it;
- no material version is in force before its notice completed and its notice period ended.

The base data is built once per test; each example runs in one transaction that is rolled back, with a
fake clock passed to every service as `now=`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from registry.extensions import db
from registry.models import ChangeSet, ChangeStatus, Document, NoticePolicy, Subscriber, Topic, User
from registry.services import publishing, reading, workflow
from registry.services.workflow import WorkflowError
from tests.conftest import IN_CI

# Monday 30 November 2026, 09:00 UTC: business days, a weekend and (later) Christmas all get crossed.
START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TZ = "Europe/Warsaw"
EXAMPLES = 500


class LegalStateMachine(RuleBasedStateMachine):
    document_id: int
    approver_id: int

    def __init__(self):
        super().__init__()
        self.session = db.session
        self.now = START
        self.checked_until = START
        self.document = self.session.get(Document, self.document_id)
        self.approver = self.session.get(User, self.approver_id)
        self.drafts: list[ChangeSet] = []
        self.scheduled: list[ChangeSet] = []
        self.announced_against: dict[int, int | None] = {}  # version id -> number it was compared with
        self.in_force = self._current(START)
        assert self.in_force == 1
        self.texts = 0

    def teardown(self):
        self.session.rollback()

    # --- the model, read from the database ----------------------------------------------------

    def _versions(self) -> list[reading.PublicVersion]:
        return reading.versions(self.session, self.document)

    def _current(self, at: datetime) -> int:
        return reading.current_version(self._versions(), at).number

    def _not_in_force(self) -> list[ChangeSet]:
        return [c for c in self.scheduled if c.status != ChangeStatus.WITHDRAWN
                and c.document_versions[0].number > self._current(self.now)]

    # --- rules ---------------------------------------------------------------------------------

    def _draft(self, material: bool) -> ChangeSet:
        """An approved change set with a new version of the document (created without an author, so
        that the approver may schedule it)."""
        self.texts += 1
        change_set = publishing.create_change_set(self.session, title=f"Change {self.texts}",
                                                  is_material=material)
        publishing.draft_document_version(self.session, change_set, self.document, is_material=material,
                                          source_md=f"# Policy\n\nText {self.texts}.", summary="s")
        change_set.status = ChangeStatus.APPROVED
        self.session.flush()
        return change_set

    @precondition(lambda self: len(self.drafts) < 2)
    @rule(material=st.booleans())
    def create(self, material):
        """A draft approved now and scheduled later, after other versions may have been published."""
        self.drafts.append(self._draft(material))

    @rule(data=st.data(), material=st.booleans(), hours=st.integers(0, 24 * 10), supersede=st.booleans(),
          sent=st.booleans())
    def schedule(self, data, material, hours, supersede, sent):
        """Schedule a waiting draft or a new one; `sent`: the worker sends its notice at once."""
        change_set = (data.draw(st.sampled_from(self.drafts)) if self.drafts and data.draw(st.booleans())
                      else self._draft(material))
        effective_at = workflow.earliest_allowed(self.session, change_set, self.now) + timedelta(hours=hours)
        waiting = self._not_in_force()
        crossed = {c.id for c in waiting if c.effective_at >= effective_at}
        try:
            workflow.schedule(self.session, change_set, effective_at=effective_at, actor=self.approver,
                              legal_timezone=TZ, now=self.now,
                              supersede=[c.id for c in waiting] if supersede else ())
        except WorkflowError as error:
            assert crossed and not supersede, str(error)
            assert all(f"#{i}" in str(error) for i in crossed)
            if change_set not in self.drafts:
                self.drafts.append(change_set)
            return
        assert not crossed or supersede
        assert {c.id for c in waiting if c.status == ChangeStatus.WITHDRAWN} == crossed
        version = change_set.document_versions[0]
        before = reading.predecessor(self.session, version)
        public = [v.number for v in self._versions() if v.number < version.number]
        assert (before.number if before else None) == (public[-1] if public else None)
        self.announced_against[version.id] = before.number if before else None
        if change_set in self.drafts:
            self.drafts.remove(change_set)
        self.scheduled.append(change_set)
        if sent and change_set.status == ChangeStatus.SCHEDULED:
            publishing.complete_notice(self.session, change_set, completed_at=self.now, now=self.now)

    @precondition(lambda self: self.scheduled)
    @rule(data=st.data())
    def withdraw(self, data):
        waiting = self._not_in_force()
        if not waiting:
            return
        change_set = data.draw(st.sampled_from(waiting))
        number = change_set.document_versions[0].number
        newer = [c for c in waiting if c.document_versions[0].number > number]
        try:
            workflow.withdraw(self.session, change_set, actor=self.approver,
                              note="No longer needed", now=self.now)
        except WorkflowError as error:
            assert newer, str(error)
            return
        assert not newer

    @precondition(lambda self: self.scheduled)
    @rule(data=st.data())
    def complete_notice(self, data):
        sending = [c for c in self.scheduled if c.status == ChangeStatus.SCHEDULED]
        if sending:
            publishing.complete_notice(self.session, data.draw(st.sampled_from(sending)),
                                       completed_at=self.now, now=self.now)

    @rule()
    def tick(self):
        workflow.tick(self.session, self.now)

    @rule(hours=st.integers(1, 24 * 12))
    def advance(self, hours):
        self.now += timedelta(hours=hours)

    @rule(seconds=st.sampled_from([0, 1]))
    def advance_to_next_date(self, seconds):
        """To the next effective date (or just past it): where an order could break."""
        upcoming = [v.effective_at for v in self._versions() if v.effective_at > self.now]
        if upcoming:
            self.now = min(upcoming) + timedelta(seconds=seconds)

    # --- the invariants, at every instant since the last check -------------------------------------

    @invariant()
    def legal_order(self):
        versions = self._versions()
        # Between two steps the state only changes with the clock, at effective dates.
        instants = sorted({v.effective_at for v in versions
                           if self.checked_until < v.effective_at <= self.now} | {self.now})
        by_number = {v.number: v for v in versions}
        for at in instants:
            current = reading.current_version(versions, at).number
            assert current >= self.in_force, f"version {self.in_force} was in force, then {current} at {at}"
            came = [n for n in sorted(by_number) if self.in_force < n <= current]
            assert len(came) <= 1, f"versions {came} came into force together at {at}"
            for number in came:
                version = by_number[number]
                assert self.announced_against[version.version.id] == self.in_force, (
                    f"version {number} was announced against {self.announced_against[version.version.id]}, "
                    f"but {self.in_force} was in force before it")
                change_set = version.change_set
                if change_set.is_material:
                    completed = change_set.notice_completed_at
                    assert completed is not None and completed <= at, f"version {number}: notice not done"
                    assert publishing.earliest_effective_for(self.session, change_set, completed) <= at
                self.in_force = number
        self.checked_until = self.now


def base_data(make_user) -> None:
    """Privacy Policy version 1 in force since long before START, one subscriber, one approver."""
    policy = NoticePolicy(key="privacy-policy", name="Privacy Policy", length=3, unit="business_days",
                          calendars=["PL"], timezone=TZ, objection_days=None)
    document = Document(slug="privacy-policy", title="Privacy Policy", notice_policy=policy)
    db.session.add_all([policy, document, Topic(key="administrative", name="Administrative",
                                                is_administrative=True),
                        Subscriber(email="customer@example.com", status="confirmed", confirmed_at=START)])
    db.session.flush()
    first = publishing.create_change_set(db.session, title="First version")
    publishing.draft_document_version(db.session, first, document, source_md="# Policy\n\nText 0.",
                                      summary="First", is_material=True)
    past = START - timedelta(days=60)
    publishing.publish(db.session, first, published_at=past, notice_completed_at=past,
                       effective_at=past + timedelta(days=20), now=START)
    db.session.commit()
    LegalStateMachine.document_id = document.id
    LegalStateMachine.approver_id = make_user("approver").id


def test_the_version_in_force_is_always_lawful(app, make_user):
    base_data(make_user)
    # In CI the same 500 sequences every run, so a red run can be repeated; locally new ones each time,
    # which is how the sequence in the test below was found.
    run_state_machine_as_test(LegalStateMachine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=10, deadline=None, database=None,
        derandomize=IN_CI, suppress_health_check=list(HealthCheck)))


def test_a_change_whose_date_came_still_waits_behind_an_older_one(app, make_user):
    """A sequence the machine found after the branches met: B (non-material) reached its date while A
    (material) still waited for its notice, so B was not in force; C was then accepted at B's instant
    and B could not be withdrawn ("already taken effect")."""
    base_data(make_user)
    machine = LegalStateMachine()
    machine.advance(hours=2)
    machine.schedule(data=None, hours=98, material=True, sent=False, supersede=False)
    machine.advance_to_next_date(seconds=0)
    machine.legal_order()
    machine.schedule(data=None, hours=151, material=False, sent=False, supersede=False)
    machine.advance_to_next_date(seconds=0)
    machine.legal_order()
    first, second = machine.scheduled
    assert first.status == ChangeStatus.SCHEDULED  # its notice still going out
    assert second.effective_at == machine.now and second.status == ChangeStatus.IN_NOTICE
    # C at B's own instant overtakes B, which waits behind A: refused, naming both.
    machine.schedule(data=None, hours=0, material=False, sent=False, supersede=False)
    assert len(machine.scheduled) == 2 and len(machine.drafts) == 1
    workflow.withdraw(db.session, second, actor=machine.approver, note="Not needed", now=machine.now)
    assert second.status == ChangeStatus.WITHDRAWN
    machine.legal_order()
    machine.teardown()
