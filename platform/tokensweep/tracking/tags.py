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
TUNE_PATH = "tokensweep.tune_path"  # Tune's experiment folder: how a resumed sweep finds its parent
COMMAND = "tokensweep.command"
RESUME_COMMAND = "tokensweep.resume_command"
RESUMES = "tokensweep.resumes"
SPEC_SHA256 = "tokensweep.spec_sha256"
TRIALS = "tokensweep.trials"
DIRTY_COMMIT = "tokensweep.git_commit"  # the commit, "-dirty" when tracked files had changes
FAILED_TRIALS = "tokensweep.failed_trials"
UNFINISHED_TRIALS = "tokensweep.unfinished_trials"
STOPPED = "tokensweep.stopped"  # why a sweep stopped before its end ("interrupted", "terminated")
TRACKING_ERRORS = "tokensweep.tracking_errors"
TIME_PREFIX = "tokensweep.time."  # + phase: seconds spent in each phase of the sweep
TUNE_STARTED = "tokensweep.tune_started_at"  # unix time when Tune started: what came before is start-up

# a trial's run
TRIAL_ID = "trial_id"  # Tune's trial id: stable across Tuner.restore, so a resumed trial finds its run
CONFIG_ID = "tokensweep.config_id"  # the same for every seed of one configuration
CHECKPOINT_EPOCH = "tokensweep.checkpoint_epoch"
STOPPED_EARLY = "tokensweep.stopped_early"
STOPPED_AT_EPOCH = "tokensweep.stopped_at_epoch"
RETRIES = "tokensweep.retries"
LAST_FAILURE = "tokensweep.last_failure"
PREVIOUS_FAILURE = "tokensweep.previous_failure"
FAILURE_REASON = "failure_reason"  # also a vocab tag: the export's column of the same name
