"""The README's two commands, tools/run.sh and tools/test.sh, on a copy of
the tree whose apt-get, dpkg-query and python3 are stand-ins that log what
they were asked: both commands use one .venv, say each step, and a second
run installs nothing."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from support import ROOT

RUN_PACKAGES = ["python3-venv", "libportaudio2"]


# Each stand-in appends one line to $LOG; apt-get "installs" into $STATE,
# which dpkg-query reads. python3 -m venv makes a .venv whose python logs
# too, and whose pip install puts an rt-mer command in it.
STUBS = {
    "apt-get": """#!/bin/bash
echo "apt-get $*" >>"$LOG"
if [ "$1" = install ]; then for a in "$@"; do case $a in -*|install) ;; *) echo "$a" >>"$STATE" ;; esac; done; fi
""",
    "dpkg-query": """#!/bin/bash
grep -qx "${@: -1}" "$STATE" 2>/dev/null && printf installed
""",
    "sudo": """#!/bin/bash
exec "$@"
""",
    "python3": """#!/bin/bash
echo "python3 $*" >>"$LOG"
[ "$1 $2" = "-m venv" ] || exit 1
mkdir -p "$3/bin"
cat >"$3/bin/python" <<'PY'
#!/bin/bash
echo "venv-python $*" >>"$LOG"
if [ "$2 $3" = "pip install" ]; then
    printf '#!/bin/bash\\necho "venv-rt-mer $*" >>"$LOG"\\n' >"$(dirname "$0")/rt-mer"
    chmod +x "$(dirname "$0")/rt-mer"
fi
PY
chmod +x "$3/bin/python"
""",
}


@pytest.fixture
def tree(tmp_path):
    """A copy of the tools and pyproject.toml, with the stand-ins on PATH."""
    root = tmp_path / "rt-mer"
    (root / "tools").mkdir(parents=True)
    for name in ("run.sh", "test.sh", "install.sh"):
        shutil.copy(ROOT / "tools" / name, root / "tools" / name)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, text in STUBS.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(stat.S_IRWXU)
    return root


def command(tree, script, *args):
    """Runs tools/`script`; (the lines logged, stderr)."""
    log, state = tree.parent / "log", tree.parent / "state"
    log.write_text("")
    env = dict(os.environ, PATH=f"{tree.parent / 'bin'}:{os.environ['PATH']}", LOG=str(log), STATE=str(state))
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(["bash", str(tree / "tools" / script), *args], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return log.read_text().splitlines(), result.stderr


def test_run_says_each_step_and_a_second_run_installs_nothing(tree):
    log, stderr = command(tree, "run.sh", "--hop", "0.25")
    assert log == ["apt-get update -qq",
                   f"apt-get install -y -qq --no-install-recommends {' '.join(RUN_PACKAGES)}",
                   "python3 -m venv .venv",
                   "venv-python -m pip install -q --disable-pip-version-check -e .[app]",
                   "venv-rt-mer run --hop 0.25"]
    steps = stderr.splitlines()
    assert steps[0] == f"rt-mer: installing Debian packages: {' '.join(RUN_PACKAGES)}..."
    assert steps[1:3] == ["rt-mer: creating .venv...",
                          "rt-mer: installing rt-mer[app] into .venv (the first time takes minutes)..."]
    assert steps[3].startswith("rt-mer: starting rt-mer run")

    log, stderr = command(tree, "run.sh")
    assert log == ["venv-rt-mer run"]
    assert "installing" not in stderr and "creating" not in stderr


def test_tests_use_the_same_venv_and_install_only_what_is_missing(tree):
    command(tree, "run.sh")
    log, _ = command(tree, "test.sh", "-x", "tests/e2e/test_cli.py")
    installed = log[1].split()
    assert log[0] == "apt-get update -qq" and installed[:5] == "apt-get install -y -qq --no-install-recommends".split()
    assert {"chromium", "zstd", "fluidsynth", "tmux"} <= set(installed) and not set(RUN_PACKAGES) & set(installed)
    assert log[2:] == ["venv-python -m pip install -q --disable-pip-version-check -e .[test]",
                       "venv-python -m pytest -x tests/e2e/test_cli.py"]      # no venv made, no global pip

    log, _ = command(tree, "test.sh", "--fast", "-q")
    assert log == ["venv-python -m pytest -m not slow -n auto -q"]


def test_changed_dependencies_are_installed_again(tree):
    command(tree, "run.sh")
    with open(tree / "pyproject.toml", "a") as f:
        f.write("\n# a changed dependency\n")
    log, stderr = command(tree, "run.sh")
    assert log == ["venv-python -m pip install -q --disable-pip-version-check -e .[app]", "venv-rt-mer run"]
