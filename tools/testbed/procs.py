# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Process utilities of the test bed: ports, commands, /proc, stopping.

Written once for the daemons of the test bed (Ceph, memcached, uWSGI) and
the tools that measure them: the only place that parses /proc/<pid>/stat.
"""

import collections
import os
import signal
import socket
import subprocess
import time

#: The fields of /proc/<pid>/stat the test bed needs; CPU times in seconds.
ProcStat = collections.namedtuple(
    'ProcStat', 'pid state ppid pgrp utime stime')


def free_port():
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env():
    """Environment for Ceph tools.

    They are /usr/bin/python3 scripts or embed the system libpython, so a
    caller's venv/pyenv variables must not leak in.
    """
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
                "CEPH_ARGS", "CEPH_CONF"):
        env.pop(var, None)
    return env


def run(cmd, check=True, timeout=60, env=None):
    """Run a command (no stdin; ``env`` or clean_env()) and return its
    stdout.

    Raise RuntimeError (with the end of its output) on failure.
    """
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout,
        env=clean_env() if env is None else env, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed (rc=%d): %s" % (
            " ".join(cmd), proc.returncode,
            (proc.stdout + proc.stderr).strip()[-4000:]))
    return proc.stdout


def probe(cmd, timeout):
    """(returncode, stderr) of a command that may hang on a sick cluster;
    returncode is None if it timed out."""
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout,
            env=clean_env())
    except subprocess.TimeoutExpired:
        return None, ""
    return proc.returncode, proc.stderr


def proc_stat(pid):
    """The ProcStat of a process, or None if it is gone.

    The command name (field 2) may hold spaces and parentheses, so the
    fields are counted from its last ')'.
    """
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return ProcStat(pid, fields[0], int(fields[1]), int(fields[2]),
                    int(fields[11]) / tick, int(fields[12]) / tick)


def processes():
    """The ProcStat of every process."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat is not None:
                yield stat


def pid_alive(pid):
    """True if pid runs and is not a zombie.

    Orphans of `up` may be unreaped.
    """
    stat = proc_stat(pid)
    return stat is not None and stat.state != "Z"


def pid_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def cpu_seconds(pid):
    """User + system CPU seconds a process has used so far."""
    stat = proc_stat(pid)
    return stat.utime + stat.stime


def reset_peak_rss(pid):
    """Start a new peak RSS (VmHWM) measure for a process (Linux 4.0+)."""
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def peak_rss_mib(pid):
    """The process's peak RSS (VmHWM) since it started or was reset."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def rss_bytes(pid):
    """Resident memory of a process, 0 if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def wait_for(what, predicate, timeout, interval=0.2, on_timeout=None):
    """Poll ``predicate`` until truthy; return it or raise RuntimeError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise RuntimeError("timed out after %ss waiting for %s%s"
                               % (timeout, what, detail))
        time.sleep(interval)


def _wait_gone(pid, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return True
        elif not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def terminate(pid, proc=None, timeout=10.0, first=signal.SIGTERM):
    """Stop one daemon: `first` signal, then SIGKILL after `timeout` seconds.

    ``proc`` (a Popen) is used to reap our own children; without it (the
    CLI's `down`) the pid is polled through /proc.
    """
    for sig in (first, signal.SIGKILL):
        try:
            # A paused daemon cannot handle SIGTERM.
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        if _wait_gone(pid, proc, timeout if sig != signal.SIGKILL else 10):
            break
    if proc is not None:
        proc.wait(timeout=1)


def _wait_group_gone(pgid, proc, timeout):
    """Wait until no process of the group runs; False on timeout.  Zombies
    do not count: orphans of `up` may never be reaped on this machine."""
    deadline = time.monotonic() + timeout
    while any(p.pgrp == pgid and p.state != "Z" for p in processes()):
        if time.monotonic() > deadline:
            return False
        if proc is not None:
            proc.poll()  # reap the leader
        time.sleep(0.05)
    return True


def stop_group(leader, proc=None, timeout=15):
    """SIGTERM a session leader (uWSGI's master, die-on-term: it stops its
    workers), SIGKILL its process group if anything is left after
    ``timeout``.

    The leader was started in its own session, so its pid is also the
    group of its children and of nothing else.  ``proc`` is its Popen.
    """
    try:
        os.kill(leader, signal.SIGTERM)
        os.killpg(leader, signal.SIGCONT)  # a stopped process cannot exit
    except ProcessLookupError:
        timeout = 0  # orphaned children: only SIGKILL stops them now
    if not _wait_group_gone(leader, proc, timeout):
        try:
            os.killpg(leader, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait_group_gone(leader, proc, 10)
    if proc is not None:
        proc.wait(timeout=5)


class Service:
    """What the test bed's services (glance-api, Keystone, Horizon,
    PostgreSQL, RabbitMQ) share:
    a context manager whose ``start()`` sets ``_proc`` to the process
    leading its own session, its output in ``self.log_path``."""

    _proc = None

    def log_tail(self, lines=50):
        """The end of the service's log (``self.log_path``): the server's and
        the application's own lines."""
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return ""

    def _failure(self):
        """What to add to an error about the process: its exit code if it
        exited, and the end of its log."""
        rc = "" if self._proc is None or self._proc.poll() is None else (
            " rc=%s" % self._proc.returncode)
        return ":%s\n%s" % (rc, self.log_tail(30))

    def stop(self):
        """Stop the process and its whole session.  Idempotent."""
        if self._proc is not None:
            stop_group(self._proc.pid, self._proc)
            self._proc = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


class UwsgiService(Service):
    """A service run by uWSGI (glance-api, Keystone)."""

    def _spawn_uwsgi(self, python, ini, log_path, env, server=None):
        """Start the uWSGI master of ``ini`` in a session of its own, its
        output appended to log_path: pyuwsgi in ``python``'s venv, or the
        uWSGI binary ``server`` (Debian's /usr/bin/uwsgi, say)."""
        command = [python, "-c",
                   "import sys, pyuwsgi; sys.exit(pyuwsgi.run())"]
        if server is not None:
            command = [server]
        with open(log_path, "ab") as log:
            self._proc = subprocess.Popen(
                command + ["--ini", ini],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True)
