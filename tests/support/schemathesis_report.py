"""Reading schemathesis's text report: which operations "mostly rejected generated data due to
validation errors", i.e. where the OpenAPI document is looser than what the API enforces."""

from __future__ import annotations

import re

_HEADING = re.compile(r"^Schema validation mismatch: \d+ operations? mostly rejected")
_ITEM = re.compile(r"^\s+- ([A-Z]+ /\S*)\s*$")

# Flagged for reasons no OpenAPI document can carry, each with why (issue 19 item 6 started from 24
# and brought the rest to exact schemas). A value the server knows is valid only when it minted it,
# or a request plain HTTP cannot make, is not a looseness of ours. tests/integration/test_schemathesis.py
# fails when an operation outside this table is flagged (a new loose schema), and when an entry here
# is no longer flagged (remove it: the table only shrinks). See docs/openapi.md.
_SAML_IDP = ("the IdP comes from one source (the schema's oneOf says which fields go together), but its "
             "content must be a SAML metadata document, a reachable public metadata URL, or parseable X.509 "
             "certificates: no schema generator makes one")
_TOKEN = ("a random token is refused for what the server knows: only a token it minted and mailed "
          "(single use, expiring) is valid, and no schema can generate one")
KNOWN_LOOSE: dict[str, str] = {
    "DELETE /api/v1/gdpr/data": "the confirmation must be the caller's own workspace id (issue 10); no schema "
                                "can name it, and a generator that found it would erase the workspace under test",
    "GET /api/v1/stats/ws": "a WebSocket route: plain HTTP (all OpenAPI 3.0 and schemathesis speak) gets 426",
    "POST /api/v1/endpoints/{id}/mtls": "needs a parseable X.509 certificate and the private key matching it; "
                                        "no schema generator makes a matching pair",
    "POST /api/v1/sso/saml": _SAML_IDP,
    "PATCH /api/v1/sso/saml/{id}": _SAML_IDP,
    "GET /auth/invite-status": _TOKEN,
    "POST /auth/accept-invite": _TOKEN,
    "POST /auth/reset-password": _TOKEN,
    "POST /auth/verify-email": _TOKEN,
}


def looser_than_documented(*reports: str) -> tuple[set[str], set[str]]:
    """Over the reports of one run (one per schemathesis process): (operations flagged that
    KNOWN_LOOSE does not excuse, KNOWN_LOOSE entries no longer flagged)."""
    flagged = set().union(*(mismatched_operations(r) for r in reports))
    return flagged - KNOWN_LOOSE.keys(), KNOWN_LOOSE.keys() - flagged


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
