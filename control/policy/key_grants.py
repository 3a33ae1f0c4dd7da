"""What a caller may put into an API key it makes: never more than it may do itself.

A key with `api-keys:write` could otherwise mint a `*` key and act as an admin. So a scope may be
granted only when every permission it opens is one the grantor holds (judged by the same table
that guards the routes, control/policy/access.py), and `*` (which also opens families added
later) only by a grantor with every right: a full-access key or an admin. The same rule decides
which keys a key may delete: only those it could have made. Pure, so it is tested as a table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from control.policy.access import ALL_SCOPES, FAMILIES, scopes_allow

FULL = "*"
PERMISSIONS: tuple[str, ...] = tuple(f"{f}:{a}" for f in FAMILIES for a in ("read", "write"))
MAX_SCOPES = len(ALL_SCOPES)


def opens(scope: str) -> frozenset[str]:
    """The route permissions a key holding only `scope` passes."""
    return frozenset(p for p in PERMISSIONS if scopes_allow(frozenset({scope}), p))


def ungrantable(wanted: Iterable[str], allows: Callable[[str], bool], full: bool) -> tuple[str, str] | None:
    """The first wanted scope the grantor may not give, with a permission it lacks; None if all may be
    given. An empty `wanted` is a full-access key. `allows` is the grantor's check of one
    permission; `full` says it holds every right (`*`)."""
    scopes = list(wanted) or [FULL]
    for scope in scopes:
        if scope == FULL and not full:
            return scope, FULL
        missing = sorted(p for p in opens(scope) if not allows(p))
        if missing:
            return scope, missing[0]
    return None


def key_scopes(stored: Iterable[str]) -> list[str]:
    """A key's scopes as shown: the stored empty list of older full-access keys reads `["*"]`."""
    return list(stored) or [FULL]
