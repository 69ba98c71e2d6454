"""tests/forkserver.py: a child of the fork server is the process a fresh interpreter would be, for what the tests
rely on. Each probe runs twice, forked and as a real ``subprocess`` (the reference), and the two must agree."""

import json
import os
import subprocess
import sys
import textwrap

import forkserver
import pytest

NEVER = list(forkserver.NEVER)
PROBE = textwrap.dedent(f"""
    import json, os, sys
    before = sorted({{m.split(".")[0] for m in sys.modules}} & set({NEVER!r}))  # what the process had imported
    import huggingface_hub.constants as hub
    print(json.dumps({{"argv": sys.argv, "path": sys.path[:2], "cwd": os.getcwd(), "main": __name__,
                      "before": before, "endpoint": hub.ENDPOINT, "hf_home": hub.HF_HOME, "offline": hub.HF_HUB_OFFLINE,
                      "stdin_tty": sys.stdin.isatty(), "buffering": [(s.line_buffering, s.write_through) for s in (sys.stdout, sys.stderr)],
                      "encoding": sys.stdout.encoding}}))
    print("to stderr", file=sys.stderr)
    sys.exit(int(sys.argv[1]))
""")


def both(argv, **kwargs):
    """The same command forked and as a real subprocess: (forked, real) CompletedProcess."""
    assert forkserver.served(argv)
    forked = forkserver.run(argv, **kwargs)
    real = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=kwargs.get("env"),
                          cwd=kwargs.get("cwd"), timeout=kwargs.get("timeout"))
    return forked, real


def test_a_forked_child_sees_what_a_fresh_interpreter_sees(tmp_path):
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:7", "HF_HOME": str(tmp_path / "home"),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(tmp_path / "lib")}
    forked, real = both([sys.executable, "-c", PROBE, "3"], env=env, cwd=tmp_path, timeout=120)
    assert (forked.returncode, forked.stderr) == (real.returncode, real.stderr) == (3, "to stderr\n")
    seen = json.loads(forked.stdout)
    assert seen == json.loads(real.stdout)
    assert seen["before"] == [] and seen["argv"] == ["-c", "3"] and seen["main"] == "__main__"
    assert seen["path"] == ["", str(tmp_path / "lib")] and seen["cwd"] == str(tmp_path)
    assert (seen["endpoint"], seen["hf_home"], seen["offline"]) == ("http://127.0.0.1:7", str(tmp_path / "home"), True)


def test_scripts_modules_console_scripts_and_failures_end_as_in_a_fresh_interpreter(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text("import sys\nprint(sys.argv[1:], sys.path[0] == sys.argv[0].rsplit('/', 1)[0])\n"
                      "raise ValueError('boom')\n")
    forked, real = both([sys.executable, str(script), "a"], cwd=tmp_path, timeout=60)
    assert (forked.returncode, forked.stdout) == (real.returncode, real.stdout) == (1, "['a'] True\n")
    assert forked.stderr == real.stderr and forked.stderr.endswith("ValueError: boom\n")  # the same traceback
    forked, real = both([sys.executable, "-m", "json.tool", "--sort-keys"], cwd=tmp_path, timeout=60)
    assert (forked.returncode, forked.stdout, forked.stderr) == (real.returncode, real.stdout, real.stderr)
    console = tmp_path / "console"  # a console script of this interpreter, as pip writes one
    console.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(sys.argv[1:] == ['x'] and 5)\n")
    console.chmod(0o755)
    forked, real = both([str(console), "x"], timeout=60)
    assert forked.returncode == real.returncode == 5


def test_children_get_their_own_random_state_and_can_be_killed_or_timed_out():
    draw = [sys.executable, "-c", "import numpy as np, random; print(np.random.random(), random.random())"]
    first, second = forkserver.run(draw).stdout, forkserver.run(draw).stdout
    assert first != second and all(v != w for v, w in zip(first.split(), second.split()))
    sleeper = forkserver.popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert sleeper.poll() is None
    sleeper.kill()
    assert sleeper.wait(timeout=10) == -9
    with pytest.raises(subprocess.TimeoutExpired):
        forkserver.run([sys.executable, "-c", "import time; time.sleep(60)"], timeout=0.5)


def test_other_programs_and_the_switch_off_run_as_real_subprocesses(monkeypatch):
    assert not forkserver.served(["torchrun", "--nproc_per_node", "2", "x.py"])
    true = forkserver.popen(["true"])
    assert isinstance(true, subprocess.Popen) and true.wait(timeout=10) == 0
    monkeypatch.setenv("HF_W2S_TESTS_FORKSERVER", "0")
    assert not forkserver.served([sys.executable, "-c", "pass"])
    plain = forkserver.popen([sys.executable, "-c", "pass"])
    assert isinstance(plain, subprocess.Popen) and plain.wait(timeout=60) == 0
