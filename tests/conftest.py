"""Session-wide: SIGINT as a terminal gives it.

A test run started in the background by a non-interactive shell (`scripts/test &` in a script, nohup)
ignores SIGINT, and every process it starts inherits that (an ignored signal survives exec): the tests
that press Ctrl-C on a `tokensweep trial` would wait for a process that rightly ignores it. A handler
does not survive exec, so with one here the tests' processes start with SIGINT's default again."""

import signal

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
