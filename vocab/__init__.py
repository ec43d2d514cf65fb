"""The names tokensweep records, declared once: every metric, param and tag of a trial's run.

A trial reports them (`trials`), the sweep logs them to MLflow (`tokensweep.tracking`), the export
writes them as typed columns and the dashboards read them back; each imports its names from here.
No dependencies, so every layer may import it; for the same reason it also holds what every layer
shares besides names: the user-error base (`vocab.errors`), the atomic file writer (`vocab.atomic`)
and how values are told apart and written as text (`vocab.values`: is_int, is_number, as_text).

Kinds:
    run     the run record: MLflow's run info and the sweep's bookkeeping (export columns)
    param   what defines a trial (MLflow params). An embedding's knobs are params too; they are
            declared with the embedding (`trials.plugins.Knob`), not here.
    epoch   metrics every epoch's report carries (MLflow metric history, step = epoch)
    final   metrics of the last report only: measured after training, or added by the sweep
    tag     where and how the figures were measured (MLflow tags)
"""

from dataclasses import dataclass

RUN, PARAM, EPOCH, FINAL, TAG = "run", "param", "epoch", "final", "tag"
TYPES = ("str", "int", "float", "bool", "time")


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # run | param | epoch | final | tag
    type: str  # str | int | float | bool | time
    label: str  # what a person reads on an axis or a column header
    better: str | None = None  # "max" | "min": the direction when it is an objective
    unit: str = ""  # "%", "img/s", "s", "MB", "J"...: throughput ("img/s") is drawn on a log axis
    measured: bool = False  # only present when the trial measures (TrialConfig.measure)


FIELDS = (
    # the run record
    Field("run_id", RUN, "str", "MLflow run id"),
    Field("run_name", RUN, "str", "run"),
    Field("trial_id", RUN, "str", "Tune trial id"),
    Field("status", RUN, "str", "status"),  # FINISHED | FAILED | RUNNING | KILLED | SCHEDULED
    Field("start_time", RUN, "time", "started"),
    Field("end_time", RUN, "time", "ended"),
    Field("parent_run_id", RUN, "str", "sweep run id"),
    Field("sweep_search", RUN, "str", "search"),  # grid | optuna (the sweep's)
    Field("config_id", RUN, "str", "configuration"),  # the same for every seed of one configuration
    # what defines a trial
    Field("model", PARAM, "str", "model"),
    Field("embedding", PARAM, "str", "embedding"),
    Field("backbone", PARAM, "str", "backbone"),
    Field("img_size", PARAM, "int", "image size", unit="px"),
    Field("epochs", PARAM, "int", "epochs"),
    Field("batch_size", PARAM, "int", "batch size"),
    Field("lr", PARAM, "float", "peak learning rate"),
    Field("seed", PARAM, "int", "seed"),
    Field("dataset", PARAM, "str", "data set"),
    Field("optuna_trial_number", PARAM, "int", "Optuna trial"),
    # every epoch
    Field("train_loss", EPOCH, "float", "training loss", "min"),
    Field("lr", EPOCH, "float", "learning rate at the epoch's end"),
    Field("val_loss", EPOCH, "float", "validation loss", "min"),
    Field("top1", EPOCH, "float", "top-1 accuracy (%)", "max", "%"),
    Field("top5", EPOCH, "float", "top-5 accuracy (%)", "max", "%"),
    Field("epoch_time_s", EPOCH, "float", "epoch time (s)", "min", "s"),
    Field("train_images_per_sec_epoch", EPOCH, "float", "training images/s in the epoch", "max", "img/s"),
    Field("bad_images", EPOCH, "int", "undecodable images skipped", "min"),  # ImageFolder data only
    # after the last epoch
    Field("params", FINAL, "int", "model parameters", "min", measured=True),
    Field("embed_params", FINAL, "int", "embedding parameters", "min", measured=True),
    Field("flops", FINAL, "float", "FLOPs per image", "min", measured=True),
    Field("images_per_sec", FINAL, "float", "inference throughput (images/s)", "max", "img/s", True),
    Field("train_images_per_sec", FINAL, "float", "training throughput (images/s)", "max", "img/s", True),
    Field("peak_mem_mb", FINAL, "float", "peak GPU memory (MB)", "min", "MB", True),  # CUDA only
    Field("joules_per_image", FINAL, "float", "energy (J/image)", "min", "J", True),  # NVML only
    Field("concurrent_trials", FINAL, "int", "other trials on the node while measured", "min"),
    Field("bench_images_per_sec", FINAL, "float", "inference throughput, benched alone (images/s)", "max", "img/s"),
    Field("bench_images_per_sec_ci_low", FINAL, "float", "bench throughput, 95% interval low", "max", "img/s"),
    Field("bench_images_per_sec_ci_high", FINAL, "float", "bench throughput, 95% interval high", "max", "img/s"),
    # an Optuna search's throughput objective: the trial's architecture benched alone on its node
    # what the trial cost: its run's wall time x the devices it held (GPUs, or cores on CPU), and the plan's estimate
    Field("device_hours", FINAL, "float", "device-hours (GPU-hours, or core-hours on CPU)", "min", "h"),
    Field("planned_device_hours", FINAL, "float", "planned device-hours", "min", "h"),
    Field("search_images_per_sec", FINAL, "float", "inference throughput, benched alone for the search (images/s)", "max", "img/s"),
    # where and how
    Field("device", TAG, "str", "device"),
    Field("precision", TAG, "str", "precision"),  # fp32 | bf16 | fp16
    Field("torch_version", TAG, "str", "torch"),
    Field("threads", TAG, "int", "CPU threads"),
    Field("bench_batch", TAG, "int", "measurement batch"),
    Field("gpu_shared", TAG, "bool", "shared GPU"),  # throughput measured while trials shared the GPU
    Field("data_form", TAG, "str", "data form"),  # original | resized_N | resized_N_predecoded
    Field("dataset_digest", TAG, "str", "data set digest"),  # trials.data.describe: the files (or generator) read
    Field("ray_node_id", TAG, "str", "Ray node"),
    Field("ray_hostname", TAG, "str", "host"),
    Field("cuda_visible_devices", TAG, "str", "GPUs held"),  # as Ray set it for the trial's worker; GPU trials only
    Field("failure_reason", TAG, "str", "failure reason"),
    Field("bench_device", TAG, "str", "bench device"),
    Field("bench_id", TAG, "str", "bench run"),
    Field("throughput_source", TAG, "str", "throughput the search was told"),  # the column Optuna scored
)

# A column the readers of a sweep add beside the bench figures (a list per run, not an MLflow metric):
# the per-repeat images/sec of the run's architecture in its bench, from the bench's table on the
# sweep's parent run. Differences of throughput are computed from it.
BENCH_REPEATS = "bench_repeat_images_per_sec"


# What a whole sweep found: metrics of its parent run (MLflow's run page lists them), not columns of a trial's row.
SWEEP_FIELDS = (
    Field("configurations", FINAL, "int", "configurations (seeds of one config_id grouped)"),
    Field("front_size", FINAL, "int", "configurations on the front of the means (top-1 vs images/s)"),
    Field("best_top1_mean", FINAL, "float", "the best configuration's mean top-1 (%)", "max", "%"),
    Field("best_top1_ci_low", FINAL, "float", "its 95% interval's low end (%)", "max", "%"),
    Field("best_top1_ci_high", FINAL, "float", "its 95% interval's high end (%)", "max", "%"),
    # what the sweep cost against its plan (tokensweep plan): actual / planned near 1 is a plan to trust
    Field("sweep_device_hours", FINAL, "float", "device-hours of the sweep's trials", "min", "h"),
    Field("planned_sweep_device_hours", FINAL, "float", "the plan's device-hours", "min", "h"),
    Field("device_hours_ratio", FINAL, "float", "device-hours, actual / planned"),
    Field("sweep_wall_s", FINAL, "float", "the sweep's wall time (s)", "min", "s"),
    Field("planned_wall_s", FINAL, "float", "the plan's wall time (s)", "min", "s"),
    Field("wall_ratio", FINAL, "float", "wall time, actual / planned"),
)


def of_kind(*kinds: str) -> tuple[Field, ...]:
    return tuple(f for f in FIELDS if f.kind in kinds)


def names(*kinds: str) -> tuple[str, ...]:
    return tuple(f.name for f in of_kind(*kinds))


def field(name: str, *kinds: str) -> Field | None:
    """The declaration of `name` (of one of `kinds`, if given); None if it is not declared."""
    return next((f for f in FIELDS if f.name == name and (not kinds or f.kind in kinds)), None)


EPOCH_METRICS = names(EPOCH)
FINAL_METRICS = names(FINAL)
METRICS = EPOCH_METRICS + FINAL_METRICS
MEASURED_METRICS = tuple(f.name for f in FIELDS if f.measured)
PARAMS = names(PARAM)
TAGS = names(TAG)
