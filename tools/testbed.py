#!/usr/bin/env python3
"""Throw-away one-node Ceph cluster and memcached servers on loopback.

Used by the tests, the demo and the benchmarks so that they run against the
real librados/librbd and a real memcached instead of mocks.  Stdlib only, so
it works from any interpreter (the daemons and CLIs are Debian packages).

Everything a cluster owns (config, keyrings, mon/osd/mgr data, admin sockets,
logs) lives under its workdir, so several clusters can coexist and nothing
touches /etc/ceph or /var/lib/ceph.  The OSD uses memstore: data lives in RAM.

CLI::

    eval "$(python3 tools/testbed.py up --workdir /tmp/tb [--with-mgr])"
    python3 tools/testbed.py status --workdir /tmp/tb
    python3 tools/testbed.py down --workdir /tmp/tb
"""

import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

PACKAGES = ("ceph-mon", "ceph-osd", "ceph-mgr", "ceph-common",
            "python3-rados", "python3-rbd", "memcached")
CEPH_PACKAGES = PACKAGES[:-1]
SYSTEM_DIST_PACKAGES = "/usr/lib/python3/dist-packages"
MEMCACHED_BIN = "/usr/bin/memcached"
STATE_FILE = "testbed.json"
DEFAULT_POOL = "images"
# Pacific's mgr reports HEALTH_ERR unless these load; all others are skipped.
MGR_ALWAYS_ON_MODULES = {"balancer", "crash", "devicehealth", "orchestrator",
                         "pg_autoscaler", "progress", "rbd_support", "status",
                         "telemetry", "volumes"}

_apt_updated = False
_installed = set()


def _run(cmd, check=True, timeout=60):
    """Run a command and return its stdout.

    Raise RuntimeError (with stderr) on failure.
    """
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout,
        env=_clean_env())
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed (rc=%d): %s" % (
            " ".join(cmd), proc.returncode,
            (proc.stderr or proc.stdout).strip()))
    return proc.stdout


def _probe(cmd, timeout):
    """(returncode, stderr) of a command that may hang on a sick cluster;
    returncode is None if it timed out."""
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout,
            env=_clean_env())
    except subprocess.TimeoutExpired:
        return None, ""
    return proc.returncode, proc.stderr


def _clean_env():
    """Environment for Ceph tools.

    They are /usr/bin/python3 scripts or embed the system libpython, so a
    caller's venv/pyenv variables must not leak in.
    """
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
                "CEPH_ARGS", "CEPH_CONF"):
        env.pop(var, None)
    return env


def ensure_packages(packages=PACKAGES):
    """Install missing Debian packages so a fresh CI machine has them."""
    global _apt_updated
    missing = []
    for pkg in packages:
        if pkg in _installed:
            continue
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                              capture_output=True, text=True)
        if (proc.returncode == 0
                and proc.stdout.strip() == "install ok installed"):
            _installed.add(pkg)
        else:
            missing.append(pkg)
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError("missing packages %s and not root to install them"
                           % " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    steps = [] if _apt_updated else [["apt-get", "update"]]
    steps.append(
        ["apt-get", "install", "-y", "--no-install-recommends", *missing])
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            raise RuntimeError("%s failed (rc=%d):\n%s"
                               % (" ".join(cmd), proc.returncode, tail))
        if cmd[1] == "update":
            _apt_updated = True
    _installed.update(missing)


def rbd_bindings_dir(dest):
    """Expose only the system rados/rbd extensions to another CPython 3.11.

    The bindings come from Debian packages, not PyPI; linking just these two
    modules (instead of adding all of dist-packages to a venv) keeps the
    venv's other dependencies isolated.  Put ``dest`` in a .pth file.
    """
    os.makedirs(dest, exist_ok=True)
    for mod in ("rados", "rbd"):
        found = sorted(glob.glob(os.path.join(
            SYSTEM_DIST_PACKAGES, "%s.cpython-311-*.so" % mod)))
        if not found:
            raise RuntimeError(
                "no %s CPython 3.11 extension in %s; run ensure_packages()"
                % (mod, SYSTEM_DIST_PACKAGES))
        link = os.path.join(dest, os.path.basename(found[0]))
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(found[0], link)
    return dest


def free_port():
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pid_alive(pid):
    """True if pid runs and is not a zombie.

    Orphans of `up` may be unreaped.
    """
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _pid_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def _wait_gone(pid, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return True
        elif not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def _terminate(pid, proc=None, timeout=10.0, first=signal.SIGTERM):
    """Stop one daemon: `first` signal, then SIGKILL after `timeout` seconds.

    ``proc`` (a Popen) is used to reap our own children; without it (the CLI's
    `down`) the pid is polled through /proc.
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


def _wait_for(what, predicate, timeout, interval=0.2, on_timeout=None):
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


class CephCluster:
    """One mon + one memstore OSD (+ optional mgr) on 127.0.0.1, cephx auth."""

    MON_ID = "a"
    OSD_ID = 0
    MGR_ID = "x"

    def __init__(self, workdir, memstore_bytes=12 * 2**30, with_mgr=False):
        self.workdir = os.path.abspath(workdir)
        self.memstore_bytes = memstore_bytes
        self.with_mgr = with_mgr
        self.conf_path = os.path.join(self.workdir, "ceph.conf")
        self.admin_keyring = os.path.join(self.workdir, "client.admin.keyring")
        self.log_dir = os.path.join(self.workdir, "log")
        self.fsid = str(uuid.uuid4())
        self.mon_port = free_port()
        self.mon_addr = "127.0.0.1:%d" % self.mon_port
        self._procs = {}  # daemon name ("mon", "osd", "mgr") -> Popen

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        """Create and boot a fresh cluster; return once the OSD is up+in."""
        if self.pids():
            raise RuntimeError(
                "cluster in %s is already running" % self.workdir)
        ensure_packages(CEPH_PACKAGES)
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
                _terminate(proc.pid, proc, first=first)

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
        return _run(["ceph", "-c", self.conf_path, *args],
                    check=check, timeout=timeout)

    def rbd(self, *args, check=True, timeout=60):
        return _run(["rbd", "-c", self.conf_path, *args],
                    check=check, timeout=timeout)

    def rados(self, *args, check=True, timeout=60):
        return _run(["rados", "-c", self.conf_path, *args],
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
                ["rados", "-c", self.conf_path, "-p", name, "stat",
                 "testbed-probe"], timeout=5)
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
            _terminate(proc.pid, proc)

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
        _terminate(proc.pid, proc, timeout=timeout)
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

    def _path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def _conf(self):
        """ceph.conf.  Short stats/tick periods make the mon flag a pool
        full 2-3 s after its quota is exceeded (see set_pool_quota)."""
        w = self.workdir
        optional_modules = " ".join(sorted(
            {os.path.basename(os.path.dirname(p))
             for p in glob.glob("/usr/share/ceph/mgr/*/module.py")}
            - MGR_ALWAYS_ON_MODULES))
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
        auth = ["ceph-authtool", "--create-keyring", "--gen-key"]
        _run(auth + [mon_keyring, "-n", "mon.", "--cap", "mon", "allow *"])
        _run(auth + [self.admin_keyring, "-n", "client.admin",
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
            _run(["ceph-authtool", mon_keyring, "--import-keyring", keyring])

        monmap = self._path("monmap")
        _run(["monmaptool", "--create", "--clobber", "--fsid", self.fsid,
              "--addv", self.MON_ID, "[v2:%s]" % self.mon_addr, monmap])
        _run(["ceph-mon", "-c", self.conf_path, "--mkfs", "-i", self.MON_ID,
              "--monmap", monmap, "--keyring", mon_keyring])
        self._osd_uuid = str(uuid.uuid4())
        _run(["ceph-osd", "-c", self.conf_path, "--mkfs", "--no-mon-config",
              "-i", str(self.OSD_ID), "--osd-uuid", self._osd_uuid])

    def _spawn(self, name, binary, *args):
        """Run a daemon in the foreground (-f) in its own session, so it
        outlives the CLI's `up` and terminal signals do not reach it."""
        out = open(os.path.join(self.log_dir, "%s.out" % name), "ab")
        try:
            self._procs[name] = subprocess.Popen(
                [binary, "-f", "-c", self.conf_path, *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env=_clean_env())
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
                ["ceph", "-c", self.conf_path, "--connect-timeout", "3",
                 "mon", "stat"], timeout=5)[0] == 0
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


class Memcached:
    """A memcached on 127.0.0.1 that tests can kill, pause and restart."""

    def __init__(self, port=None, memory_mb=64):
        self.port = port or free_port()
        self.address = "127.0.0.1:%d" % self.port
        self.memory_mb = memory_mb
        self._proc = None
        self._stderr = None

    def start(self):
        if self._proc is not None and self._proc.poll() is None:
            return
        ensure_packages(("memcached",))
        # An anonymous file, not a pipe: the CLI's `up` exits while memcached
        # keeps running.
        self._stderr = tempfile.TemporaryFile()
        # memcached refuses to run as root without -u; -U 0 disables UDP.
        self._proc = subprocess.Popen(
            [MEMCACHED_BIN, "-u", "memcache", "-l", "127.0.0.1",
             "-p", str(self.port), "-U", "0", "-m", str(self.memory_mb)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._stderr, start_new_session=True)
        _wait_for("memcached on %s" % self.address, self._accepts, 10,
                  interval=0.02, on_timeout=self._failure)

    def _accepts(self):
        if self._proc.poll() is not None:
            raise RuntimeError("memcached exited" + self._failure())
        # Ask for the version: something else may hold the port.
        try:
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=1) as sock:
                sock.sendall(b"version\r\n")
                return sock.recv(64).startswith(b"VERSION ")
        except OSError:
            return False

    def _failure(self):
        if self._proc.poll() is None:
            return ""
        self._stderr.seek(0)
        return ": rc=%s %s" % (self._proc.returncode,
                               self._stderr.read().decode(errors="replace"))

    @property
    def pid(self):
        return self._proc.pid

    def stop(self, first=signal.SIGTERM):
        """SIGTERM (memcached exits on its next 1 s tick), then SIGKILL."""
        if self._proc is not None:
            _terminate(self._proc.pid, self._proc, first=first)
            self._stderr.close()
            self._proc = None

    def kill(self):
        """SIGKILL: a crash."""
        self.stop(first=signal.SIGKILL)

    def pause(self):
        """SIGSTOP: connections stay open but nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.pid, signal.SIGCONT)

    def restart(self):
        """Fresh, empty memcached on the same port."""
        self.stop()
        self.start()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


# -- CLI ---------------------------------------------------------------------

def _cmd_up(args):
    if os.path.exists(os.path.join(args.workdir, STATE_FILE)):
        sys.exit("a testbed is up in %s; run `down` first" % args.workdir)
    started = time.monotonic()
    cluster = CephCluster(
        args.workdir, memstore_bytes=int(args.memstore_gib * 2**30),
        with_mgr=args.with_mgr)
    cluster.start()
    memcached = Memcached()
    try:
        cluster.create_pool(DEFAULT_POOL)
        memcached.start()
    except BaseException:
        cluster.stop()
        memcached.stop()
        raise
    pids = dict(cluster.pids(), memcached=memcached.pid)
    state = {"workdir": cluster.workdir, "conf_path": cluster.conf_path,
             "fsid": cluster.fsid, "mon_addr": cluster.mon_addr,
             "pool": DEFAULT_POOL, "memcached": memcached.address,
             "pids": pids}
    with open(os.path.join(cluster.workdir, STATE_FILE), "w") as f:
        json.dump(state, f, indent=2)
    print("testbed up in %.1f s: %s" % (time.monotonic() - started,
                                        json.dumps(pids)), file=sys.stderr)
    print("export CEPH_CONF=%s" % cluster.conf_path)
    print("export GPS_RBD_POOL=%s" % DEFAULT_POOL)
    print("export GPS_MEMCACHED=%s" % memcached.address)


def _load_state(workdir):
    try:
        with open(os.path.join(workdir, STATE_FILE)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _owned(state, name, pid):
    """Guard against pid reuse: the process must be the one `up` started."""
    if name == "memcached":
        marker = "-p %s " % state["memcached"].rsplit(":", 1)[1]
    else:
        marker = state["conf_path"]
    return _pid_alive(pid) and marker in _pid_cmdline(pid)


def _cmd_down(args):
    """Idempotent, so CI cleanup steps can always run it."""
    state = _load_state(args.workdir)
    if state is None:
        print("no testbed is up in %s" % args.workdir, file=sys.stderr)
        return
    for name in ("osd", "mgr", "mon", "memcached"):
        pid = state["pids"].get(name)
        if pid and _owned(state, name, pid):
            first = signal.SIGKILL if name == "osd" else signal.SIGTERM
            _terminate(pid, first=first)
    os.unlink(os.path.join(args.workdir, STATE_FILE))


def _cmd_status(args):
    state = _load_state(args.workdir)
    if state is None:
        sys.exit("no testbed is up in %s" % args.workdir)
    for name, pid in state["pids"].items():
        alive = "running" if _owned(state, name, pid) else "GONE"
        print("%-10s pid %-8d %s" % (name, pid, alive))
    print(_run(
        ["ceph", "-c", state["conf_path"], "--connect-timeout", "5", "-s"],
        check=False, timeout=15))


def _cmd_install(args):
    ensure_packages()


def _cmd_link_bindings(args):
    """Make rados/rbd importable in the running interpreter's (venv) site."""
    import sysconfig
    dest = rbd_bindings_dir(os.path.join(sys.prefix, "ceph-bindings"))
    site = sysconfig.get_paths()["purelib"]
    with open(os.path.join(site, "ceph-bindings.pth"), "w") as f:
        f.write(dest + "\n")
    print(dest)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="boot ceph + memcached, print export lines")
    up.add_argument("--workdir", required=True)
    up.add_argument("--with-mgr", action="store_true",
                    help="also run a ceph-mgr (needed for pool quotas)")
    up.add_argument("--memstore-gib", type=float, default=12)
    up.set_defaults(func=_cmd_up)
    sub.add_parser("install", help="install the Debian packages (root)"
                   ).set_defaults(func=_cmd_install)
    sub.add_parser("link-bindings",
                   help="put only Debian's rados/rbd modules on this "
                        "interpreter's path (run it with the venv's python)"
                   ).set_defaults(func=_cmd_link_bindings)
    for name, func in (("down", _cmd_down), ("status", _cmd_status)):
        p = sub.add_parser(name)
        p.add_argument("--workdir", required=True)
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except RuntimeError as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
