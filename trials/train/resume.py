"""Resuming a trial from its checkpoint: checked before the weights are loaded.

`restore(directory, config, model, optimizer, scaler)` loads the checkpoint (checkpoint.py: one line
for a file that is missing, empty, truncated or holds code), then checks that it is a trial's
checkpoint, of this model (architecture settings, then every weight's name and shape), at an epoch
this trial can continue from; then loads the optimizer state (checked by loading it), weights and
scaler. Each problem is one ConfigError line naming the checkpoint, what is wrong and what would be
right, never a traceback from load_state_dict.

Epochs: a checkpoint before `epochs` is continued. One at `epochs` is a finished trial: its saved
metrics are the result, provided they are the end of a run of that length (the learning-rate
schedule ran out there) and hold the final measurements when this trial asks for them. One past
`epochs` is refused: its weights have trained longer than this trial may, and returning its metrics
would record a longer run's result under a shorter one's settings.
"""

import torch

from trials.errors import ConfigError
from trials.models.catalog import all_knobs
from trials.train.checkpoint import FILENAME, load_checkpoint

STATE_TYPES = {"epoch": int, "model": dict, "optimizer": dict, "scaler": dict, "metrics": dict, "config": dict}
SHOW = 3  # keys named in a message; the rest are counted


def restore(directory, config, model, optimizer, scaler) -> tuple[int, dict]:
    """(epoch, metrics) of the checkpoint in `directory`, its state loaded into model, optimizer, scaler."""
    state = load_checkpoint(directory)
    where = f"checkpoint in {str(directory)!r}"
    check_resumable(state, config, model, where)
    load_optimizer(optimizer, state["optimizer"], where)  # (checked by loading it: torch's own checks, then shapes)
    model.load_state_dict(state["model"])
    if state["scaler"]:  # an fp32 run saves an empty scaler: resumed with fp16, a fresh one starts
        try:
            scaler.load_state_dict(state["scaler"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ConfigError(
                f"{where}: its gradient scaler state is malformed ({_why(err)}); start without resuming"
            ) from None
    return state["epoch"], dict(state["metrics"])


def check_resumable(state, config, model, where: str) -> None:
    """ConfigError unless `state` is a trial checkpoint this config and model can continue (or end) with."""
    check_structure(state, where)
    check_architecture(state["config"], config, where)
    check_weights(state["model"], model, config.model, where)
    check_epoch(state, config, where)


def check_structure(state, where: str) -> None:
    if not isinstance(state, dict):
        raise ConfigError(
            f"{where} holds a {type(state).__name__}, not a trial checkpoint ({FILENAME} with {_names(STATE_TYPES)})"
        )
    missing = [k for k in STATE_TYPES if k not in state]
    wrong = [k for k, kind in STATE_TYPES.items() if k in state and not isinstance(state[k], kind)]
    if missing or wrong:
        problems = [f"lacks {_names(missing)}"] if missing else []
        problems += [f"wrong type of {_names(wrong)}"] if wrong else []
        holds = ", ".join(f"{k} ({t.__name__})" for k, t in STATE_TYPES.items())
        raise ConfigError(f"{where} is not a trial checkpoint: {'; '.join(problems)} (a trial's checkpoint holds {holds})")
    if state["epoch"] < 1:
        raise ConfigError(f"{where} is at epoch {state['epoch']}; a trial writes its first checkpoint after epoch 1")


def check_architecture(saved: dict, config, where: str) -> None:
    """The settings that decide the model's shape: the model, its input size and every knob (of either side)."""
    if "model" not in saved:
        raise ConfigError(f"{where} does not say which model it was trained with; this trial has model={config.model!r}")
    ours_all = config.to_dict()
    for key in ("model", "img_size", *sorted((set(saved) | set(ours_all)) & set(all_knobs()))):
        ours = ours_all.get(key)
        theirs = tuple(saved[key]) if isinstance(saved.get(key), list) else saved.get(key)
        if ours != theirs:
            raise ConfigError(f"{where} was trained with {key}={theirs!r}, this trial has {key}={ours!r}")


def check_weights(saved: dict, model: torch.nn.Module, model_name: str, where: str) -> None:
    """Every weight of the model present, with its shape, and nothing else (what load_state_dict needs)."""
    ours = model.state_dict()
    missing = [k for k in ours if k not in saved]
    unexpected = [k for k in saved if k not in ours]
    not_tensors = [k for k in saved if k in ours and not isinstance(saved[k], torch.Tensor)]
    shapes = [
        f"{k} {list(saved[k].shape)} vs {list(ours[k].shape)}"
        for k in ours
        if k in saved and isinstance(saved[k], torch.Tensor) and saved[k].shape != ours[k].shape
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("not tensors", not_tensors)):
        if keys:
            problems.append(f"{label} {_names(keys)}")
    if shapes:
        problems.append(f"shape of {_names(shapes)} (checkpoint vs this trial)")
    if problems:
        raise ConfigError(
            f"{where}: model weights do not match {model_name}: {'; '.join(problems)}; resume from a checkpoint "
            f"this model wrote on data with the same classes, or start without resuming"
        )


def check_epoch(state: dict, config, where: str) -> None:
    epoch, saved = state["epoch"], state["config"]
    if epoch > config.epochs:
        raise ConfigError(
            f"{where} is at epoch {epoch}, past epochs={config.epochs} of this trial: "
            f"resume with epochs >= {epoch}, or start without resuming"
        )
    if epoch < config.epochs:
        return  # continued from epoch + 1
    run_length = saved.get("epochs", epoch)
    if run_length != epoch:
        raise ConfigError(
            f"{where} is epoch {epoch} of a {run_length}-epoch run, not the end of a {epoch}-epoch one "
            f"(its learning-rate schedule had not run out): resume with epochs={run_length}, or start without resuming"
        )
    if config.measure and not saved.get("measure", False):
        raise ConfigError(
            f"{where} is a finished {epoch}-epoch trial run with measure=false: it holds no final measurements "
            "(params, FLOPs, images/sec); start without resuming to measure, or resume with measure=false"
        )


def load_optimizer(optimizer: torch.optim.Optimizer, saved: dict, where: str) -> None:
    try:
        optimizer.load_state_dict(saved)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
        raise ConfigError(
            f"{where}: its optimizer state does not fit this model ({_why(err)}); start without resuming"
        ) from None
    for group in optimizer.param_groups:
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                    raise ConfigError(
                        f"{where}: its optimizer state {name} has shape {list(value.shape)} for a weight of shape "
                        f"{list(param.shape)}; start without resuming"
                    )


def _names(keys) -> str:
    keys = list(keys)
    more = f" (+{len(keys) - SHOW} more)" if len(keys) > SHOW else ""
    return ", ".join(keys[:SHOW]) + more


def _why(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
