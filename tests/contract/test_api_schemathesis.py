"""The public JSON API checked by Schemathesis, a client no one here wrote, against our own OpenAPI.

Schemathesis generates requests from /api/v1/openapi.json, valid ones (which must be accepted) and
invalid ones (which must be refused with a 4xx), and checks every answer: no 5xx, a documented
status, a body that matches the documented schema, a content type that matches. It runs on the demo
content, on both databases.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from registry.web.openapi import PATHS

EXAMPLES_PER_OPERATION = 40


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=str)
def test_every_operation_answers_as_described(demo_app, mode):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", demo_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    # Schemathesis leaves out the operation that serves the description it was loaded from.
    assert {op.path for op in operations} == set(PATHS) - {"/openapi.json"}
    for operation in operations:
        takes_input = bool(operation.query or operation.path_parameters)
        if mode is schemathesis.GenerationMode.NEGATIVE and not takes_input:
            continue  # nothing a client could send wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate()

        check()
