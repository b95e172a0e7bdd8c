"""The control loop: one reconcile pass at a time over what the store says.

Each pass looks at every job with a live gang (exits, silent workers, cancels),
then asks admission which queued jobs to launch. Everything it decides is
written to the store with an event; after a restart, `recover()` rebuilds its
view from the store and the backend's handles alone.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from trainyard.backends.base import Backend, GangLaunch, RankStatus
from trainyard.config import ServerConfig
from trainyard.scheduler.admission import Admission, Capacity, FifoAdmission, PendingJob
from trainyard.spec import JobSpec, JobState, LaunchEnv, heartbeat_interval
from trainyard.storage import BlobStore, unpack_archive
from trainyard.store import Store, repo
from trainyard.store.tables import Attempt, Job, utcnow

log = logging.getLogger("trainyard.control")

FIRST_HEARTBEAT_GRACE_S = 60.0  # interpreter + torch import + process-group setup on a busy host


def _age_s(then: datetime | None, now: datetime) -> float:
    if then is None:
        return float("inf")
    if then.tzinfo is None:  # SQLite hands back naive datetimes; they were written in UTC
        then = then.replace(tzinfo=UTC)
    return (now - then).total_seconds()


class ControlLoop:
    def __init__(
        self,
        store: Store,
        backend: Backend,
        config: ServerConfig,
        admission: Admission | None = None,
    ):
        self.store = store
        self.backend = backend
        self.config = config
        self.admission = admission or FifoAdmission()
        self.blobs = BlobStore(str(config.blobs))
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
                if att is None or att.state != "RUNNING":
                    continue
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
        self._admit()

    def _reconcile_job(self, s: Session, job: Job) -> None:
        att = repo.current_attempt(s, job)
        if att is None:
            return
        statuses = self.backend.poll(att.launch) if att.launch else []
        gang_alive = any(st.running for st in statuses)
        if att.state != "RUNNING":  # fenced or finished: wait for the gang to be gone
            if gang_alive:
                self.backend.signal(att.launch, signal.SIGKILL)
            elif job.cancel_requested:
                self._finish_cancel(s, job, att)
            return
        self._record_exits(s, job, att, statuses)
        if job.cancel_requested:
            self._drive_cancel(s, job, att, gang_alive)
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
            if w is None or st.running or w.state in ("EXITED", "LOST", "KILLED"):
                continue
            w.state = "LOST" if st.lost else "EXITED"
            w.exit_code = st.exit_code

    def _silent_worker(self, s: Session, job: Job, att: Attempt) -> str | None:
        timeout = JobSpec.model_validate(job.spec).heartbeat_timeout_s
        now = utcnow()
        baseline = self._adopted_at.get((job.id, att.number))
        for w in repo.workers_of(s, job.id, att.number):
            if w.state not in ("STARTING", "RUNNING"):
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
        att.state, att.ended_at, att.reason = "SUCCEEDED", utcnow(), "all ranks exited 0"
        self._release(att)
        repo.set_state(s, job, JobState.SUCCEEDED, "succeeded",
                       f"all {ranks} ranks exited 0 on attempt {att.number}")

    def _fail_attempt(self, s: Session, job: Job, att: Attempt, why: str) -> None:
        """Fence the attempt, kill its whole gang, and restart it or fail the job."""
        att.state, att.ended_at, att.reason = "FAILED", utcnow(), why
        if att.launch:
            self.backend.signal(att.launch, signal.SIGKILL)
        for w in repo.workers_of(s, job.id, att.number):
            if w.state in ("STARTING", "RUNNING"):
                w.state = "KILLED"
        spec = JobSpec.model_validate(job.spec)
        total = spec.max_restarts + 1
        if job.restarts >= spec.max_restarts:
            repo.set_state(s, job, JobState.FAILED, "failed",
                           f"{why}; max_restarts ({spec.max_restarts}) exhausted after "
                           f"attempt {att.number}/{total}")
            return
        job.restarts += 1
        ckpts = repo.committed_checkpoints(s, job.id)
        start = f"from step {ckpts[0].step}" if ckpts else "from the beginning (no checkpoint yet)"
        repo.set_state(s, job, JobState.RESTARTING, "restarting",
                       f"{why}; restarting {start}, attempt {att.number + 1}/{total}")

    def _drive_cancel(self, s: Session, job: Job, att: Attempt, gang_alive: bool) -> None:
        """SIGTERM first so the code can checkpoint; SIGKILL after the grace period."""
        now = utcnow()
        if not gang_alive:
            att.state, att.ended_at, att.reason = "STOPPED", now, "cancelled"
            self._finish_cancel(s, job, att)
            return
        if not att.stop_requested:
            att.stop_requested = True
            att.launch = {**att.launch, "stop_sent_at": now.timestamp()}
            self.backend.signal(att.launch, signal.SIGTERM)
            repo.add_event(s, job.id, "stopping",
                           f"sent SIGTERM to attempt {att.number}; SIGKILL in {self.config.stop_grace_s:g} s")
        elif now.timestamp() - att.launch.get("stop_sent_at", 0) > self.config.stop_grace_s:
            self.backend.signal(att.launch, signal.SIGKILL)

    def _finish_cancel(self, s: Session, job: Job, att: Attempt) -> None:
        self._release(att)
        for w in repo.workers_of(s, job.id, att.number):
            if w.state in ("STARTING", "RUNNING"):
                w.state = "KILLED"
        repo.set_state(s, job, JobState.CANCELLED, "cancelled", "cancelled by request; all ranks gone")

    def _release(self, att: Attempt) -> None:
        cleanup = getattr(self.backend, "cleanup", None)
        if cleanup and att.launch:
            cleanup(att.launch)
        self._adopted_at.pop((att.job_id, att.number), None)

    # -- admission and launch -----------------------------------------------------

    def _admit(self) -> None:
        with self.store.session() as s:
            used = Capacity(0, 0, 0)
            pending: list[PendingJob] = []
            for job in repo.jobs_in(s, [JobState.QUEUED, *repo.ACTIVE_STATES]):
                spec = JobSpec.model_validate(job.spec)
                att = repo.current_attempt(s, job)
                holds = att is not None and att.launch and (
                    att.state == "RUNNING" or any(st.running for st in self.backend.poll(att.launch)))
                if holds:
                    used = used.plus(spec.resources)
                elif job.state in (JobState.QUEUED, JobState.RESTARTING):
                    pending.append(PendingJob(job.id, job.team, job.priority, spec.resources,
                                              restarting=job.state == JobState.RESTARTING))
            if not pending:
                return
            for job_id in self.admission.admit(pending, self.backend.capacity(), used):
                self._launch(s, repo.get_job(s, job_id))

    def _launch(self, s: Session, job: Job) -> None:
        spec = JobSpec.model_validate(job.spec)
        number = job.attempt + 1
        code_dir = self._code_dir(job)
        ckpt_dir = self.config.checkpoints / job.id
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **spec.env,
            LaunchEnv.SERVER: self.config.url,
            LaunchEnv.JOB_ID: job.id,
            LaunchEnv.ATTEMPT: str(number),
            LaunchEnv.HPARAMS: json.dumps(spec.hyperparameters),
            LaunchEnv.CHECKPOINT_DIR: str(ckpt_dir),
            LaunchEnv.CHECKPOINT_POLICY: spec.checkpoint.model_dump_json(),
            LaunchEnv.HEARTBEAT_INTERVAL_S: str(heartbeat_interval(spec.heartbeat_timeout_s)),
        }
        ckpts = repo.committed_checkpoints(s, job.id)
        att = Attempt(job_id=job.id, number=number, state="RUNNING", launch={},
                      restore_step=ckpts[0].step if ckpts else None, started_at=utcnow())
        s.add(att)
        job.attempt = number
        job.started_at = job.started_at or utcnow()
        for rank in range(spec.resources.workers):
            s.add(repo.Worker(job_id=job.id, attempt=number, rank=rank, state="STARTING"))
        s.flush()
        gang = GangLaunch(job_id=job.id, attempt=number, entrypoint=spec.entrypoint, code_dir=code_dir,
                          log_dir=self.config.logs / job.id / f"attempt-{number}",
                          resources=spec.resources, env=env)
        try:
            att.launch = self.backend.launch(gang)
        except (OSError, RuntimeError) as exc:
            att.launch = {}
            self._fail_attempt(s, job, att, f"launch failed: {exc}")
            return
        total = spec.max_restarts + 1
        start = f"restoring from step {att.restore_step}" if att.restore_step is not None else "fresh start"
        repo.set_state(s, job, JobState.STARTING, "launched",
                       f"attempt {number}/{total} launched: {spec.resources.workers} ranks on "
                       f"{self.backend.name} ({start})")

    def _code_dir(self, job: Job) -> Path:
        """The job's code, unpacked once from its archive and shared by its attempts."""
        code_dir = self.config.workdirs / job.id / "code"
        if job.code_digest and not code_dir.exists():
            archive = self.blobs.get(f"code/{job.code_digest.removeprefix('sha256:')}.tar.gz")
            tmp = code_dir.with_name("code.tmp")
            unpack_archive(archive, tmp)
            tmp.rename(code_dir)
        code_dir.mkdir(parents=True, exist_ok=True)
        return code_dir
