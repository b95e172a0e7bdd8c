"""Finding runs: filter (tracking/filters.py), sort, paginate; their details in a few queries.

Every answer holds only runs of the teams the caller may read (a rank: its own job's run): the
condition is in the SQL, so pages, counts and sorting never see another team's rows.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, not_, select
from sqlalchemy.orm import Session, aliased

from trainyard.principal import Principal
from trainyard.spec import INT64_MAX
from trainyard.store import access
from trainyard.store.tables import Job
from trainyard.store.tracking_tables import LatestMetric, Run, RunParam, RunTag
from trainyard.tracking.filters import Clause, FilterError, parse_filter
from trainyard.tracking.runs import RunError, ensure_job_runs, readable

MAX_LIMIT = 1000
MAX_ORDER_BY = 8  # each metric, param or tag key sorted on is one more join
STATE = func.coalesce(Job.state, Run.state)
ATTRIBUTE_COLUMNS: dict[str, Any] = {
    "id": Run.id, "team": Run.team, "name": Run.name, "project": Run.project, "experiment": Run.experiment,
    "source": Run.source, "state": STATE, "created_at": Run.created_at, "ended_at": Run.ended_at,
}


@dataclass
class RunQuery:
    team: str | None = None
    project: str | None = None
    experiment: str | None = None
    filter: str | None = None
    order_by: list[str] = field(default_factory=list)
    limit: int = 100
    page_token: str | None = None


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "in":
        return column.in_(list(value))
    if op == "like":
        return column.like(value)
    return {
        "=": column == value, "!=": column != value, "<": column < value,
        "<=": column <= value, ">": column > value, ">=": column >= value,
    }[op]


def _condition(c: Clause) -> ColumnElement[bool]:
    if c.kind == "attr":
        return _compare(ATTRIBUTE_COLUMNS[c.key], c.op, c.value)
    if c.kind == "metric":
        return exists().where(LatestMetric.run_id == Run.id, LatestMetric.key == c.key,
                              _compare(LatestMetric.value, c.op, c.value))
    if c.kind == "tag":
        return exists().where(RunTag.run_id == Run.id, RunTag.key == c.key,
                              _compare(RunTag.value, c.op, c.value))
    values = c.value if isinstance(c.value, tuple) else (c.value,)
    numeric = all(isinstance(v, float) for v in values) and c.op != "like"
    column = RunParam.number if numeric else RunParam.value
    if not numeric:
        values = tuple(format(v, "g") if isinstance(v, float) else v for v in values)
    value = values if c.op == "in" else values[0]
    if c.op == "!=":  # a run without the param is not "different from" it: it is unknown
        return exists().where(RunParam.run_id == Run.id, RunParam.key == c.key,
                              not_(_compare(column, "=", value)))
    return exists().where(RunParam.run_id == Run.id, RunParam.key == c.key, _compare(column, c.op, value))


def _order(stmt: Any, spec: str, n: int) -> tuple[Any, list[Any]]:
    words = spec.strip().split()
    if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
        raise RunError("order_by", f"{spec!r}: write a name and an optional asc|desc, "
                                   "e.g. 'metrics.val_acc desc'")
    desc = len(words) == 2 and words[1].lower() == "desc"
    name = words[0]
    prefix, dot, key = name.partition(".")
    if dot and prefix in ("metrics", "metric"):
        lm = aliased(LatestMetric, name=f"sort_metric_{n}")
        stmt = stmt.outerjoin(lm, and_(lm.run_id == Run.id, lm.key == key))
        columns = [lm.value]
    elif dot and prefix in ("params", "param"):
        rp = aliased(RunParam, name=f"sort_param_{n}")
        stmt = stmt.outerjoin(rp, and_(rp.run_id == Run.id, rp.key == key))
        columns = [rp.number, rp.value]
    elif dot and prefix in ("tags", "tag"):
        rt = aliased(RunTag, name=f"sort_tag_{n}")
        stmt = stmt.outerjoin(rt, and_(rt.run_id == Run.id, rt.key == key))
        columns = [rt.value]
    else:
        attr = key if dot and prefix in ("attributes", "attr") else name
        if attr not in ATTRIBUTE_COLUMNS:
            raise RunError("order_by", f"cannot sort by {name!r}; use metrics.KEY, params.KEY, tags.KEY or "
                                       f"one of {', '.join(ATTRIBUTE_COLUMNS)}")
        columns = [ATTRIBUTE_COLUMNS[attr]]
    terms = []
    for col in columns:  # runs without the value sort last either way
        terms += [col.is_(None), col.desc() if desc else col.asc()]
    return stmt, terms


def _offset(token: str | None) -> int:
    if not token:
        return 0
    bad = RunError("page_token", "not a token this server gave; pass next_page_token as it came")
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad from None
    if not isinstance(offset, int) or not 0 <= offset <= INT64_MAX:
        raise bad
    return offset


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _visible(who: Principal) -> ColumnElement[bool]:
    return access.visible(who, Run.team, Run.id)


def search_runs(s: Session, who: Principal, q: RunQuery) -> tuple[list[str], str | None]:
    """Ids of one page of the runs `who` may read, in order, and the token of the next page (None on
    the last)."""
    try:
        clauses = parse_filter(q.filter)
    except FilterError as exc:
        raise RunError("filter", str(exc)) from None
    if not 1 <= q.limit <= MAX_LIMIT:
        raise RunError("limit", f"between 1 and {MAX_LIMIT}")
    if len(q.order_by) > MAX_ORDER_BY:
        raise RunError("order_by", f"{len(q.order_by)} sort keys; sort by at most {MAX_ORDER_BY}")
    offset = _offset(q.page_token)
    ensure_job_runs(s)
    stmt = select(Run.id).select_from(Run).outerjoin(Job, Job.id == Run.id).where(_visible(who))
    if q.team:
        stmt = stmt.where(Run.team == q.team)
    if q.project:
        stmt = stmt.where(Run.project == q.project)
    if q.experiment:
        stmt = stmt.where(Run.experiment == q.experiment)
    for clause in clauses:
        stmt = stmt.where(_condition(clause))
    order: list[Any] = []
    for n, spec in enumerate(q.order_by):
        stmt, terms = _order(stmt, spec, n)
        order += terms
    stmt = stmt.order_by(*order, Run.created_at.desc(), Run.id).offset(offset).limit(q.limit + 1)
    ids = list(s.scalars(stmt))
    more = len(ids) > q.limit
    return ids[: q.limit], (_token(offset + q.limit) if more else None)


def run_views(s: Session, ids: Sequence[str]) -> list[dict[str, Any]]:
    """Runs as the api shows them (state, params, tags, latest metrics), in the order of `ids`: ids
    the caller was already found to read (`view`, `search_runs`, `compare`)."""
    if not ids:
        return []
    wanted = list(ids)
    rows = s.execute(select(Run, STATE).outerjoin(Job, Job.id == Run.id).where(Run.id.in_(wanted))).all()
    params: dict[str, dict[str, str]] = {i: {} for i in wanted}
    tags: dict[str, dict[str, str]] = {i: {} for i in wanted}
    metrics: dict[str, dict[str, Any]] = {i: {} for i in wanted}
    for p in s.scalars(select(RunParam).where(RunParam.run_id.in_(wanted))):
        params[p.run_id][p.key] = p.value
    for t in s.scalars(select(RunTag).where(RunTag.run_id.in_(wanted))):
        tags[t.run_id][t.key] = t.value
    for m in s.scalars(select(LatestMetric).where(LatestMetric.run_id.in_(wanted))):
        metrics[m.run_id][m.key] = {"value": m.value, "step": m.step, "timestamp": m.timestamp}
    by_id = {
        run.id: {
            "id": run.id, "team": run.team, "name": run.name, "project": run.project, "experiment": run.experiment,
            "source": run.source, "state": state, "created_at": run.created_at, "ended_at": run.ended_at,
            "params": dict(sorted(params[run.id].items())), "tags": dict(sorted(tags[run.id].items())),
            "metrics": dict(sorted(metrics[run.id].items())),
        }
        for run, state in rows
    }
    return [by_id[i] for i in wanted if i in by_id]


def view(s: Session, who: Principal, run_id: str) -> dict[str, Any]:
    """One run as the api shows it, if `who` may read it; else reported missing."""
    readable(s, who, run_id)
    return run_views(s, [run_id])[0]


def compare(s: Session, who: Principal, ids: Sequence[str]) -> dict[str, Any]:
    """Runs side by side: each param and metric key with one value per run (None where absent);
    NotFound for the first id that is no run `who` may read (the same answer as a missing one)."""
    for run_id in ids:
        readable(s, who, run_id)
    runs = run_views(s, ids)
    params = sorted({k for r in runs for k in r["params"]})
    metrics = sorted({k for r in runs for k in r["metrics"]})
    return {
        "runs": runs,
        "params": {k: [r["params"].get(k) for r in runs] for k in params},
        "metrics": {k: [(r["metrics"].get(k) or {}).get("value") for r in runs] for k in metrics},
    }


def experiments(s: Session, who: Principal, project: str | None = None) -> list[dict[str, Any]]:
    """Each team's projects and experiments that `who` may read, with how many runs each has."""
    ensure_job_runs(s)
    stmt = (select(Run.team, Run.project, Run.experiment, func.count(), func.max(Run.created_at))
            .where(_visible(who))
            .group_by(Run.team, Run.project, Run.experiment).order_by(Run.team, Run.project, Run.experiment))
    if project:
        stmt = stmt.where(Run.project == project)
    return [{"team": t, "project": p, "experiment": e, "runs": n, "last_run_at": last}
            for t, p, e, n, last in s.execute(stmt)]
