"""Alert rules, pure: durations, conditions, what a metric's value is, comparisons and templates.

A rule watches one metric of the delivery rollups over a sliding window (the same counts
/api/v1/analytics reports) and holds when `value <operator> threshold`. Templates substitute
`{{.name}}` placeholders from a fixed set of variables; anything else renders empty. Nothing here
evaluates code, so a tenant's template costs time linear in its (bounded) length.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control.errors import BadRequest
from control.validate import need_object

METRICS: tuple[str, ...] = ("failure_rate", "success_rate", "latency", "queue_depth", "error_count",
                            "delivery_count")
OPERATORS: dict[str, str] = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "ne": "!="}
MIN_WINDOW_S = 60
MAX_WINDOW_S = 7 * 86400
MAX_COOLDOWN_S = 7 * 86400
DEFAULT_COOLDOWN = "15m"
MAX_TEMPLATE = 4096
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^([1-9][0-9]{0,6}|0)(s|m|h|d)$")
_PLACEHOLDER = re.compile(r"\{\{\s*\.([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")


def parse_duration(value: Any, name: str, lo: int, hi: int) -> int:
    """`30s`, `5m`, `1h`, `2d` to seconds, within [lo, hi]; 400 naming the field otherwise."""
    if not isinstance(value, str) or not (m := _DURATION.match(value.strip())):
        raise BadRequest(f"{name}: expected a duration such as 5m, 1h or 1d")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if not lo <= seconds <= hi:
        raise BadRequest(f"{name}: must be between {lo} s and {hi} s")
    return seconds


def parse_window(value: Any, name: str = "condition.window") -> int:
    """Rollups are kept per minute, so a window is a whole number of minutes (1m to 7d)."""
    seconds = parse_duration(value, name, MIN_WINDOW_S, MAX_WINDOW_S)
    if seconds % 60:
        raise BadRequest(f"{name}: must be whole minutes (the rollups are per minute)")
    return seconds


@dataclass(frozen=True, slots=True)
class Condition:
    metric: str
    operator: str
    threshold: float
    window: str          # as given, e.g. "5m"
    window_s: int

    def json(self) -> dict[str, Any]:
        return {"metric": self.metric, "operator": self.operator, "value": self.threshold, "window": self.window}


def parse_condition(body: Any, name: str = "condition") -> Condition:
    data = need_object(body, name)
    unknown = sorted(set(data) - {"metric", "operator", "value", "window"})
    if unknown:
        raise BadRequest(f"{name}.{unknown[0]}: unknown field")
    metric = data.get("metric")
    if metric not in METRICS:
        raise BadRequest(f"{name}.metric: must be one of {', '.join(METRICS)}")
    operator = data.get("operator")
    if not isinstance(operator, str) or operator not in OPERATORS:
        raise BadRequest(f"{name}.operator: must be one of {', '.join(OPERATORS)}")
    value = data.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{name}.value: expected a number")
    if "window" not in data:
        raise BadRequest(f"{name}.window: required")
    window_s = parse_window(data["window"], f"{name}.window")
    return Condition(metric, operator, float(value), str(data["window"]).strip(), window_s)


def parse_cooldown(value: Any, name: str = "cooldown") -> int:
    return parse_duration(value, name, 0, MAX_COOLDOWN_S)


@dataclass(frozen=True, slots=True)
class Observed:
    """What the rollups (and the open-task count) say about a window."""

    attempts: int = 0
    successes: int = 0
    failed: int = 0                 # failures + timeouts, as analytics counts them
    p95_ms: int | None = None
    queue_depth: int = 0


def metric_value(metric: str, o: Observed) -> float | None:
    """The metric's value; None when a ratio or latency has no attempts to stand on (never holds)."""
    if metric == "failure_rate":
        return round(o.failed / o.attempts, 4) if o.attempts else None
    if metric == "success_rate":
        return round(o.successes / o.attempts, 4) if o.attempts else None
    if metric == "latency":
        return float(o.p95_ms) if o.p95_ms is not None and o.attempts else None
    if metric == "queue_depth":
        return float(o.queue_depth)
    if metric == "error_count":
        return float(o.failed)
    if metric == "delivery_count":
        return float(o.attempts)
    raise ValueError(f"unknown metric {metric!r}")


def holds(operator: str, value: float | None, threshold: float) -> bool:
    if value is None:
        return False
    match operator:
        case "gt":
            return value > threshold
        case "gte":
            return value >= threshold
        case "lt":
            return value < threshold
        case "lte":
            return value <= threshold
        case "eq":
            return value == threshold
        case "ne":
            return value != threshold
    raise ValueError(f"unknown operator {operator!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    fire: bool = False
    resolve: bool = False


def decide(held: bool, firing: bool, since_last_fired_s: float | None, cooldown_s: int) -> Decision:
    """Fire when the condition holds and the cooldown since the last firing is over (so a lasting
    breach repeats at most once per cooldown); resolve when a firing rule's condition stops holding."""
    if held:
        return Decision(fire=since_last_fired_s is None or since_last_fired_s >= cooldown_s)
    return Decision(resolve=firing)


def template_field(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{name}: expected a string")
    if len(value) > MAX_TEMPLATE:
        raise BadRequest(f"{name}: longer than {MAX_TEMPLATE} characters")
    if "\x00" in value:
        raise BadRequest(f"{name}: NUL characters are not accepted")
    return value


def render(template: str, variables: Mapping[str, object]) -> str:
    """Substitute `{{.name}}`; unknown names render empty. Output is bounded by the template's
    length times the longest variable (variables are short strings Mittr makes)."""
    def one(m: re.Match[str]) -> str:
        found = variables.get(m.group(1))
        return "" if found is None else str(found)
    return _PLACEHOLDER.sub(one, template[:MAX_TEMPLATE])


def number_text(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def percent_text(value: float | None) -> str:
    return "" if value is None else number_text(round(value * 100, 2))
