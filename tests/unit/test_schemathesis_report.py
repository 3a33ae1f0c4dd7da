"""The schemathesis report parser finds exactly the operations listed under the mismatch warning."""

from __future__ import annotations

from tests.support.schemathesis_report import mismatched_operations

REPORT = """\
Missing test data: 2 operations repeatedly returned 404 Not Found

  - GET /api/v1/events/{id}

Schema validation mismatch: 2 operations mostly rejected generated data due to validation errors, indicating x

  - POST /api/v1/events
  - PUT /api/v1/connectors/{name}

💡 Check your schema constraints - API validation may be stricter than documented

  ⚠️ Schema validation mismatch: 2 operations mostly rejected generated data
"""


def test_finds_the_listed_operations_only() -> None:
    assert mismatched_operations(REPORT) == {"POST /api/v1/events", "PUT /api/v1/connectors/{name}"}


def test_a_clean_report_has_none() -> None:
    assert mismatched_operations("Test cases:\n  10 generated, 10 passed\n") == set()
