"""Evaluation gates: what a version's evaluation job is, and how its outcome is judged.

A PENDING version needs its evaluation job (the model's entrypoint and code,
its dataset snapshot, the version's checkpoint in the hyperparameters); a
RUNNING one is judged once its job ends: the job's last metrics against the
rule and the champion's metrics. `control.evaluations` submits the jobs and
calls `judge` on every pass; everything here reads and writes the store only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from trainyard.principal import Principal
from trainyard.registry import rules
from trainyard.registry.aliases import champion
from trainyard.registry.models import RegistryError, add_event, get_model, resolve, writable
from trainyard.registry.spec import EvaluationSpec
from trainyard.spec import JobSpec, JobState, parse_job_spec
from trainyard.store import repo
from trainyard.store.registry_tables import Model, ModelVersion
from trainyard.store.tables import Job

DRIVER = "trainyard"  # the actor of what the driver does


def evaluation_job(model: Model, row: ModelVersion, run: Job) -> tuple[JobSpec, dict[str, Any] | None]:
    """The job that evaluates `row`, in the model's team: the training run's hyperparameters (to
    rebuild the model), the evaluation's own, and which checkpoint to load."""
    ev = EvaluationSpec.model_validate(model.evaluation)
    hparams = {**(run.spec.get("hyperparameters") or {}), **ev.hyperparameters,
               "checkpoint_uri": row.checkpoint_uri, "checkpoint_step": row.checkpoint_step,
               "model_version": f"{model.name}@v{row.version}"}
    spec = parse_job_spec({
        "name": f"eval-{model.name[:48]}-v{row.version}", "team": model.team, "project": model.project,
        "entrypoint": ev.entrypoint, "dataset": ev.dataset, "hyperparameters": hparams,
        "resources": ev.resources.model_dump(), "max_restarts": ev.max_restarts,
        "heartbeat_timeout_s": ev.heartbeat_timeout_s,
        "labels": {"model": model.name, "model_version": str(row.version), "evaluates_run": row.run_id},
    })
    code = ({"digest": model.code_digest, "git_commit": model.code_git_commit,
             "git_dirty": model.code_git_dirty} if model.code_digest else None)
    return spec, code


def request(s: Session, who: Principal, model_name: str, which: str) -> ModelVersion:
    """Evaluate a version (again), which takes the member role in the model's team: it goes back to
    PENDING and the driver starts a job."""
    model = writable(s, who, model_name, "evaluate its versions")
    row = resolve(s, model_name, which)
    actor = who.name
    if model.evaluation is None:
        raise RegistryError("model", f"model {model.name} declares no evaluation; add one to its model.yaml "
                                     "and run `yard models create` again")
    if row.eval_state in ("PENDING", "RUNNING"):
        raise RegistryError("version", f"v{row.version}'s evaluation is already {row.eval_state.lower()}")
    row.eval_state, row.eval_job_id, row.eval_reason = "PENDING", None, "waiting to start the evaluation job"
    add_event(s, model.name, "evaluation_requested", f"v{row.version}: evaluation requested by {actor}", actor,
              version=row.version)
    return row


def finish(s: Session, row: ModelVersion, passed: bool, reason: str) -> None:
    """The evaluation's verdict, with its event in the model's history."""
    row.eval_state, row.eval_reason = ("PASSED" if passed else "FAILED"), reason
    add_event(s, row.model, "evaluation_passed" if passed else "evaluation_failed",
              f"v{row.version} {'passed' if passed else 'failed'} its evaluation: {reason}", DRIVER,
              version=row.version)


def judge(s: Session, row: ModelVersion) -> None:
    """Once the evaluation job has ended: PASSED or FAILED, with every comparison in the reason."""
    job = repo.get_job(s, row.eval_job_id or "")
    state = JobState(job.state)
    if not state.terminal:
        return
    if state != JobState.SUCCEEDED:
        finish(s, row, False, f"evaluation job {job.id} {state.lower()}: {job.reason}")
        return
    model = get_model(s, row.model)
    metrics = {k: v["value"] for k, v in repo.last_metrics(s, job.id).items() if not k.startswith("system/")}
    row.eval_metrics = metrics
    champ = champion(s, model)
    against = champ if champ is not None and champ.version != row.version and champ.eval_metrics else None
    verdict = rules.evaluate(rules.parse((model.evaluation or {})["rule"]), metrics,
                             against.eval_metrics if against else None)
    who = f"champion v{against.version}" if against else "no champion"
    finish(s, row, verdict.passed, f"{verdict.reason} (job {job.id}, against {who})")
