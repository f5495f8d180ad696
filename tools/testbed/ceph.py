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

"""A throw-away one-node Ceph cluster (mon, memstore OSD, optional mgr).

Everything a cluster owns (config, keyrings, mon/osd/mgr data, admin
sockets, logs) lives under its workdir, so several clusters can coexist
and nothing touches /etc/ceph or /var/lib/ceph.  The OSD uses memstore:
data lives in RAM.

With ``daemon_root`` (or GPS_CEPH_DAEMON_ROOT) the daemons and the admin
CLIs come from another Debian root (``tools/testbed root trixie``): a
cluster of one release for a client of another, as operators have while
they upgrade. The root gets /proc, /sys, /dev and the workdir (at the
same path) mounted while the cluster runs.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import time
import uuid

from testbed import packages
from testbed import procs
from testbed import roots

DEFAULT_POOL = "images"
_run = procs.run
_probe = procs.probe
_wait_for = procs.wait_for
# Pacific's mgr reports HEALTH_ERR unless these load; all others are skipped.
MGR_ALWAYS_ON_MODULES = {"balancer", "crash", "devicehealth", "orchestrator",
                         "pg_autoscaler", "progress", "rbd_support", "status",
                         "telemetry", "volumes"}


class CephCluster:
    """One mon + one memstore OSD (+ optional mgr) on 127.0.0.1, cephx auth."""

    MON_ID = "a"
    OSD_ID = 0
    MGR_ID = "x"

    def __init__(self, workdir, memstore_bytes=12 * 2**30, with_mgr=False,
                 daemon_root=None):
        self.workdir = os.path.abspath(workdir)
        if daemon_root is None:
            daemon_root = os.environ.get("GPS_CEPH_DAEMON_ROOT") or None
        self.daemon_root = daemon_root and os.path.abspath(daemon_root)
        self._mounts = None
        self.memstore_bytes = memstore_bytes
        self.with_mgr = with_mgr
        self.conf_path = os.path.join(self.workdir, "ceph.conf")
        self.admin_keyring = os.path.join(self.workdir, "client.admin.keyring")
        self.log_dir = os.path.join(self.workdir, "log")
        self.fsid = str(uuid.uuid4())
        self.mon_port = procs.free_port()
        self.mon_addr = "127.0.0.1:%d" % self.mon_port
        self._procs = {}  # daemon name ("mon", "osd", "mgr") -> Popen

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        """Create and boot a fresh cluster; return once the OSD is up+in."""
        if self.pids():
            raise RuntimeError(
                "cluster in %s is already running" % self.workdir)
        if self.daemon_root is None:
            packages.ensure_packages(packages.CEPH_PACKAGES)
        else:
            os.makedirs(self.workdir, exist_ok=True)
            self._mounts = roots.mounted(self.daemon_root,
                                         binds=[self.workdir])
            self._mounts.__enter__()
        self._prepare()
        try:
            self._spawn("mon", "ceph-mon", "-i", self.MON_ID)
            self._wait_mon()
            self.ceph("osd", "new", self._osd_uuid, str(self.OSD_ID))
            self._spawn("osd", "ceph-osd", "-i", str(self.OSD_ID))
            self._wait_osd(up=True)
            if self.with_mgr:
                self.start_mgr()
        except BaseException as exc:
            tail = self.log_tail()
            self.stop()
            if isinstance(exc, Exception):
                raise RuntimeError("ceph cluster in %s failed to start: %s\n%s"
                                   % (self.workdir, exc, tail)) from exc
            raise

    def stop(self):
        """Stop the daemons this object started.  Idempotent.

        The OSD is SIGKILLed: with osd_fast_shutdown off (see _conf) a
        SIGTERM makes memstore write all its data to disk, pointless here.
        """
        for name in ("osd", "mgr", "mon"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                first = signal.SIGKILL if name == "osd" else signal.SIGTERM
                procs.terminate(proc.pid, proc, first=first)
        mounts, self._mounts = self._mounts, None
        if mounts is not None:
            mounts.__exit__(None, None, None)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def pids(self):
        """{daemon name: pid} of the running daemons."""
        return {name: proc.pid for name, proc in self._procs.items()
                if proc.poll() is None}

    # -- CLIs --------------------------------------------------------------

    def ceph(self, *args, check=True, timeout=60):
        return _run(self._cmd("ceph", "-c", self.conf_path, *args),
                    check=check, timeout=timeout)

    def rbd(self, *args, check=True, timeout=60, conf=None):
        """``rbd`` on this cluster; ``conf``: another client configuration
        of it (testbed.latency's)."""
        return _run(self._cmd("rbd", "-c", conf or self.conf_path, *args),
                    check=check, timeout=timeout)

    def rados(self, *args, check=True, timeout=60):
        return _run(self._cmd("rados", "-c", self.conf_path, *args),
                    check=check, timeout=timeout)

    def ceph_json(self, *args, timeout=60):
        return json.loads(
            self.ceph(*args, "--format", "json", timeout=timeout))

    # -- pools and images --------------------------------------------------

    def create_pool(self, name, pg_num=8):
        """Replicated rbd pool (size/min_size 1 are the conf defaults); returns
        once the pool serves I/O.  Idempotent."""
        self.ceph("osd", "pool", "create", name, str(pg_num), str(pg_num),
                  "replicated")
        self.rbd("pool", "init", name)
        self.wait_pool_io(name)

    def wait_pool_io(self, name, timeout=60):
        """Wait until the pool's PGs answer.

        That is, until a stat of a missing object returns.
        """
        def answers():
            rc, err = _probe(
                self._cmd("rados", "-c", self.conf_path, "-p", name, "stat",
                          "testbed-probe"), timeout=5)
            return rc == 0 or "No such file" in err
        _wait_for("I/O on pool %s" % name, answers, timeout,
                  on_timeout=self.log_tail)

    def delete_pool(self, name):
        self.ceph("osd", "pool", "rm", name, name,
                  "--yes-i-really-really-mean-it")

    def set_pool_quota(self, name, max_bytes):
        """Pool byte quota; 0 removes it.  Enforced only with a mgr running."""
        self.ceph("osd", "pool", "set-quota", name, "max_bytes",
                  str(int(max_bytes)))

    def pool_flags(self, name):
        """Flags of a pool in the OSD map, e.g. ["full", "full_quota"]."""
        for pool in self.ceph_json("osd", "pool", "ls", "detail"):
            if pool["pool_name"] == name:
                return pool["flags_names"].split(",")
        raise RuntimeError("no pool %s" % name)

    def pool_is_full(self, name):
        return "full" in self.pool_flags(name)

    def wait_pool_full(self, name, full=True, timeout=60):
        """Wait until the mon sets (or with full=False, clears) the pool's
        full flag; return the seconds waited."""
        start = time.monotonic()
        _wait_for("pool %s full=%s" % (name, full),
                  lambda: self.pool_is_full(name) == full, timeout)
        return time.monotonic() - start

    def pool_stored_bytes(self, name):
        """Bytes stored in a pool as last reported by the mgr (needs one)."""
        for pool in self.ceph_json("df")["pools"]:
            if pool["name"] == name:
                return pool["stats"]["stored"]
        raise RuntimeError("no pool %s" % name)

    def images(self, pool):
        return self.rbd("ls", "-p", pool).split()

    # -- daemons -----------------------------------------------------------

    def start_mgr(self):
        """Start a ceph-mgr (pool usage feed for quotas) unless running."""
        if "mgr" in self.pids():
            return
        # Otherwise devicehealth creates a device_health_metrics pool.  Module
        # options are unknown to the mon until a mgr registers them: --force.
        self.ceph("config", "set", "mgr", "mgr/devicehealth/enable_monitoring",
                  "false", "--force")
        self._spawn("mgr", "ceph-mgr", "-i", self.MGR_ID)

        def available():
            self._require_running("mgr")
            return self.ceph_json("mgr", "stat", timeout=10).get("available")
        _wait_for("an active mgr", available, 60, on_timeout=self.log_tail)

    def stop_mgr(self):
        proc = self._procs.pop("mgr", None)
        if proc is not None:
            procs.terminate(proc.pid, proc)

    @property
    def osd_pid(self):
        return self._procs["osd"].pid

    def pause_osd(self):
        """SIGSTOP the OSD: client I/O hangs, as with an unresponsive OSD."""
        os.kill(self.osd_pid, signal.SIGSTOP)

    def resume_osd(self):
        os.kill(self.osd_pid, signal.SIGCONT)

    def stop_osd(self, timeout=120):
        """Clean OSD shutdown: memstore saves its data to disk and the mon
        marks the OSD down at once, so start_osd() brings the data back."""
        proc = self._procs.pop("osd")
        procs.terminate(proc.pid, proc, timeout=timeout)
        self._wait_osd(up=False)

    def start_osd(self):
        if "osd" in self.pids():
            return
        self._spawn("osd", "ceph-osd", "-i", str(self.OSD_ID))
        self._wait_osd(up=True)

    def log_tail(self, lines=20):
        """Last lines of every daemon log (minus RocksDB statistics dumps),
        for error messages."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.log_dir, "*"))):
            try:
                with open(path, errors="replace") as f:
                    tail = [
                        line for line in f
                        if line.startswith("20") and " rocksdb:" not in line]
            except OSError:
                continue
            tail = tail[-lines:]
            if tail:
                out.append("\n--- %s ---\n%s" % (path, "".join(tail).rstrip()))
        return "".join(out)

    # -- internals ---------------------------------------------------------

    def _cmd(self, *argv):
        """A Ceph command line, run in the daemon root if there is one."""
        if self.daemon_root is None:
            return list(argv)
        return ["chroot", self.daemon_root, *argv]

    def _in_root(self, path):
        return os.path.join(self.daemon_root or "/", path.lstrip("/"))

    def class_dir(self):
        """The OSD's object class directory (rbd's cls_rbd...). Named in
        ceph.conf: Debian's Reef and Tentacle default it to a relative
        path (lib/x86_64-linux-gnu/rados-classes), so an OSD started
        elsewhere than / loads no class and every `rbd create` fails
        with EOPNOTSUPP (95)."""
        for pattern in ("/usr/lib/*/rados-classes", "/usr/lib/rados-classes",
                        "/usr/lib64/rados-classes"):
            for path in sorted(glob.glob(self._in_root(pattern))):
                if os.path.isdir(path):
                    return "/" + os.path.relpath(
                        path, self.daemon_root or "/")
        return None

    def _legacy_client_ciphers(self):
        """Ciphers for a client of an older release, or None.

        From 20.2.4 (CVE-2025-30156) the cluster's tools make cephx keys
        of type aes256k, which librados before it cannot parse ("Malformed
        input"), and the monitor accepts only that cipher.  A cluster from
        another root serves this host's client, possibly older: as an
        operator does for such a glance node, its key (client.admin here)
        is of type aes and the monmap allows aes next to aes256k; the
        daemons keep aes256k keys.  Older clusters know one cipher and no
        policy: None.
        """
        if self.daemon_root is None:
            return None
        usage = subprocess.run(
            self._cmd("monmaptool", "--help"), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=30).stdout
        if "--auth-allowed-ciphers" not in usage:
            return None
        return ("aes", "aes256k")

    def version(self):
        """The daemons' release, e.g. "18.2.7" (`ceph-mon --version`)."""
        out = _run(self._cmd("ceph-mon", "--version"))
        return out.split()[2]

    def _path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def _conf(self):
        """ceph.conf.  Short stats/tick periods make the mon flag a pool
        full 2-3 s after its quota is exceeded (see set_pool_quota)."""
        w = self.workdir
        modules = glob.glob(self._in_root("/usr/share/ceph/mgr/*/module.py"))
        optional_modules = " ".join(sorted(
            {os.path.basename(os.path.dirname(p)) for p in modules}
            - MGR_ALWAYS_ON_MODULES))
        class_dir = self.class_dir()
        osd_classes = ("osd class dir = %s\n" % class_dir
                       if class_dir else "")
        return f"""\
[global]
fsid = {self.fsid}
mon host = [v2:{self.mon_addr}]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
run dir = {w}/run
crash dir = {w}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
mon tick interval = 1
paxos propose interval = 0.1
mon mgr digest period = 1
mgr stats period = 1
mgr tick period = 1
# A PG whose read lease (this ratio times osd_heartbeat_grace, 20 s) ran
# out while its OSD was stopped can stay "laggy" after SIGCONT, every op
# on it waiting: the fault tests stop the OSD for up to a minute or two
# (longer on a busy machine), so the lease outlasts that (200 s).
osd pool default read lease ratio = 10

[client]
keyring = {self.admin_keyring}

[mon]
mon data = {w}/mon
ms bind retry count = 1
log file = {w}/log/$name.log
mon cluster log file = {w}/log/cluster.log

[osd]
osd data = {w}/osd
keyring = {w}/osd/keyring
log file = {w}/log/$name.log
osd objectstore = memstore
memstore device bytes = {self.memstore_bytes}
osd fast shutdown = false
{osd_classes}
[mgr]
mgr data = {w}/mgr
keyring = {w}/mgr/keyring
log file = {w}/log/$name.log
mgr disabled modules = {optional_modules}
"""

    def _prepare(self):
        """Fresh config, keyrings, monmap and mon/osd stores (no daemons)."""
        for sub in ("mon", "osd", "mgr", "run", "log", "crash"):
            shutil.rmtree(self._path(sub), ignore_errors=True)
            os.makedirs(self._path(sub))
        with open(self.conf_path, "w") as f:
            f.write(self._conf())

        mon_keyring = self._path("mon.keyring")
        osd_keyring = self._path("osd", "keyring")
        mgr_keyring = self._path("mgr", "keyring")
        auth = self._cmd("ceph-authtool", "--create-keyring", "--gen-key")
        legacy = self._legacy_client_ciphers()
        _run(auth + [mon_keyring, "-n", "mon.", "--cap", "mon", "allow *"])
        _run(auth + [self.admin_keyring, "-n", "client.admin",
                     *(["--key-type", legacy[0]] if legacy else []),
                     "--cap", "mon", "allow *", "--cap", "osd", "allow *",
                     "--cap", "mgr", "allow *", "--cap", "mds", "allow *"])
        _run(auth + [osd_keyring, "-n", "osd.%d" % self.OSD_ID,
                     "--cap", "mon", "allow profile osd",
                     "--cap", "mgr", "allow profile osd",
                     "--cap", "osd", "allow *"])
        _run(auth + [mgr_keyring, "-n", "mgr.%s" % self.MGR_ID,
                     "--cap", "mon", "allow profile mgr",
                     "--cap", "osd", "allow *", "--cap", "mds", "allow *"])
        # Every key in the mkfs keyring lands in the mon's auth database, so
        # no `ceph auth add` round trips are needed once the mon runs.
        for keyring in (self.admin_keyring, osd_keyring, mgr_keyring):
            _run(self._cmd("ceph-authtool", mon_keyring, "--import-keyring",
                           keyring))

        monmap = self._path("monmap")
        _run(self._cmd("monmaptool", "--create", "--clobber", "--fsid",
                       self.fsid, "--addv", self.MON_ID,
                       "[v2:%s]" % self.mon_addr, monmap,
                       *(["--auth-allowed-ciphers", ",".join(legacy)]
                         if legacy else [])))
        _run(self._cmd("ceph-mon", "-c", self.conf_path, "--mkfs", "-i",
                       self.MON_ID, "--monmap", monmap, "--keyring",
                       mon_keyring))
        self._osd_uuid = str(uuid.uuid4())
        _run(self._cmd("ceph-osd", "-c", self.conf_path, "--mkfs",
                       "--no-mon-config", "-i", str(self.OSD_ID),
                       "--osd-uuid", self._osd_uuid))

    def _spawn(self, name, binary, *args):
        """Run a daemon in the foreground (-f) in its own session, so it
        outlives the CLI's `up` and terminal signals do not reach it."""
        out = open(os.path.join(self.log_dir, "%s.out" % name), "ab")
        try:
            self._procs[name] = subprocess.Popen(
                self._cmd(binary, "-f", "-c", self.conf_path, *args),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env=procs.clean_env())
        finally:
            out.close()

    def _require_running(self, name):
        proc = self._procs.get(name)
        if proc is None or proc.poll() is not None:
            raise RuntimeError("ceph-%s is not running" % name)

    def _wait_mon(self, timeout=30):
        """Fail fast (e.g. port taken) instead of letting a CLI hang."""
        def answers():
            self._require_running("mon")
            return _probe(
                self._cmd("ceph", "-c", self.conf_path, "--connect-timeout",
                          "3", "mon", "stat"), timeout=5)[0] == 0
        _wait_for("mon.%s" % self.MON_ID, answers, timeout,
                  on_timeout=self.log_tail)

    def _wait_osd(self, up, timeout=60):
        def state():
            if up:
                self._require_running("osd")
            for osd in self.ceph_json("osd", "dump", timeout=10)["osds"]:
                if osd["osd"] == self.OSD_ID:
                    return bool(osd["up"]) == up and (not up or osd["in"])
            return False
        _wait_for("osd.%d %s" % (self.OSD_ID, "up+in" if up else "down"),
                  state, timeout, on_timeout=self.log_tail)
