"""A real MLflow sqlite store holding one small sweep in the platform's schema (the schema the platform promises).

A uniquely named module (not conftest) so that tests can import it whatever other test folders hold.
"""

import time
from dataclasses import dataclass
from pathlib import Path

EXPERIMENT = "tiny-sweep"
CHANNELS = "16,32,32,64,64,64"


@dataclass(frozen=True)
class Store:
    uri: str
    experiment: str
    parent_run_id: str
    run_ids: dict  # run name -> run id

    @property
    def db_dir(self) -> Path:
        return Path(self.uri.removeprefix("sqlite:///")).parent


def _trial(name, embedding, status="FINISHED", metrics=None, tags=None, **params):
    """(name, status, params, final metrics, extra tags) of one trial run."""
    base = dict(model=f"vit_tiny_{embedding}", embedding=embedding, img_size="32", epochs="2", batch_size="64",
                lr="0.002", seed="0", dataset="tiny", conv_depth="None", extra_conv="None", cluster_iters="None",
                channels="None", mask_border="None")
    base.update({k: str(v) for k, v in params.items()})
    return name, status, base, metrics or {}, tags or {}


trial = _trial  # for tests that build their own sweeps


FINAL = dict(top5=90.0, params=5.4e6, embed_params=1.2e4, flops=2.1e8, train_images_per_sec=300.0)

# name -> (status, params, final metrics). Chosen so the front is patch-fast, st-2 and st-3.
TRIALS = [
    _trial("patch-0", "patch", metrics=dict(FINAL, top1=40.0, images_per_sec=2000.0)),
    _trial("conv-0", "conv", metrics=dict(FINAL, top1=45.0, images_per_sec=1200.0, params=5.9e6)),
    _trial("st-2", "supertoken", metrics=dict(FINAL, top1=52.0, images_per_sec=1500.0), conv_depth=6,
           extra_conv="false", cluster_iters=2, channels=CHANNELS, mask_border="False"),
    _trial("st-3", "supertoken", metrics=dict(FINAL, top1=55.0, images_per_sec=1100.0), conv_depth=6,
           extra_conv="false", cluster_iters=3, channels=CHANNELS, mask_border="False"),
    _trial("st-1-failed", "supertoken", status="FAILED", metrics=dict(top1=12.0), conv_depth=6,
           extra_conv="false", cluster_iters=1, channels=CHANNELS, mask_border="False"),
    _trial("st-4-no-speed", "supertoken", metrics=dict(FINAL, top1=60.0), conv_depth=6, extra_conv="true",
           cluster_iters=4, channels=CHANNELS, mask_border="true"),
]


def make_store(root, experiment=EXPERIMENT, trials=TRIALS, search=None, db_dir=None) -> Store:
    """The sweep as experiment `experiment` in root/mlflow.db (or db_dir/mlflow.db), artifacts under root.

    Creating a sqlite store costs seconds (MLflow's schema migrations): tests share one database
    and get an experiment of their own.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    uri = f"sqlite:///{(db_dir or root) / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp_id = client.create_experiment(experiment, artifact_location=(root / "artifacts").as_uri())
    sweep_tags = {"tokensweep.role": "sweep", **({"tokensweep.search": search} if search else {})}
    parent = client.create_run(exp_id, run_name=experiment, tags=sweep_tags).info.run_id
    run_ids = {}
    for number, (name, status, params, metrics, extra_tags) in enumerate(trials):
        tags = {"mlflow.parentRunId": parent, "tokensweep.role": "trial", "trial_id": f"trial_{number:03d}",
                "device": "cpu: Test CPU", "precision": "fp32", "torch_version": "2.13.0", "gpu_shared": "false",
                **extra_tags}
        if status == "FAILED":
            tags["failure_reason"] = "NonFiniteLoss: loss became nan at epoch 1"
        run_id = client.create_run(exp_id, run_name=name, tags=tags).info.run_id
        now = int(time.time() * 1000)
        history = [Metric(k, v - 1, now, 1) for k, v in metrics.items() if k in ("top1", "top5")]  # epoch 1
        latest = [Metric(k, v, now, 2) for k, v in metrics.items()]
        params = {**params, **({"optuna_trial_number": str(number)} if search == "optuna" else {})}
        client.log_batch(run_id, metrics=history + latest, params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag("mlflow.source.name", "tokensweep")])
        if status != "RUNNING":
            client.set_terminated(run_id, status)
        run_ids[name] = run_id
        time.sleep(0.002)  # distinct start times: the table's order is start order
    client.set_terminated(parent, "FINISHED")
    return Store(uri, experiment, parent, run_ids)
