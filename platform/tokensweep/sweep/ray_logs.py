"""Ray's log records that carry a traceback where one line says it all.

Tune logs a failed save of its experiment state (a full or unreachable storage) with the whole traceback
of pyarrow's copy, every few seconds while the fault lasts; the sweep's output should show the fault,
not bury it: the record keeps its message and gains the exception's own line instead of the traceback.
"""

from __future__ import annotations

import logging

ONE_LINE_LOGGERS = ("ray.tune.execution.experiment_state",)


class OneLineErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            err = record.exc_info[1]
            record.msg = f"{record.getMessage().rstrip(': ')}: {type(err).__name__}: {' '.join(str(err).split())}"
            record.args = None
            record.exc_info = record.exc_text = record.stack_info = None
        return True


def one_line_ray_errors() -> None:
    for name in ONE_LINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineErrors) for f in logger.filters):
            logger.addFilter(OneLineErrors())
