"""The tags the sweep platform writes on MLflow runs and experiments, declared once (no MLflow import).

A trial's own names (metrics, params, measurement tags) are in `vocab`; these are the platform's
bookkeeping: which run is a sweep and which a trial, how they link, how a trial ended.
"""

# MLflow's own tags, which its UI reads
PARENT = "mlflow.parentRunId"
GIT_COMMIT = "mlflow.source.git.commit"
NOTE = "mlflow.note.content"
SOURCE_NAME = "mlflow.source.name"
SOURCE_TYPE = "mlflow.source.type"
EXPERIMENT_KIND = "mlflow.experimentKind"
DATASET_CONTEXT = "mlflow.data.context"  # a dataset input's role ("training")

# The experiment type MLflow's UI records for a model-training experiment (its "Machine learning"
# kind; "genai_development" is the GenAI one). MLflow 3.17.2's UI picks the experiment page from its
# sidebar switch (GenAI / Model training, default GenAI) or the URL's ?workflowType=, not from this
# tag: runs_url() is the link that opens the runs.
KIND_MODEL_TRAINING = "custom_model_development"
SOURCE_TYPE_LOCAL = "LOCAL"  # MLflow's SourceType for a process started on a machine (not a notebook or job)


def source_tags(spec_source: str) -> dict:
    """The run's Source column: the spec file (MLflow shows its base name, e.g. smoke.toml)."""
    return {SOURCE_NAME: spec_source, SOURCE_TYPE: SOURCE_TYPE_LOCAL}


def runs_url(server: str, experiment_id: str) -> str:
    """The experiment's runs in MLflow's UI, on its model-training side."""
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"

# every run of a sweep
ROLE = "tokensweep.role"  # "sweep" (the parent) | "trial" (a child)
SWEEP = "tokensweep.sweep"  # the sweep's name (also the experiment's)

# the parent run
SEARCH = "tokensweep.search"  # grid | optuna
SWEEP_ID = "tokensweep.sweep_id"  # the id in the sweep's Tune folder: how a resumed sweep finds its parent, wherever the folder moved
TUNE_PATH = "tokensweep.tune_path"  # Tune's experiment folder, where the sweep last ran (the parent of a sweep without an id)
COMMAND = "tokensweep.command"
RESUME_COMMAND = "tokensweep.resume_command"
RESUMES = "tokensweep.resumes"
SPEC_SHA256 = "tokensweep.spec_sha256"
TRIALS = "tokensweep.trials"
DIRTY_COMMIT = "tokensweep.git_commit"  # the commit, "-dirty" when tracked files had changes
FAILED_TRIALS = "tokensweep.failed_trials"
UNFINISHED_TRIALS = "tokensweep.unfinished_trials"
BUDGET_NOT_STARTED = "tokensweep.budget_not_started"  # the trials [sweep] budget_hours left unstarted
STOPPED = "tokensweep.stopped"  # why a sweep stopped before its end ("interrupted", "terminated")
TRACKING_ERRORS = "tokensweep.tracking_errors"
TIME_PREFIX = "tokensweep.time."  # + phase: seconds spent in each phase of the sweep
TUNE_STARTED = "tokensweep.tune_started_at"  # unix time when Tune started: what came before is start-up
BENCHES = "tokensweep.benches"  # how many benches were started on the sweep (each bench's metric step)
BENCH_STAGE = "tokensweep.bench_stage"  # the bench_id of the sweep's own bench stage
BENCH_STATUS = "tokensweep.bench_status"  # of the stage: measuring | recording | finished | failed | disabled
BENCH_FAILURE = "tokensweep.bench_failure"  # why the stage failed (the training results stay)
CONFIRM_TRIALS = "tokensweep.confirm_trials"  # optuna: confirmation trials run for the front's configurations

# a trial's run
TRIAL_ID = "trial_id"  # Tune's trial id: stable across Tuner.restore, so a resumed trial finds its run
CONFIG_ID = "tokensweep.config_id"  # the same for every seed of one configuration
ARCH_ID = "tokensweep.arch_id"  # the same for every trial of one architecture (what the bench measures)
BENCH_STEPS = "tokensweep.bench_steps"  # JSON {metric step: bench_id} of the benches logged to the run
VARIANT = "tokensweep.variant"  # a grid trial's variant (its index in the spec): found again if Tune's state lost it
PREVIOUS_TRIAL_ID = "tokensweep.previous_trial_id"  # the trial id the run had before a resume gave it a new one
INTERRUPTED_AT_EPOCH = "tokensweep.interrupted_at_epoch"  # the last epoch logged when the sweep stopped under it
CHECKPOINT_EPOCH = "tokensweep.checkpoint_epoch"
RESUME_NOTE = "tokensweep.resume_note"  # a trial resumed from another checkpoint than the one Tune named: why
STOPPED_EARLY = "tokensweep.stopped_early"
STOPPED_AT_EPOCH = "tokensweep.stopped_at_epoch"
RETRIES = "tokensweep.retries"
LAST_FAILURE = "tokensweep.last_failure"
PREVIOUS_FAILURE = "tokensweep.previous_failure"
FAILURE_REASON = "failure_reason"  # also a vocab tag: the export's column of the same name
