"""A schedule's spec (API.md "Triggers"): when it fires, as the API takes it and answers it,
what can be told wrong with it before Temporal reads it, and Temporal's own refusals."""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from temporalio.client import ScheduleIntervalSpec, ScheduleSpec
from temporalio.service import RPCError, RPCStatusCode

from runlane.errors import InvalidInput, invalid


@dataclass(frozen=True)
class TimeSpec:
    """When a schedule fires, as the API takes it (API.md): cron expressions and/or a fixed
    interval, in a timezone, with optional jitter and bounds."""

    cron: list[str] = field(default_factory=list)
    interval_s: int | None = None
    timezone: str | None = None
    jitter_s: int | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None

    def stored(self) -> dict[str, Any]:
        """As the row keeps it (and the API answers it): only what was given."""
        values: dict[str, Any] = {
            "cron": list(self.cron) or None,
            "interval_s": self.interval_s,
            "timezone": self.timezone,
            "jitter_s": self.jitter_s,
            "start_at": self.start_at.astimezone(UTC).isoformat() if self.start_at else None,
            "end_at": self.end_at.astimezone(UTC).isoformat() if self.end_at else None,
        }
        return {key: value for key, value in values.items() if value is not None}

    @classmethod
    def of_stored(cls, stored: dict[str, Any]) -> TimeSpec:
        def moment(key: str) -> datetime | None:
            value = stored.get(key)
            return datetime.fromisoformat(value) if isinstance(value, str) else None

        return cls(
            cron=list(stored.get("cron") or []),
            interval_s=stored.get("interval_s"),
            timezone=stored.get("timezone"),
            jitter_s=stored.get("jitter_s"),
            start_at=moment("start_at"),
            end_at=moment("end_at"),
        )

    def temporal(self) -> ScheduleSpec:
        return ScheduleSpec(
            cron_expressions=list(self.cron),
            intervals=(
                [ScheduleIntervalSpec(every=timedelta(seconds=self.interval_s))]
                if self.interval_s
                else []
            ),
            time_zone_name=self.timezone,
            jitter=timedelta(seconds=self.jitter_s) if self.jitter_s else None,
            start_at=self.start_at,
            end_at=self.end_at,
        )


_NOT_ZONES = frozenset({"localtime"})


@cache
def _known_timezones() -> frozenset[str]:
    return frozenset((zoneinfo.available_timezones() - _NOT_ZONES) | {"UTC"})


def body_problem(loc: Sequence[str | int], message: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "message": message}


def _cron_fields(expression: str) -> int:
    tokens = expression.split()
    if _cron_zone(expression) is not None:
        tokens = tokens[1:]
    return len(tokens)


def _cron_zone(expression: str) -> str | None:
    """The zone a `CRON_TZ=` (or `TZ=`) prefix names, if the expression has one."""
    tokens = expression.split()
    if tokens and tokens[0].upper().startswith(("CRON_TZ=", "TZ=")):
        return tokens[0].split("=", 1)[1]
    return None


def spec_problems(spec: TimeSpec, where: str = "spec") -> list[dict[str, Any]]:
    """What can be told of a spec before Temporal reads it (Temporal's own parser has the last
    word on cron expressions: its refusal is mapped the same way)."""
    problems: list[dict[str, Any]] = []
    if not spec.cron and spec.interval_s is None:
        problems.append(body_problem([where], "give cron expressions, interval_s, or both"))
    for index, expression in enumerate(spec.cron):
        zone = _cron_zone(expression)
        if zone is not None and zone not in _known_timezones():
            # (Temporal reads `Local` as its server's zone, whichever that is.)
            problems.append(
                body_problem(
                    [where, "cron", index],
                    f"'{zone}' in '{expression}' is not an IANA time zone name (e.g. "
                    "Europe/Paris, UTC)",
                )
            )
            continue
        if expression.strip().startswith("@"):
            continue  # @daily, @every 1h, ...: Temporal's parser decides
        if not 5 <= _cron_fields(expression) <= 7:
            problems.append(
                body_problem(
                    [where, "cron", index],
                    f"'{expression}' is not a cron expression: it needs 5 fields (minute hour "
                    "day-of-month month day-of-week), optionally seconds first and years last",
                )
            )
    if spec.timezone is not None and spec.timezone not in _known_timezones():
        problems.append(
            body_problem(
                [where, "timezone"],
                f"'{spec.timezone}' is not an IANA time zone name (e.g. Europe/Paris, UTC)",
            )
        )
    for key, moment in (("start_at", spec.start_at), ("end_at", spec.end_at)):
        if moment is not None and not representable(moment):
            problems.append(body_problem([where, key], OUT_OF_RANGE))
    if not problems and spec.start_at and spec.end_at and spec.end_at <= spec.start_at:
        problems.append(body_problem([where, "end_at"], "end_at must be later than start_at"))
    return problems


OUT_OF_RANGE = "must be between 1970-01-01 and 9999-01-01 (UTC)"


def representable(moment: datetime) -> bool:
    """Within what Temporal's timestamps (and our UTC column) hold; an offset can push a
    representable local time out of range."""
    try:
        in_utc = moment.astimezone(UTC)
    except OverflowError:
        return False
    return 1970 <= in_utc.year < 9999


def refused_spec(err: RPCError, where: str = "spec") -> InvalidInput | None:
    """Temporal's refusal of a spec (a cron its parser does not read, an interval too small)."""
    if err.status != RPCStatusCode.INVALID_ARGUMENT:
        return None
    message = err.message
    return invalid(
        "invalid_schedule_spec",
        f"Temporal refused the schedule's spec: {message}",
        [body_problem([where], message)],
    )
