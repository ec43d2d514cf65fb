"""trials.train.signals_held: an epoch's checkpoint and log line are written together, or neither."""

import os
import signal
import threading

import pytest

from trials.train.signals_held import signals_held


@pytest.mark.parametrize("signum, raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, SystemExit)])
def test_a_signal_inside_the_block_takes_effect_after_it(signum, raised):
    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    written = []
    try:
        with pytest.raises(raised):
            with signals_held():
                os.kill(os.getpid(), signum)
                written.append("checkpoint")  # still runs: the signal waits for the block's end
                written.append("log line")
        assert written == ["checkpoint", "log line"]
        assert signal.getsignal(signal.SIGTERM) is terminate and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_no_signal_no_change_and_other_threads_run_the_block_as_is():
    with signals_held():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ran = []

    def body():
        with signals_held():  # not the main thread: Python cannot set handlers here
            ran.append(True)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert ran == [True]
