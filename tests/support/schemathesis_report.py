"""Reading schemathesis's text report: which operations "mostly rejected generated data due to
validation errors", i.e. where the OpenAPI document is looser than what the API enforces."""

from __future__ import annotations

import re

_HEADING = re.compile(r"^Schema validation mismatch: \d+ operations? mostly rejected")
_ITEM = re.compile(r"^\s+- ([A-Z]+ /\S*)\s*$")

# Still flagged at the test's default seed and budget (issue 19 item 6 started from 24). Some for
# reasons no schema can carry (a random token, password or id refused for what the server knows:
# used or expired tokens, wrong or common passwords, unknown ids), others because the document is
# still looser than the API. The set may only shrink: tests/integration/test_schemathesis.py fails
# when an operation outside it is flagged; remove an entry once its schema is tightened.
KNOWN_LOOSE: frozenset[str] = frozenset({
    "DELETE /api/v1/gdpr/data",
    "GET /api/v1/endpoints/{id}/versions/diff",
    "GET /api/v1/endpoints/{id}/versions/{n}",
    "GET /api/v1/poll",
    "GET /api/v1/stats/ws",
    "GET /auth/invite-status",
    "PATCH /api/v1/sso/saml/{id}",      # an IdP's metadata XML, URL (fetched) or PEM certificate: refused for content
    "POST /api/v1/alerting/rules",
    "POST /api/v1/connectors",
    "POST /api/v1/endpoints",
    "POST /api/v1/endpoints/{id}/mtls",
    "POST /api/v1/endpoints/{id}/versions/{n}/rollback",
    "POST /api/v1/event-types",
    "POST /api/v1/events",
    "POST /api/v1/events/batch",
    "POST /api/v1/inbound-endpoints",
    "POST /api/v1/poll/ack",
    "POST /api/v1/sso/saml",            # likewise
    "POST /auth/accept-invite",
    "POST /auth/forgot-password",
    "POST /auth/login",
    "POST /auth/reset-password",
    "POST /auth/signup",
    "POST /auth/verify-email",
    "PUT /api/v1/connectors/{name}",
})


def mismatched_operations(report: str) -> set[str]:
    """"METHOD /path" of every operation listed under the schema-validation-mismatch warning."""
    found: set[str] = set()
    lines = report.splitlines()
    for i, line in enumerate(lines):
        if not _HEADING.match(line.strip()):
            continue
        for item in lines[i + 1:]:
            if not item.strip():
                if found:
                    break
                continue
            match = _ITEM.match(item)
            if match is None:
                break
            found.add(match.group(1))
    return found
