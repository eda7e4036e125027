"""The public JSON API checked by Schemathesis, a client no one here wrote, against our own OpenAPI.

The same run as `st run --checks all` on the command line, inside the test: Schemathesis loads
/api/v1/openapi.json from the app, then runs every phase (the document's examples; coverage, which
sends boundary values and undocumented methods; fuzzing, valid and invalid requests; stateful, which
follows the links between operations) with every check (no 5xx, documented statuses and headers,
bodies that match their schema, valid input accepted, invalid input refused with a 4xx, 405 with
`Allow` for other methods...). Any failure fails the test, with Schemathesis's own description and a
curl line to reproduce it. It runs on the demo content of both databases.

On CI (CI=true) the run is derandomized with a fixed seed, so a red build is reproducible; locally each
run draws new inputs.
"""

from __future__ import annotations

import os

from schemathesis import openapi
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, from_schema
from schemathesis.engine.events import EngineFinished, FatalError, NonFatalError, ScenarioFinished

from registry.web.openapi import PATHS

EXAMPLES_PER_OPERATION = 200
SEED = 20261201


def run_config() -> SchemathesisConfig:
    on_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return SchemathesisConfig.from_dict({
        **({"seed": SEED} if on_ci else {}),
        "checks": {"enabled": True},
        "phases": {"enabled": True},
        "generation": {"mode": "all", "max-examples": EXAMPLES_PER_OPERATION, "deterministic": on_ci},
        "continue-on-failure": True,
    })


def findings(app) -> tuple[list[str], set[str]]:
    """Every failure and error of a full run, as Schemathesis words them, and the operations it ran."""
    schema = openapi.from_wsgi("/api/v1/openapi.json", app, config=run_config())
    found, tested = [], set()
    for event in from_schema(schema).execute():
        if isinstance(event, ScenarioFinished):
            if event.status is not Status.SKIP and event.label:
                tested.add(event.label)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        found.append(f"{event.phase.name} {failure.operation}: {failure.title}\n"
                                     f"{failure.message}\n{check.failure_info.code_sample}")
        elif isinstance(event, NonFatalError):
            found.append(f"error in {event.label}: {event.value!r}\n{event.info.code_sample or ''}")
        elif isinstance(event, FatalError):
            found.append(f"the run stopped: {event.exception!r}")
        elif isinstance(event, EngineFinished):
            found.extend(f"{f.operation}: {f.title}\n{f.message}" for f in event.failures)
    return found, tested


def test_schemathesis_finds_nothing(demo_app):
    found, tested = findings(demo_app)
    # Every operation was exercised, but the one that serves the description the run loaded.
    assert {label.split(" ", 1)[1] for label in tested} == set(PATHS) - {"/openapi.json"}
    assert not found, "\n\n".join(sorted(set(found)))
