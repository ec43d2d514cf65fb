"""Every shell command the docs show has an entry in HOW (tests/support/documented.py), and the rules
that find them in the docs hold."""

from documented import HOW, NOT_HERE, RUN, SERVE, VARIANT, chatter, documented, join_lines, strip_comment


def test_every_documented_command_is_handled():
    found = documented()
    new = sorted(set(found) - set(HOW))
    gone = sorted(set(HOW) - set(found))
    assert not new, "documented commands this test neither runs nor explains:\n" + "\n".join(f"  {c}   ({', '.join(found[c])})" for c in new)
    assert not gone, "entries for commands no longer documented:\n" + "\n".join(f"  {c}" for c in gone)
    for command, (kind, detail) in HOW.items():
        assert kind in (RUN, SERVE, VARIANT, NOT_HERE), command
        assert kind not in (VARIANT, NOT_HERE) or detail, f"{command}: say what runs instead, or why not"


def test_extraction_rules():
    assert strip_comment("tokensweep run x.toml   # a comment") == "tokensweep run x.toml"
    assert strip_comment("echo 'a # b' # c") == "echo 'a # b'"
    assert strip_comment("open http://h/#/experiments/1") == "open http://h/#/experiments/1"
    assert join_lines(["ray submit a \\", "    b c  # x", "", "# only a comment", "d"]) == ["ray submit a b c", "d"]


def test_chatter_is_found_in_a_default_sweep_only():
    assert chatter("tokensweep run s.toml", "[I 2026-12-01 15:53:51,517] A new study created") != []
    assert chatter("tokensweep run s.toml", "x.py:44: ExperimentalWarning: experimental\n  study.set(names)") != []
    assert chatter("tokensweep run s.toml", "(TrainTrial pid=123) epoch 1") != []
    assert chatter("tokensweep run s.toml", "sweep 'smoke': 4 trial(s), 4 finished, 0 failed") == []
    assert chatter("tokensweep run s.toml -v", "(TrainTrial pid=123) epoch 1") == []  # -v shows Ray's own lines
    assert chatter("tokensweep trial --smoke", "Traceback") == []  # only sweeps' default output is held to it
