"""Sweeps on the control loop: each trial an ordinary job, the study rebuilt from the store.

`SweepDriver` runs after every reconcile pass (`loop.add_driver`). For each
running sweep it feeds the trials' new intermediate values to the pruner,
tells the sampler how finished trials ended, and asks for new trials while
fewer than `parallelism` trial jobs are live. A new trial's row and its job
are written in one transaction, so a crash leaves either both or neither
(the `sweep_trial.*` crash points); the in-memory study is only a cache of
the store and is dropped on any error.

A sweep is its template's team's: starting one takes the member role there (admission),
cancelling one too; its viewers read it, its trials and its events. Another team's sweep
reads as missing.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from trainyard.control import admission, jobs
from trainyard.control.loop import ControlLoop
from trainyard.faults import crash_point
from trainyard.principal import SYSTEM, Principal
from trainyard.spec import JobSpec, JobState, SpecError
from trainyard.storage import BlobStore, require_archive
from trainyard.store import Store, access, repo, sweep_repo
from trainyard.store.sweep_tables import Sweep, SweepEvent, SweepTrial
from trainyard.store.tables import Job, utcnow
from trainyard.tuning import SweepSpec, SweepStudy, TrialRecord

log = logging.getLogger("trainyard.sweeps")


def submit(store: Store, loop: ControlLoop, blobs: BlobStore, spec: SweepSpec,
           code: dict[str, Any] | None, who: Principal) -> Sweep:
    """Store a sweep; the driver starts its first trials on the next pass."""
    template = spec.template
    code = code or {}
    digest = code.get("digest")
    require_archive(blobs, digest)
    with store.session() as s:  # each trial is admitted again when it starts; refuse a bad template now
        try:
            admission.check(s, blobs, loop.backend.capacity(), template, None, who)
        except SpecError as exc:
            raise admission.as_template(exc, "job.") from None
    if spec.seed is None:  # fixed now, so a rebuilt study draws a grid in the same order
        spec = spec.model_copy(update={"seed": secrets.randbelow(2**31)})
    with store.session() as s:
        sweep = Sweep(id=sweep_repo.new_sweep_id(spec.name), name=spec.name, team=template.team,
                      spec=spec.model_dump(mode="json"), code_digest=digest,
                      code_git_commit=code.get("git_commit"), code_git_dirty=code.get("git_dirty"),
                      state="RUNNING", reason="starting trials", cancel_requested=False)
        s.add(sweep)
        s.flush()
        stopping = spec.early_stopping
        sweep_repo.add_sweep_event(s, sweep.id, "submitted", (
            f"{spec.budget} trials, {spec.parallelism} at a time; sampler {spec.sampler}, early stopping "
            f"{stopping.type}; {spec.metric.goal} {spec.metric.name}"))
    loop.nudge()
    return sweep


def readable(s: Session, who: Principal, sweep_id: str) -> Sweep:
    """The sweep, if `who` may read it (a viewer of its team or more); else reported missing."""
    sweep = sweep_repo.get_sweep(s, sweep_id)
    access.require_read(who, sweep.team, sweep_repo.missing_sweep(sweep_id))
    return sweep


def writable(s: Session, who: Principal, sweep_id: str, action: str = "cancel it") -> Sweep:
    """The sweep, if `who` may change it (a member of its team or more): 404 if unseen, else 403."""
    sweep = sweep_repo.get_sweep(s, sweep_id)
    access.require_role(who, sweep.team, sweep_repo.missing_sweep(sweep_id), action=action)
    return sweep


def visible(s: Session, who: Principal, limit: int) -> Sequence[Sweep]:
    """The newest sweeps of the teams `who` may read."""
    return sweep_repo.list_sweeps(s, limit, where=access.visible(who, Sweep.team))


def trials(s: Session, who: Principal, sweep_id: str) -> tuple[Sweep, Sequence[SweepTrial], dict[str, Job]]:
    """A sweep `who` may read, its trials in order and their jobs (all of the sweep's team)."""
    sweep = readable(s, who, sweep_id)
    return sweep, sweep_repo.trials_of(s, sweep_id), sweep_repo.trial_jobs(s, sweep_id)


def events(s: Session, who: Principal, sweep_id: str) -> Sequence[SweepEvent]:
    readable(s, who, sweep_id)
    return sweep_repo.events_of(s, sweep_id)


def cancel(store: Store, loop: ControlLoop, sweep_id: str, who: Principal) -> Sweep:
    """Ask the driver to stop every trial; it does so on the next pass."""
    with store.session() as s:
        sweep = writable(s, who, sweep_id)
        if sweep.state == "RUNNING" and not sweep.cancel_requested:
            sweep.cancel_requested = True
            sweep_repo.add_sweep_event(s, sweep.id, "cancel_requested",
                                       "cancel requested; stopping all trials")
    loop.nudge()
    return sweep


def trial_spec(sweep: Sweep, spec: SweepSpec, number: int, params: dict[str, Any]) -> JobSpec:
    template = spec.template
    return template.model_copy(update={
        "name": f"{sweep.name[:50]}-t{number}",
        "hyperparameters": {**template.hyperparameters, **params},
        "labels": {**template.labels, "sweep": sweep.id, "trial": str(number)},
    })


def describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


class SweepDriver:
    """Steers every running sweep; holds each one's study as a cache of the store."""

    def __init__(self) -> None:
        self._studies: dict[str, SweepStudy] = {}

    def __call__(self, loop: ControlLoop) -> None:
        with loop.store.session() as s:
            sweep_ids = sweep_repo.sweeps_to_drive(s)
        for sweep_id in sweep_ids:
            try:
                with loop.store.session() as s:
                    stops, started = self._drive(s, sweep_id, loop)
            except Exception:  # noqa: BLE001 - retried next pass from a study rebuilt from the store
                self._studies.pop(sweep_id, None)
                log.exception("driving sweep %s failed", sweep_id)
                continue
            if started:
                crash_point("sweep_trial.after_commit")  # trials and their jobs stored (QUEUED), none launched
            for job_id, reason in stops:  # after commit: a trial is marked stopped before its job is
                jobs.cancel(loop.store, loop, job_id, SYSTEM, reason)

    # -- one sweep, one transaction ---------------------------------------------

    def _drive(self, s: Session, sweep_id: str, loop: ControlLoop) -> tuple[list[tuple[str, str]], int]:
        """The trial jobs to stop once this commits, and how many trials it started."""
        sweep = sweep_repo.get_sweep(s, sweep_id)
        spec = SweepSpec.model_validate(sweep.spec)
        trials = list(sweep_repo.trials_of(s, sweep_id))
        trial_jobs = sweep_repo.trial_jobs(s, sweep_id)
        stops = [(t.job_id, f"trial {t.number} of sweep {sweep_id} was {t.state.lower()}") for t in trials
                 if t.state in ("PRUNED", "CANCELLED") and not trial_jobs[t.job_id].cancel_requested
                 and not JobState(trial_jobs[t.job_id].state).terminal]
        if sweep.state != "RUNNING":
            self._studies.pop(sweep_id, None)
            return stops, 0
        study = self._studies.get(sweep_id) or self._rebuild(s, sweep_id, spec, trials)
        self._studies[sweep_id] = study
        if sweep.cancel_requested:
            return stops + self._cancel_all(s, sweep, study, trials, trial_jobs), 0
        for trial in trials:
            if trial.state == "RUNNING":
                stop = self._follow(s, sweep, spec, study, trial, trial_jobs[trial.job_id])
                if stop:
                    stops.append(stop)
        return stops, self._fill(s, loop, sweep, spec, study, trials, trial_jobs)

    def _rebuild(self, s: Session, sweep_id: str, spec: SweepSpec, trials: list[SweepTrial]) -> SweepStudy:
        records = []
        for t in trials:
            rec = TrialRecord(**sweep_repo.trial_record_fields(t))
            if t.state in ("COMPLETE", "PRUNED"):
                points = sweep_repo.trial_points(s, t.job_id, spec.metric.name, spec.early_stopping.resource)
                limit = t.pruned_at if t.pruned_at is not None else float("inf")
                rec.intermediate = {}
                for resource, value in points:
                    if resource <= limit:
                        rec.intermediate.setdefault(resource, value)
            records.append(rec)
        assert spec.seed is not None
        study = SweepStudy(sweep_id, spec, spec.seed, records)
        if trials:
            log.info("sweep %s: study rebuilt from %d stored trials", sweep_id, len(trials))
        return study

    def _follow(self, s: Session, sweep: Sweep, spec: SweepSpec, study: SweepStudy, trial: SweepTrial,
                job: Job) -> tuple[str, str] | None:
        """Report the trial's new points; prune it, or record how its job ended."""
        points = sweep_repo.trial_points(s, job.id, spec.metric.name, spec.early_stopping.resource)
        state = JobState(job.state)
        pruned_at = study.report(trial.number, points) if spec.early_stopping.type != "none" else None
        if pruned_at is not None and not state.terminal:
            value = next(v for r, v in points if r == pruned_at)
            why = (f"pruned by {spec.early_stopping.type} at {spec.early_stopping.resource} {pruned_at}: "
                   f"{spec.metric.name}={value:.4g}")
            trial.pruned_at, trial.value = pruned_at, value
            self._finish(s, sweep, study, trial, "PRUNED", why)
            return job.id, f"trial {trial.number} of sweep {sweep.id} {why}"
        if state == JobState.SUCCEEDED:
            if not points:
                self._finish(s, sweep, study, trial, "FAILED",
                             f"the trial's job succeeded but never logged {spec.metric.name}")
            else:
                trial.value = points[-1][1]
                self._finish(s, sweep, study, trial, "COMPLETE",
                             f"{spec.metric.name}={trial.value:.4g} after {points[-1][0]} "
                             f"{spec.early_stopping.resource}s")
        elif state == JobState.FAILED:
            self._finish(s, sweep, study, trial, "FAILED", f"its job failed: {job.reason}")
        elif state == JobState.CANCELLED:
            self._finish(s, sweep, study, trial, "CANCELLED", "its job was cancelled outside the sweep")
        return None

    def _finish(self, s: Session, sweep: Sweep, study: SweepStudy, trial: SweepTrial, state: str,
                why: str) -> None:
        trial.system_attrs = study.tell(trial.number, state, trial.value)
        trial.state, trial.reason, trial.finished_at = state, why, utcnow()
        if state != "COMPLETE":
            trial.value = trial.value if state == "PRUNED" else None
        sweep_repo.add_sweep_event(s, sweep.id, f"trial_{state.lower()}", f"trial {trial.number}: {why}")

    def _cancel_all(self, s: Session, sweep: Sweep, study: SweepStudy, trials: list[SweepTrial],
                    trial_jobs: dict[str, Job]) -> list[tuple[str, str]]:
        stops = []
        for t in trials:
            if t.state == "RUNNING":
                self._finish(s, sweep, study, t, "CANCELLED", "the sweep was cancelled")
                if not JobState(trial_jobs[t.job_id].state).terminal:
                    stops.append((t.job_id, f"sweep {sweep.id} was cancelled"))
        done = sum(t.state == "COMPLETE" for t in trials)
        sweep_repo.set_sweep_state(s, sweep, "CANCELLED", "cancelled",
                                   f"cancelled by request after {len(trials)} trials ({done} complete); "
                                   f"stopping {len(stops)} running trial jobs")
        self._studies.pop(sweep.id, None)
        return stops

    # -- new trials and the end ---------------------------------------------------

    def _fill(self, s: Session, loop: ControlLoop, sweep: Sweep, spec: SweepSpec, study: SweepStudy,
              trials: list[SweepTrial], trial_jobs: dict[str, Job]) -> int:
        """Start trials while fewer than `parallelism` run; end the sweep when all are done. Returns
        how many trials it started."""
        live = sum(not JobState(j.state).terminal for j in trial_jobs.values())
        total = len(trials)
        while live < spec.parallelism and total < spec.budget:
            try:
                number, params = study.ask()
            except Exception as exc:  # noqa: BLE001 - a sampler that cannot sample ends the sweep
                sweep_repo.set_sweep_state(s, sweep, "FAILED", "failed",
                                           f"sampler {spec.sampler} failed to suggest trial {total}: {exc}")
                self._studies.pop(sweep.id, None)
                return total - len(trials)
            if number != total:
                raise RuntimeError(f"study asked trial {number} but the store holds {total}; rebuilding")
            code = {"digest": sweep.code_digest, "git_commit": sweep.code_git_commit,
                    "git_dirty": sweep.code_git_dirty}
            try:
                job = admission.admit(s, loop.blobs, loop.backend.capacity(),
                                      trial_spec(sweep, spec, number, params), code,
                                      SYSTEM)  # its team was checked at submit
            except SpecError as exc:  # the world changed since submit (a class or dataset went away)
                sweep_repo.set_sweep_state(s, sweep, "FAILED", "failed",
                                           f"trial {number} was refused: {exc}")
                self._studies.pop(sweep.id, None)
                return total - len(trials)
            crash_point("sweep_trial.after_job")  # the trial's job written, its trial row not; nothing committed
            repo.add_event(s, job.id, "sweep_trial",
                           f"trial {number} of sweep {sweep.id}: {describe(params)}")
            s.add(SweepTrial(sweep_id=sweep.id, number=number, job_id=job.id, params=params, state="RUNNING",
                             system_attrs={}, reason="", created_at=utcnow()))
            sweep_repo.add_sweep_event(s, sweep.id, "trial_started",
                                       f"trial {number} as job {job.id}: {describe(params)}")
            live, total = live + 1, total + 1
        if total >= spec.budget and live == 0 and all(t.state != "RUNNING" for t in trials):
            self._end(s, sweep, spec, trials)
        return total - len(trials)

    def _end(self, s: Session, sweep: Sweep, spec: SweepSpec, trials: list[SweepTrial]) -> None:
        counts = {st: sum(t.state == st for t in trials) for st in ("COMPLETE", "PRUNED", "FAILED")}
        summary = (f"{len(trials)} trials: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
                   f"{counts['FAILED']} failed")
        complete = [t for t in trials if t.state == "COMPLETE" and t.value is not None]
        if not complete:
            sweep_repo.set_sweep_state(s, sweep, "FAILED", "failed", f"no trial completed; {summary}")
        else:
            pick = min if spec.metric.goal == "minimize" else max
            best = pick(complete, key=lambda t: t.value or 0.0)
            sweep_repo.set_sweep_state(s, sweep, "SUCCEEDED", "succeeded",
                                       f"{summary}; best trial {best.number} {spec.metric.name}="
                                       f"{best.value:.4g} ({describe(best.params)})")
        self._studies.pop(sweep.id, None)
