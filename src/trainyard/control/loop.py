"""The control loop: one reconcile pass at a time over what the store says.

Each pass looks at every job with a live gang (exits, silent workers, stops),
then hands the scheduling policy a snapshot and applies its decisions: launch,
preempt (a hand-off: SIGTERM, a grace period to checkpoint, SIGKILL, back to
the queue), and a reason for each job that waits. Everything it decides is
written to the store with an event; after a restart, `recover()` rebuilds its
view from the store and the backend's handles alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from trainyard.auth import identity, secrets
from trainyard.backends.base import Backend, Capacity, GangLaunch, Handle, Placement, RankStatus
from trainyard.config import ServerConfig
from trainyard.control import scheduling, teams
from trainyard.data import local_copy, snapshots
from trainyard.data.local_copy import TamperedSnapshot
from trainyard.faults import crash_point
from trainyard.scheduler.model import ClusterSnapshot, GangRequest, RunningGang
from trainyard.scheduler.policy import TRAINYARD, PolicyConfig, schedule
from trainyard.spec import AttemptState, JobSpec, JobState, LaunchEnv, WorkerState, heartbeat_interval
from trainyard.storage import BlobStore, CheckpointRoot, archive_key, unpack_archive
from trainyard.store import Store, repo
from trainyard.store.tables import Attempt, Job, utcnow
from trainyard.tracking import lineage

log = logging.getLogger("trainyard.control")

FIRST_HEARTBEAT_GRACE_S = 60.0  # interpreter + torch import + process-group setup on a busy host


def _age_s(then: datetime | None, now: datetime) -> float:
    if then is None:
        return float("inf")
    return (now - then).total_seconds()


class ControlLoop:
    def __init__(
        self,
        store: Store,
        backend: Backend,
        config: ServerConfig,
        blobs: BlobStore,
        checkpoints: CheckpointRoot,
        policy: PolicyConfig = TRAINYARD,
    ):
        self.store = store
        self.backend = backend
        self.config = config
        self.policy = policy
        self.blobs = blobs
        self.checkpoints = checkpoints  # the one place checkpoint locations come from
        self._adopted_at: dict[tuple[str, int], datetime] = {}
        self._drivers: list[Callable[[ControlLoop], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._run, name="trainyard-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def add_driver(self, driver: Callable[[ControlLoop], None]) -> None:
        """Run `driver(loop)` after every pass: sweeps and pipelines steer their jobs this way."""
        self._drivers.append(driver)

    def nudge(self) -> None:
        """Run the next pass now (a job was submitted or cancelled)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile_once()
            except Exception:  # noqa: BLE001 - one bad pass must not end the loop; it is retried
                log.exception("reconcile pass failed")
            self._wake.wait(self.config.reconcile_interval_s)
            self._wake.clear()

    # -- recovery -------------------------------------------------------------

    def recover(self) -> None:
        """After a server restart: re-adopt gangs whose ranks still live."""
        now = utcnow()
        with self.store.session() as s:
            for job in repo.jobs_in(s, repo.ACTIVE_STATES):
                att = repo.current_attempt(s, job)
                if att is None or att.state != AttemptState.RUNNING:
                    continue  # a LAUNCHING one is abandoned by the first pass
                if not att.launch.get("ranks"):
                    self._fail_attempt(s, job, att, "the server stopped while launching this attempt")
                    continue
                if hasattr(self.backend, "adopt"):
                    self.backend.adopt(att.launch)
                self._adopted_at[(job.id, att.number)] = now
                alive = sum(st.running for st in self.backend.poll(att.launch))
                repo.add_event(s, job.id, "adopted", f"server restarted; re-adopted attempt "
                               f"{att.number} with {alive}/{len(att.launch['ranks'])} ranks alive")

    # -- one pass -------------------------------------------------------------

    def reconcile_once(self) -> None:
        with self.store.session() as s:
            active = [job.id for job in repo.jobs_in(s, repo.ACTIVE_STATES)]
        for job_id in active:  # one transaction each: one job's trouble never undoes another's
            try:
                with self.store.session() as s:
                    self._reconcile_job(s, repo.get_job(s, job_id))
            except Exception:  # noqa: BLE001 - logged and retried on the next pass
                log.exception("reconciling job %s failed", job_id)
        for driver in self._drivers:
            try:
                driver(self)
            except Exception:  # noqa: BLE001 - a driver's bad pass must not stop the others
                log.exception("driver %s failed", getattr(driver, "__name__", driver))
        self._schedule()

    def _reconcile_job(self, s: Session, job: Job) -> None:
        att = repo.current_attempt(s, job)
        if att is None:
            return
        if att.state == AttemptState.LAUNCHING:  # launches finish within their pass: this one was cut off
            self._abandon_launch(s, job, att)
            return
        statuses = self.backend.poll(att.launch) if att.launch else []
        gang_alive = any(st.running for st in statuses)
        if att.state != AttemptState.RUNNING:  # fenced or finished: wait for the gang to be gone
            if gang_alive:
                self.backend.signal(att.launch, signal.SIGKILL)
            elif job.cancel_requested:
                self._finish_cancel(s, job, att)
            return
        self._record_exits(s, job, att, statuses)
        if job.cancel_requested and att.stop_kind != "cancel":
            self._begin_stop(s, job, att, "cancel", job.cancel_reason or "cancelled by request")
        if att.stop_kind:  # exits now are the hand-off's, not a success or a failure
            self._drive_stop(s, job, att, gang_alive)
            return
        failed = [st for st in statuses if not st.running and st.exit_code != 0]
        if failed:
            self._fail_attempt(s, job, att, failed[0].describe())
            return
        if statuses and all(st.exit_code == 0 for st in statuses):
            self._succeed(s, job, att, len(statuses))
            return
        silent = self._silent_worker(s, job, att)
        if silent:
            self._fail_attempt(s, job, att, silent)
            return
        if job.state == JobState.STARTING and self._all_heartbeating(s, job, att):
            repo.set_state(s, job, JobState.RUNNING, "running",
                           f"all {len(statuses)} ranks of attempt {att.number} are heartbeating")

    def _record_exits(self, s: Session, job: Job, att: Attempt, statuses: list[RankStatus]) -> None:
        workers = {w.rank: w for w in repo.workers_of(s, job.id, att.number)}
        for st in statuses:
            w = workers.get(st.rank)
            if w is None or st.running or not WorkerState(w.state).live:
                continue
            w.state = WorkerState.LOST if st.lost else WorkerState.EXITED
            w.exit_code = st.exit_code

    def _silent_worker(self, s: Session, job: Job, att: Attempt) -> str | None:
        timeout = JobSpec.model_validate(job.spec).heartbeat_timeout_s
        now = utcnow()
        baseline = self._adopted_at.get((job.id, att.number))
        for w in repo.workers_of(s, job.id, att.number):
            if not WorkerState(w.state).live:
                continue
            if w.last_heartbeat is None:
                since_start = _age_s(att.started_at, now)
                if since_start > timeout + FIRST_HEARTBEAT_GRACE_S and _age_s(baseline, now) > timeout:
                    return (f"worker rank {w.rank} sent no heartbeat within "
                            f"{since_start:.0f} s of launch; declared dead")
                continue
            silent_for = min(_age_s(w.last_heartbeat, now), _age_s(baseline, now))
            if silent_for > timeout:
                return (f"worker rank {w.rank} (pid {w.pid}) sent no heartbeat for "
                        f"{silent_for:.1f} s (timeout {timeout:g} s); declared dead")
        return None

    def _all_heartbeating(self, s: Session, job: Job, att: Attempt) -> bool:
        workers = repo.workers_of(s, job.id, att.number)
        return bool(workers) and all(w.last_heartbeat is not None for w in workers)

    # -- outcomes ---------------------------------------------------------------

    def _succeed(self, s: Session, job: Job, att: Attempt, ranks: int) -> None:
        att.state, att.ended_at, att.reason = AttemptState.SUCCEEDED, utcnow(), "all ranks exited 0"
        self._release(att)
        repo.set_state(s, job, JobState.SUCCEEDED, "succeeded",
                       f"all {ranks} ranks exited 0 on attempt {att.number}")

    def _fail_attempt(self, s: Session, job: Job, att: Attempt, why: str) -> None:
        """Fence the attempt, kill its whole gang, and restart it or fail the job."""
        att.state, att.ended_at, att.reason = AttemptState.FAILED, utcnow(), why
        if att.launch:
            self.backend.signal(att.launch, signal.SIGKILL)
        repo.kill_workers(s, job.id, att.number)
        spec = JobSpec.model_validate(job.spec)
        if job.restarts >= spec.max_restarts:
            repo.set_state(s, job, JobState.FAILED, "failed",
                           f"{why}; max_restarts ({spec.max_restarts}) exhausted on attempt {att.number}")
            return
        job.restarts += 1
        ckpts = repo.committed_checkpoints(s, job.id)
        start = f"from step {ckpts[0].step}" if ckpts else "from the beginning (no checkpoint yet)"
        repo.set_state(s, job, JobState.RESTARTING, "restarting",
                       f"{why}; restarting {start}, attempt {att.number + 1} "
                       f"(restart {job.restarts}/{spec.max_restarts})")

    def _begin_stop(self, s: Session, job: Job, att: Attempt, kind: str, reason: str,
                    for_job: str | None = None, send: bool = True) -> None:
        """SIGTERM and a stop flag in the heartbeat reply, so the code can checkpoint and exit.
        With `send=False` the caller sends the SIGTERM once this is committed."""
        att.stop_requested, att.stop_kind, att.stop_reason, att.stop_for = True, kind, reason, for_job
        att.stop_sent_at = utcnow()
        if send and att.launch:
            self.backend.signal(att.launch, signal.SIGTERM)
        grace = self.config.stop_grace_s if kind == "cancel" else self.config.preemption_grace_s
        repo.add_event(s, job.id, "preempting" if kind == "preempt" else "stopping",
                       f"{reason}; sent SIGTERM to attempt {att.number}, SIGKILL in {grace:g} s")

    def _drive_stop(self, s: Session, job: Job, att: Attempt, gang_alive: bool) -> None:
        if not gang_alive:
            att.ended_at = utcnow()
            if att.stop_kind == "preempt":
                self._finish_preempt(s, job, att)
            else:
                att.state, att.reason = AttemptState.STOPPED, "cancelled"
                self._finish_cancel(s, job, att)
            return
        grace = self.config.stop_grace_s if att.stop_kind == "cancel" else self.config.preemption_grace_s
        if _age_s(att.stop_sent_at, utcnow()) > grace:
            self.backend.signal(att.launch, signal.SIGKILL)

    def _finish_preempt(self, s: Session, job: Job, att: Attempt) -> None:
        """Back to the queue, keeping its checkpoints; a preemption is not a restart."""
        att.state, att.reason = AttemptState.PREEMPTED, att.stop_reason or "preempted"
        self._release(att)
        repo.kill_workers(s, job.id, att.number)
        ckpts = repo.committed_checkpoints(s, job.id)
        resume = f"resumes from step {ckpts[0].step}" if ckpts else "restarts from the beginning"
        repo.set_state(s, job, JobState.QUEUED, "preempted",
                       f"{att.reason}; all ranks gone, back in the queue; {resume}")

    def _finish_cancel(self, s: Session, job: Job, att: Attempt) -> None:
        self._release(att)
        repo.kill_workers(s, job.id, att.number)
        why = job.cancel_reason or "cancelled by request"
        repo.set_state(s, job, JobState.CANCELLED, "cancelled", f"{why}; all ranks gone")

    def _release(self, att: Attempt) -> None:
        cleanup = getattr(self.backend, "cleanup", None)
        if cleanup and att.launch:
            cleanup(att.launch)
        self._adopted_at.pop((att.job_id, att.number), None)

    # -- scheduling and launch -----------------------------------------------------

    def _schedule(self) -> None:
        """One policy cycle over a snapshot of the store; its decisions recorded, then applied.

        Stops and reasons are committed in one transaction before any signal is sent; each launch
        then runs on its own (`_launch`), so one job's failure never undoes another's decisions.
        """
        signals: list[Handle] = []
        launches: list[tuple[str, Placement, bool]] = []
        with self.store.session() as s:
            running: list[RunningGang] = []
            pending: list[GangRequest] = []
            stopping: dict[str, str] = {}  # job being stopped -> the job it makes room for
            queued: dict[str, Job] = {}
            for job in repo.jobs_in(s, [JobState.QUEUED, *repo.ACTIVE_STATES]):
                spec = JobSpec.model_validate(job.spec)
                att = repo.current_attempt(s, job)
                if att is not None and att.state == AttemptState.LAUNCHING:
                    continue  # an abandoned launch: its job's reconcile cleans it up first
                if att is not None and att.launch and (
                        att.state == AttemptState.RUNNING or any(st.running for st in self.backend.poll(att.launch))):
                    ckpts = repo.committed_checkpoints(s, job.id)
                    running.append(scheduling.running_gang(job, spec, att, ckpts[0] if ckpts else None))
                    if att.stop_kind:
                        stopping[job.id] = att.stop_for or ""
                elif job.state in (JobState.QUEUED, JobState.RESTARTING):
                    pending.append(scheduling.gang_request(job, spec))
                    queued[job.id] = job
            # A job that preemption is making room for waits until its victims are gone.
            pending = [p for p in pending if p.id not in stopping.values()]
            if not pending:
                return
            team_list, classes = teams.policy_inputs(s)
            now = utcnow().timestamp()
            usage = scheduling.team_usage(s, now, self.policy.ordering.fair_share_half_life_s)
            snapshot = ClusterSnapshot(nodes=tuple(self.backend.nodes()), running=tuple(running),
                                       pending=tuple(pending), teams=team_list,
                                       priority_classes=classes, now=now, usage=usage)
            decisions = schedule(snapshot, self.policy)
            making_room = set()
            for p in decisions.preempt:
                if p.job_id in stopping:
                    continue
                victim = repo.get_job(s, p.job_id)
                att = repo.current_attempt(s, victim)
                if att is not None:
                    self._begin_stop(s, victim, att, "preempt", p.reason, for_job=p.for_job, send=False)
                    signals.append(att.launch)
                    making_room.add(p.for_job)
            free = self._free_capacity(running)
            for admit in decisions.admit:
                need = JobSpec.model_validate(queued[admit.job_id].spec).resources
                if admit.job_id in making_room or not free.fits(need):
                    continue  # launched once its victims are gone, on the next passes
                free = free.minus(need)
                launches.append((admit.job_id, admit.placement, admit.opportunistic))
            for job_id, why in decisions.reasons.items():
                job = queued.get(job_id)
                if job is not None and job.state == JobState.QUEUED and job.reason != why:
                    job.reason = why
        for handle in signals:  # recorded first: a SIGTERM the store does not know of would read as an exit
            if handle:
                self.backend.signal(handle, signal.SIGTERM)
        for job_id, placement, opportunistic in launches:
            self._launch(job_id, placement, opportunistic)

    def _free_capacity(self, running: list[RunningGang]) -> Capacity:
        """What the running gangs leave of the backend: a guard against launching past capacity."""
        cap = self.backend.capacity()
        return Capacity(cap.cpus - sum(g.job.cpus for g in running),
                        cap.gpus - sum(g.job.gpus for g in running),
                        cap.memory_gb - sum(g.job.memory_gb for g in running))

    # -- one launch: intent, action, confirmation ------------------------------------

    def _launch(self, job_id: str, placement: Placement, opportunistic: bool = False) -> None:
        """Launch one gang, isolated from every other: the attempt is recorded (LAUNCHING) and
        committed before any process starts, then started, then confirmed (RUNNING with the
        backend's handle). Any exception fails this attempt alone, with the reason; a launch the
        server died in the middle of is found by `_reconcile_job` and its processes stopped."""
        try:
            number = self._record_launch_intent(job_id, placement, opportunistic)
        except Exception:  # noqa: BLE001 - nothing was started; the job stays queued and is retried
            log.exception("recording the launch of job %s failed", job_id)
            return
        if number is None:
            return
        crash_point("launch.after_intent")
        try:
            gang = self._prepare(job_id, number)
        except Exception as exc:  # noqa: BLE001 - this attempt fails alone, with the reason
            # An I/O error may pass (a blob store blip); anything else is the job's own inputs
            # (an archive that is not one, a tampered snapshot), which every attempt would read again.
            self._end_launch(job_id, number, f"its inputs could not be prepared: {_describe(exc)}",
                             permanent=not isinstance(exc, OSError))
            return
        try:
            handle = self.backend.launch(gang, placement)
        except Exception as exc:  # noqa: BLE001 - this attempt fails alone; the backend stopped what it started
            self._end_launch(job_id, number, f"launch failed: {_describe(exc)}")
            return
        crash_point("launch.after_processes")
        try:
            self._confirm_launch(job_id, number, {**handle, "opportunistic": opportunistic})
        except Exception:  # noqa: BLE001 - unconfirmed: stop the ranks; the attempt is cleaned up next pass
            log.exception("confirming the launch of job %s attempt %d failed", job_id, number)
            self.backend.signal(handle, signal.SIGKILL)
            return
        crash_point("launch.after_confirm")

    def _record_launch_intent(self, job_id: str, placement: Placement, opportunistic: bool) -> int | None:
        with self.store.session() as s:
            job = repo.get_job(s, job_id)
            if job.state not in (JobState.QUEUED, JobState.RESTARTING) or job.cancel_requested:
                return None  # changed since the snapshot (cancelled): nothing to launch
            spec = JobSpec.model_validate(job.spec)
            number = job.attempt + 1
            ckpts = repo.committed_checkpoints(s, job.id)
            log_dir = self.config.logs / job.id / f"attempt-{number}"
            s.add(Attempt(job_id=job.id, number=number, state=AttemptState.LAUNCHING,
                          launch={"intent": {"log_dir": str(log_dir), "placement": placement,
                                             "opportunistic": opportunistic}},
                          restore_step=ckpts[0].step if ckpts else None, started_at=utcnow()))
            job.attempt = number
            job.started_at = job.started_at or utcnow()
            for rank in range(spec.resources.workers):
                s.add(repo.Worker(job_id=job.id, attempt=number, rank=rank, state=WorkerState.STARTING))
            repo.set_state(s, job, JobState.STARTING, "launching",
                           f"attempt {number}: preparing its code and data, then starting "
                           f"{spec.resources.workers} ranks on {self.backend.name}")
            return number

    def _prepare(self, job_id: str, number: int) -> GangLaunch:
        """The gang as the backend starts it: code unpacked, dataset verified, environment made."""
        with self.store.session() as s:
            job = repo.get_job(s, job_id)
            spec = JobSpec.model_validate(job.spec)
            code_dir = self._code_dir(job)
            att = repo.attempt_row(s, job_id, number)
            if att is None:
                raise RuntimeError(f"attempt {number} of job {job_id} was not recorded")
            token = identity.mint_rank_token(att)  # committed with this session, before any rank starts
            # The secrets' values exist only in the ranks' environment: the spec keeps their names.
            secret_env = secrets.launch_env(s, secrets.keyring(self.config), job.team, spec.secret_env)
            env = {
                **spec.plain_env,
                **secret_env,
                LaunchEnv.SERVER: self.config.url,
                LaunchEnv.JOB_ID: job.id,
                LaunchEnv.ATTEMPT: str(number),
                LaunchEnv.TOKEN: token,
                LaunchEnv.HPARAMS: json.dumps(spec.hyperparameters),
                LaunchEnv.CHECKPOINT_DIR: self.checkpoints.make_job_root(job.id),
                LaunchEnv.CHECKPOINT_POLICY: spec.checkpoint.model_dump_json(),
                LaunchEnv.HEARTBEAT_INTERVAL_S: str(heartbeat_interval(spec.heartbeat_timeout_s)),
                **self._dataset_env(s, job, spec),
            }
            return GangLaunch(job_id=job.id, attempt=number, entrypoint=spec.entrypoint, code_dir=code_dir,
                              log_dir=self.config.logs / job.id / f"attempt-{number}",
                              resources=spec.resources, env=env, secret_names=tuple(sorted(secret_env)))

    def _confirm_launch(self, job_id: str, number: int, handle: Handle) -> None:
        with self.store.session() as s:
            job = repo.get_job(s, job_id)
            att = repo.attempt_row(s, job_id, number)
            if att is None or att.state != AttemptState.LAUNCHING:
                raise RuntimeError(f"attempt {number} of job {job_id} is no longer launching ({att and att.state})")
            att.state, att.launch = AttemptState.RUNNING, handle
            spec = JobSpec.model_validate(job.spec)
            start = f"restoring from step {att.restore_step}" if att.restore_step is not None else "fresh start"
            repo.set_state(s, job, JobState.STARTING, "launched",
                           f"attempt {number} launched: {spec.resources.workers} ranks on {self.backend.name} "
                           f"({start}; restarts used {job.restarts}/{spec.max_restarts})")

    def _end_launch(self, job_id: str, number: int, why: str, permanent: bool = False) -> None:
        """A launch that did not happen: the attempt fails with `why`; the job restarts, or fails for
        good when its own inputs are at fault (every attempt would read the same ones)."""
        try:
            with self.store.session() as s:
                job = repo.get_job(s, job_id)
                att = repo.attempt_row(s, job_id, number)
                if att is None or att.state != AttemptState.LAUNCHING:
                    return
                if permanent:
                    self._fail_on_inputs(s, job, att, why)
                else:
                    self._fail_attempt(s, job, att, why)
        except Exception:  # noqa: BLE001 - the attempt stays LAUNCHING; the next pass abandons it
            log.exception("recording the failed launch of job %s attempt %d failed", job_id, number)

    def _abandon_launch(self, s: Session, job: Job, att: Attempt) -> None:
        """An attempt recorded as launching that no launch is confirming: the server stopped (or
        failed) between recording it and confirming it. Whatever it started is stopped."""
        intent = att.launch.get("intent") or {}
        stopped = self.backend.abandon(job.id, att.number, Path(intent.get("log_dir") or
                                                                 self.config.logs / job.id / f"attempt-{att.number}"))
        att.launch = {}
        self._fail_attempt(s, job, att, f"the server stopped while launching attempt {att.number}; "
                                        f"{stopped} of its processes were found and stopped")

    def _dataset_env(self, s: Session, job: Job, spec: JobSpec) -> dict[str, str]:
        """Materialise and verify the job's dataset snapshot; note what the run is made from."""
        snap = None
        if spec.dataset:
            name, version = snapshots.parse_ref(spec.dataset)
            snap = snapshots.get_version(s, name, version)
        lineage.record_launch(s, job, snap)
        if snap is None:
            return {}
        path = local_copy.materialise(self.blobs, self.config.home / "datasets", spec.dataset,
                                      snap.digest, snap.files)
        return {LaunchEnv.DATASET_DIR: str(path)}

    def _fail_on_inputs(self, s: Session, job: Job, att: Attempt, why: str) -> None:
        """A permanent input error (a tampered snapshot, a code archive that cannot be unpacked):
        fail the job, since every restart would too."""
        att.state, att.ended_at, att.reason = AttemptState.FAILED, utcnow(), why
        repo.kill_workers(s, job.id, att.number)
        repo.set_state(s, job, JobState.FAILED, "failed",
                       f"{why}; not restarted: every attempt would read the same data")

    def _code_dir(self, job: Job) -> Path:
        """The job's code, unpacked once from its archive and shared by its attempts."""
        code_dir = self.config.workdirs / job.id / "code"
        if job.code_digest and not code_dir.exists():
            archive = self.blobs.get(archive_key(job.code_digest))
            tmp = code_dir.with_name(f"code.tmp-{os.getpid()}-{threading.get_ident()}")
            try:
                unpack_archive(archive, tmp)
                tmp.rename(code_dir)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        code_dir.mkdir(parents=True, exist_ok=True)
        return code_dir



def _describe(exc: BaseException) -> str:
    """An exception as a reason a person can read: our own errors by their message, others with
    their type too (a bare "[Errno 2] ..." or "embedded null byte" says little on its own)."""
    text = str(exc).strip()
    if isinstance(exc, TamperedSnapshot | repo.NotFound) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
