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

"""The local stack as one unit: Ceph, memcached, pools, glance-api(s).

The demo, the benchmark, the soak and e2e tests and the `up`/`down`
commands all boot the same things in the same order and must stop them,
in the reverse order, whatever goes wrong; that is written once here.  A
stack left running (``keep()``) is recorded in one state file, which
``down()`` reads: the only pid file scheme of the test bed.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import urllib.request

from testbed import ceph as ceph_mod
from testbed import glance_api
from testbed import memcached as memcached_mod
from testbed import procs

STATE_FILE = "stack.json"
DEFAULT_MEMSTORE_BYTES = 12 * 2**30


class NothingRunning(RuntimeError):
    """`down` found no stack, or only one whose processes had exited."""


class LocalStack:
    """Ceph (in ``workdir``/ceph) + memcached + ``pools`` + glance-api.

    ``glance`` is None for no glance-api, or the keyword arguments of a
    :class:`glance_api.GlanceAPI` living in ``workdir`` itself (its pools
    are created too); more glance-apis can be added with ``add_glance``.
    Use it as a context manager: everything started is stopped on exit,
    also when starting fails half way, unless ``keep()`` was called.
    """

    def __init__(self, workdir, *, pools=(ceph_mod.DEFAULT_POOL,),
                 memstore_bytes=DEFAULT_MEMSTORE_BYTES, with_mgr=False,
                 glance=None):
        self.workdir = os.path.abspath(workdir)
        self.ceph = ceph_mod.CephCluster(
            os.path.join(self.workdir, "ceph"),
            memstore_bytes=memstore_bytes, with_mgr=with_mgr)
        self.memcached = memcached_mod.Memcached()
        self.pools = []
        self.apis = []
        self.api = None  # the glance-api of ``glance``, if any
        self._wanted_pools = list(pools)
        self._glance = glance
        self._kept = False
        self.exporter = None  # (Popen, URL) of add_exporter()

    def start(self):
        """Boot everything; on any failure stop what did start, re-raise."""
        os.makedirs(self.workdir, exist_ok=True)
        try:
            self.ceph.start()
            self.memcached.start()
            for pool in self._wanted_pools:
                self.create_pool(pool)
            if self._glance is not None:
                self.api = self.add_glance(None, **self._glance)
        except BaseException:
            self.stop()
            raise
        return self

    def create_pool(self, name):
        """An rbd pool, once."""
        if name not in self.pools:
            self.ceph.create_pool(name)
            self.pools.append(name)

    def add_glance(self, name=None, **kwargs):
        """Start a glance-api in ``workdir``/``name`` (``workdir`` itself
        for None) into this stack's Ceph and memcached; returns it.  It is
        stopped with the stack."""
        path = self.workdir if name is None else os.path.join(
            self.workdir, name)
        api = glance_api.GlanceAPI(path, self.ceph, self.memcached.address,
                                   **kwargs)
        for pool in api.pools:
            self.create_pool(pool)
        self.apis.append(api)
        api.start()
        return api

    def add_exporter(self, python=sys.executable, port=None):
        """``glance-progress exporter`` on 127.0.0.1, reading the first
        glance-api's configuration, as an operator runs it; its URL.  Its
        log is ``workdir``/exporter.log; it is stopped with the stack."""
        port = port or procs.free_port()
        url = "http://127.0.0.1:%d/" % port
        with open(os.path.join(self.workdir, "exporter.log"), "ab") as log:
            proc = subprocess.Popen(
                [os.path.join(os.path.dirname(python), "glance-progress"),
                 "exporter", "--config-file", self.apis[0].conf_path,
                 "--listen", "127.0.0.1:%d" % port],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        self.exporter = (proc, url)

        def answers():
            if proc.poll() is not None:
                raise RuntimeError("the exporter exited: see %s"
                                   % os.path.join(self.workdir,
                                                  "exporter.log"))
            try:
                with urllib.request.urlopen(url + "metrics", timeout=2):
                    return True
            except OSError:
                return False

        procs.wait_for("the exporter on %s" % url, answers, 30)
        return url

    def _stop_exporter(self):
        if self.exporter is not None:
            procs.terminate(self.exporter[0].pid, self.exporter[0])
            self.exporter = None

    def stop(self):
        """The exporter and glance-api first (they talk to Ceph and
        memcached), then memcached, then Ceph.  Every step runs even if
        one fails; the first error is raised at the end.  Idempotent; a
        no-op once ``keep()`` handed the processes over to the state
        file."""
        if self._kept:
            return
        steps = [self._stop_exporter]
        steps += [api.stop for api in reversed(self.apis)]
        steps += [self.memcached.stop, self.ceph.stop]
        error = None
        for step in steps:
            try:
                step()
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def keep(self):
        """Leave everything running after this process exits, recorded in
        ``workdir``/stack.json so that ``down(workdir)`` stops it."""
        write_state(self)
        self._kept = True

    def held_bytes(self):
        """(memstore bytes the OSD may fill, bytes of RAM its resident
        set holds now): what the cluster costs the machine."""
        return (self.ceph.memstore_bytes,
                procs.rss_bytes(self.ceph.osd_pid))

    def export_lines(self):
        """Shell lines that point the glance, ceph and glance-progress
        CLIs at this stack."""
        env = {"CEPH_CONF": self.ceph.conf_path,
               "GPS_MEMCACHED": self.memcached.address}
        if self.pools:
            env["GPS_RBD_POOL"] = self.pools[0]
        if self.api is not None:
            env.update(self.api.cli_env())
        return ["export %s=%s" % (key, shlex.quote(value))
                for key, value in env.items()]


# -- the state file ------------------------------------------------------

def state_path(workdir):
    return os.path.join(os.path.abspath(workdir), STATE_FILE)


def write_state(stack):
    """Record the stack's processes in the order ``down`` stops them,
    each with what its command line contains (against pid reuse)."""
    processes = []
    if stack.exporter is not None:
        processes.append({"name": "exporter", "pid": stack.exporter[0].pid,
                          "marker": "--listen " + stack.exporter[1][
                              len("http://"):].rstrip("/")})
    processes += [
        {"name": "glance-api", "pid": api.pid, "marker": api.uwsgi_ini,
         "group": True} for api in reversed(stack.apis)]
    ceph_pids = stack.ceph.pids()
    # The OSD is SIGKILLed, as in CephCluster.stop().
    for name in ("osd", "mgr", "mon"):
        if name in ceph_pids:
            processes.append({"name": "ceph-" + name, "pid": ceph_pids[name],
                              "marker": stack.ceph.conf_path,
                              "kill": name == "osd"})
    processes.append({"name": "memcached", "pid": stack.memcached.pid,
                      "marker": "-p %d " % stack.memcached.port})
    state = {"workdir": stack.workdir, "conf_path": stack.ceph.conf_path,
             "fsid": stack.ceph.fsid, "mon_addr": stack.ceph.mon_addr,
             "memcached": stack.memcached.address, "pools": stack.pools,
             "glance_api": [api.url for api in stack.apis],
             "processes": processes}
    with open(state_path(stack.workdir), "w") as f:
        json.dump(state, f, indent=2)


def load_state(workdir):
    """The recorded state of ``workdir``'s stack, or None."""
    try:
        with open(state_path(workdir)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise RuntimeError("unreadable %s: %s" % (state_path(workdir), exc))


def owned(process):
    """The recorded process still runs, and is the one that was started."""
    return (procs.pid_alive(process["pid"]) and
            process["marker"] in procs.pid_cmdline(process["pid"]))


def running(workdir):
    """The recorded processes of ``workdir`` that still run."""
    state = load_state(workdir)
    return [p for p in (state or {}).get("processes", []) if owned(p)]


def down(workdir):
    """Stop the stack recorded in ``workdir`` and forget it; returns the
    names of the processes stopped.  Raises NothingRunning when there is
    no record, or none of its processes still ran (the stale record is
    removed)."""
    workdir = os.path.abspath(workdir)
    state = load_state(workdir)
    if state is None:
        raise NothingRunning("nothing running in %s" % workdir)
    stopped = []
    for process in state["processes"]:
        if not owned(process):
            continue
        if process.get("group"):
            procs.stop_group(process["pid"])
        else:
            procs.terminate(process["pid"], first=signal.SIGKILL
                            if process.get("kill") else signal.SIGTERM)
        stopped.append(process["name"])
    os.unlink(state_path(workdir))
    if not stopped:
        raise NothingRunning("nothing running in %s (its processes had "
                             "already exited; record removed)" % workdir)
    return stopped


def down_main(workdir, out=None):
    """`down` of the CLIs: one line either way, exit status 1 when
    nothing was running."""
    try:
        stopped = down(workdir)
    except NothingRunning as exc:
        print(exc, file=sys.stderr)
        return 1
    print("stopped %s in %s"
          % (", ".join(stopped), os.path.abspath(workdir)),
          file=out or sys.stdout)
    return 0
