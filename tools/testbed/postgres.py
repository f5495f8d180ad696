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

"""A private PostgreSQL server on loopback, for glance's database.

glance-api's default test bed database is a sqlite file, which takes one
writer at a time: concurrent uploads into the threads of one glance-api
process fail with "database is locked" (HTTP 500).  Deployments run
MySQL or PostgreSQL; this is Debian's PostgreSQL (any release: the
newest /usr/lib/postgresql/<version>/bin), as a cluster of its own:
initdb'd into ``workdir``/data, listening on 127.0.0.1 on a free port,
its unix socket in ``workdir``/run.  A system cluster, if any, is
neither used nor disturbed (Debian's package is installed with services
kept from starting: packages.POLICY_RC_D).

PostgreSQL refuses to run as root: as root the server runs as Debian's
``postgres`` user, which then needs to reach ``workdir`` (its
ancestors get the search bit, nothing more).
"""

import glob
import os
import pwd
import signal
import subprocess

from testbed import packages
from testbed import procs

BIN_GLOB = "/usr/lib/postgresql/*/bin"
SYSTEM_USER = "postgres"
DATABASE = "glance"
USER = "glance"
PASSWORD = "testbed-secret"
# A throw-away database: durability only costs time here.
SETTINGS = {"fsync": "off", "synchronous_commit": "off",
            "full_page_writes": "off"}


def bin_dir():
    """The newest installed release's binaries, or None."""
    dirs = [d for d in glob.glob(BIN_GLOB)
            if os.path.exists(os.path.join(d, "postgres"))]
    if not dirs:
        return None
    return max(dirs, key=lambda d: [
        int(part) for part in os.path.basename(os.path.dirname(d)).split(".")
        if part.isdigit()])


class PostgreSQL(procs.Service):
    """A one-cluster PostgreSQL on 127.0.0.1 with a database ``glance``
    owned by the user ``glance`` (password auth over TCP): ``url`` is
    glance's ``[database] connection``.

    ``stop()`` stops the server and whatever it started; ``start()``
    starts it again on the same port with the same data.
    """

    def __init__(self, workdir, port=None):
        self.workdir = os.path.abspath(workdir)
        self.port = port or procs.free_port()
        self.data_dir = os.path.join(self.workdir, "data")
        self.socket_dir = os.path.join(self.workdir, "run")
        self.log_path = os.path.join(self.workdir, "postgres.log")
        self.url = "postgresql+psycopg2://%s:%s@127.0.0.1:%d/%s" % (
            USER, PASSWORD, self.port, DATABASE)
        self._bin = None
        self._proc = None

    # -- as whom ------------------------------------------------------------

    def _as_user(self):
        """Popen keywords running a command as the server's user: Debian's
        ``postgres`` when we are root, else ourselves."""
        if os.geteuid() != 0:
            return {}
        return {"user": SYSTEM_USER, "group": SYSTEM_USER,
                "extra_groups": []}

    def _give(self, path):
        """Make ``path`` the server user's, and its ancestors searchable
        by it (a test's temporary directory is 0700)."""
        if os.geteuid() != 0:
            return
        user = pwd.getpwnam(SYSTEM_USER)
        os.chown(path, user.pw_uid, user.pw_gid)
        parent = os.path.dirname(path)
        while parent != os.path.dirname(parent):
            mode = os.stat(parent).st_mode
            if not mode & 0o001:
                os.chmod(parent, (mode & 0o7777) | 0o001)
            parent = os.path.dirname(parent)

    def _run(self, name, *args, as_server=True, timeout=60):
        """One of the release's client programs; its stdout."""
        cmd = [os.path.join(self._bin, name), *args]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout,
            cwd=self.workdir, env=self._env(),
            **(self._as_user() if as_server else {}))
        if proc.returncode != 0:
            raise RuntimeError("%s failed (rc=%d): %s" % (
                " ".join(cmd), proc.returncode,
                (proc.stderr or proc.stdout).strip()))
        return proc.stdout

    def _env(self):
        env = dict(procs.clean_env(), LC_ALL="C.UTF-8")
        for var in list(env):
            if var.startswith("PG"):  # a caller's PGHOST, PGPORT ...
                del env[var]
        return env

    # -- lifecycle ----------------------------------------------------------

    def start(self, timeout=60):
        """initdb (the first time), start the server, create the user and
        database (the first time); return once glance can connect."""
        if self._proc is not None:
            return
        packages.ensure_packages(packages.DATABASE_PACKAGES)
        self._bin = bin_dir()
        if self._bin is None:
            raise RuntimeError("no PostgreSQL server in %s" % BIN_GLOB)
        os.makedirs(self.socket_dir, exist_ok=True)
        self._give(self.socket_dir)
        fresh = not os.path.exists(os.path.join(self.data_dir, "PG_VERSION"))
        if fresh:
            os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
            self._give(self.data_dir)
            # The superuser connects through the socket only, trusted;
            # over TCP every user needs its password.
            self._run("initdb", "--no-sync", "-D", self.data_dir,
                      "-U", SYSTEM_USER, "--encoding=UTF8", "--locale=C",
                      "--auth-local=trust", "--auth-host=scram-sha-256",
                      timeout=120)
        command = [os.path.join(self._bin, "postgres"), "-D", self.data_dir,
                   "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                   "-c", "unix_socket_directories=%s" % self.socket_dir]
        for key, value in SETTINGS.items():
            command += ["-c", "%s=%s" % (key, value)]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, cwd=self.workdir, env=self._env(),
                start_new_session=True, **self._as_user())
        try:
            procs.wait_for("PostgreSQL on 127.0.0.1:%d" % self.port,
                           self._answers, timeout, interval=0.1,
                           on_timeout=self._failure)
            if fresh:
                self.sql("CREATE ROLE %s LOGIN PASSWORD '%s'"
                         % (USER, PASSWORD),
                         "CREATE DATABASE %s OWNER %s" % (DATABASE, USER))
        except BaseException:
            self.stop()
            raise

    def _answers(self):
        if self._proc.poll() is not None:
            raise RuntimeError("postgres exited" + self._failure())
        proc = subprocess.run(
            [os.path.join(self._bin, "pg_isready"), "-q", "-h", "127.0.0.1",
             "-p", str(self.port), "-t", "1"],
            env=self._env(), timeout=10)
        return proc.returncode == 0

    def sql(self, *statements, database="postgres"):
        """Run statements as the superuser through the socket; psql's
        unaligned, tuples-only output."""
        args = ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", self.socket_dir, "-p", str(self.port),
                "-U", SYSTEM_USER, "-d", database]
        for statement in statements:
            args += ["-c", statement]
        return self._run("psql", *args, as_server=False)

    @property
    def pid(self):
        """The postmaster's pid."""
        return self._proc.pid

    def stop(self):
        """SIGINT, PostgreSQL's fast shutdown (clients are disconnected),
        then SIGKILL to whatever is left of its session.  Idempotent."""
        if self._proc is None:
            return
        try:
            os.kill(self._proc.pid, signal.SIGINT)
            self._proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        procs.stop_group(self._proc.pid, self._proc)
        self._proc = None
