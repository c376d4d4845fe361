"""The README's tour, run line by line as written, on a fresh copy of the repository.

What a new user does: open a shell in a fresh clone (``make`` has made ``.venv``), type each
line of the tour's shell block in order, and read what it prints.  This test does the same
in one persistent ``bash``, so ``. .venv/bin/activate``, ``&`` and ``kill %1`` mean what they
mean at a prompt; the copy holds the checkout's tracked and untracked (not ignored) files and
nothing generated, and ``LOOTLAB_DATA`` is the copy's own ``data/`` as in a clone.

How the README's lines are read:

- every line must exit 0 (a background line: be started);
- a comment's backquoted spans are what the line prints (each must appear in its output);
  for a line that ends in ``&`` the test waits (with a deadline) until the background
  command has printed them, as a person waits for a server's "serving" line;
- ``health: VALID`` in a comment also accepts ``health: INVALID`` followed by its reasons
  (``  - ...``): a machine busier than ours may not keep a schedule, and then the run must
  say why, which is the feature shown;
- a line whose comment says "not run by the tour test" (it needs ``make report``'s
  reports/) is skipped, and only such lines;
- the ports the tour names (50051, 8080) are swapped for free ones only if something else
  on this machine holds them, since other tests run alongside.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lootlab.conditions import cgroup
from lootlab.profiling import perf_unavailable

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SKIP_MARK = "not run by the tour test"
#: seconds a line may take: a quick report measures for minutes on a busy 2-core machine
LINE_TIMEOUT = 300.0
REPORT_TIMEOUT = 1200.0
#: seconds a background command may take to print what the README says it prints
READY_TIMEOUT = 120.0


@dataclass
class Line:
    """One line of the tour: the command, what its comment says it prints, and how to run it."""

    command: str
    expect: list[str] = field(default_factory=list)
    skipped: bool = False

    @property
    def background(self) -> bool:
        return self.command.rstrip().endswith("&")


def _split_comment(line: str) -> tuple[str, str]:
    """``command  # comment`` -> (command, comment); a ``#`` inside quotes is not one."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def tour_lines(text: str) -> list[Line]:
    """The shell block under the README's "A tour" heading, one ``Line`` per command."""
    section = text.split("\n## A tour", 1)[1]
    block = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M).group(1)
    lines = []
    for raw in block.splitlines():
        command, comment = _split_comment(raw)
        if not command:
            continue
        lines.append(Line(command, re.findall(r"`([^`]+)`", comment), SKIP_MARK in comment))
    return lines


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_free_ports(lines: list[Line]) -> list[Line]:
    """The tour with its ports swapped for free ones where something else holds them."""
    out = lines
    if not _port_free(8080):
        port = str(_free_port())
        out = [Line(ln.command.replace("8080", port), [e.replace("8080", port) for e in ln.expect],
                    ln.skipped) for ln in out]
    if not _port_free(50051):
        port = str(_free_port())

        def move(ln: Line) -> Line:
            cmd = ln.command
            if cmd.startswith("lootlab serve") and "--http" not in cmd and "--port" not in cmd:
                cmd = re.sub(r"\s*&$", f" --port {port} &", cmd) if ln.background \
                    else f"{cmd} --port {port}"
            return Line(cmd, [e.replace("50051", port) for e in ln.expect], ln.skipped)

        out = [move(ln) for ln in out]
    return out


def fresh_copy(dest: Path) -> Path:
    """The checkout as a clone of it would hold it (plus uncommitted work): no venv, no data."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    # the venv `make` would have made: this interpreter's own
    venv = Path(sys.prefix)
    if (venv / "bin" / "activate").is_file():
        (dest / ".venv").symlink_to(venv, target_is_directory=True)
    else:   # a conda or system interpreter: an activate script that puts it on PATH
        (dest / ".venv" / "bin").mkdir(parents=True)
        (dest / ".venv" / "bin" / "activate").write_text(
            f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    return dest


class Shell:
    """One ``bash`` fed a line at a time: each line's output to its own file, its status back."""

    def __init__(self, cwd: Path, env: dict[str, str], logs: Path) -> None:
        self.logs = logs
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.said: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.n = 0

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.said.put(line)

    def run(self, command: str, timeout: float) -> tuple[int, Path]:
        """Run one line as typed at a prompt; its exit status and the file holding its output."""
        self.n += 1
        log = self.logs / f"{self.n:02d}.log"
        marker = f"__tour_rc_{self.n}="
        self.proc.stdin.write(f"{{ {command}\n}} > {log} 2>&1 < /dev/null; echo \"{marker}$?\"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"`{command}` did not finish within {timeout:g} s; "
                                   f"its output so far:\n{_tail(log)}")
            try:
                said = self.said.get(timeout=min(left, 1.0))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the shell exited during `{command}`") from None
                continue
            if said.startswith(marker):
                return int(said[len(marker):]), log

    def close(self) -> None:
        """Stop whatever the tour left running, then the shell (its whole process group)."""
        if self.proc.poll() is None:
            try:
                self.run("kill $(jobs -p) 2>/dev/null; wait", timeout=60)
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (TimeoutError, OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no output)"


def _output(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def missing(expect: list[str], output: str) -> list[str]:
    """The expected spans that ``output`` lacks (``health: VALID``: see the module's notes)."""
    out = []
    for want in expect:
        if want in output:
            continue
        if want == "health: VALID" and re.search(r"^health: INVALID.*\n  - \S", output, re.M):
            warnings.warn(f"a tour run was INVALID here and said why:\n{output[-1500:]}",
                          stacklevel=2)
            continue
        out.append(want)
    return out


def _wait_for(expect: list[str], log: Path, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (lack := missing(expect, _output(log))) and time.monotonic() < deadline:
        time.sleep(0.2)
    return lack


def test_tour_lines_are_parsed_with_their_expectations():
    lines = tour_lines(README.read_text())
    assert lines[0].command == ". .venv/bin/activate"
    assert all(ln.expect for ln in lines if ln.command.startswith("lootlab ") and not ln.skipped)
    assert any(ln.background for ln in lines)
    # only what needs `make report`'s reports/ is skipped
    assert all(any(arg.startswith("reports/") for arg in ln.command.split())
               for ln in lines if ln.skipped), [ln.command for ln in lines if ln.skipped]
    assert _split_comment("curl 'http://h/p?a=1#x'  # prints `{\"count\":1`") == \
        ("curl 'http://h/p?a=1#x'", "prints `{\"count\":1`")


def _unavailable() -> str | None:
    if shutil.which("curl") is None:
        return "curl is not installed"
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return "not a git checkout: cannot tell a clone's files"
    why = cgroup.cgroup_unavailable()
    if why is not None:
        return f"cgroups not writable (the tour's --cpu-limit): {why}"
    why = perf_unavailable()
    if why is not None and os.environ.get("CI") != "true":
        return f"perf unavailable (the tour's profile perf): {why}"
    return None


@pytest.mark.slow
@pytest.mark.timeout(2400)    # a quick report and some 20 commands, on a busy 2-core machine
def test_readme_tour_runs_line_by_line_as_written(tmp_path):
    why = _unavailable()
    if why:
        pytest.skip(why)
    lines = with_free_ports(tour_lines(README.read_text()))
    clone = fresh_copy(tmp_path / "lootlab")
    logs = tmp_path / "logs"
    logs.mkdir()
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    env["LOOTLAB_DATA"] = str(clone / "data")
    shell = Shell(clone, env, logs)
    try:
        for line in lines:
            if line.skipped:
                continue
            slow = line.command.startswith("lootlab report") and "--from" not in line.command
            rc, log = shell.run(line.command, REPORT_TIMEOUT if slow else LINE_TIMEOUT)
            assert rc == 0, f"`{line.command}` exited {rc}:\n{_tail(log)}"
            lack = _wait_for(line.expect, log, READY_TIMEOUT) if line.background \
                else missing(line.expect, _output(log))
            assert not lack, f"`{line.command}` did not print {lack}:\n{_tail(log)}"
    finally:
        shell.close()
