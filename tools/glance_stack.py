#!/usr/bin/env python3
"""The real glance-api on loopback, in front of the test bed's Ceph.

End-to-end tests, the demo and the benchmarks need glance itself (its
upload path, import tasks and uWSGI chunked input) between the client
and our driver, configured as an operator would configure it.  This
module writes glance-api.conf and a paste pipeline, creates the sqlite
database and runs glance under uWSGI (pyuwsgi): glance has no standalone
server any more.  Stdlib only; glance runs in the interpreter given as
``python``, which needs glance, pyuwsgi, this package and the Ceph
bindings (``tools/setup-env e2e``).

There is no Keystone.  The paste pipeline is glance's Keystone pipeline
without ``authtoken``, so glance trusts the X-Identity-Status, X-User-Id,
X-Project-Id and X-Roles headers, and uWSGI adds those of an admin to
any request that has none, such as the glance CLI's.

CLI::

    eval "$(.venv/bin/python tools/glance_stack.py up --workdir /tmp/gs)"
    .venv/bin/glance image-create --name demo --disk-format raw \\
        --container-format bare --file disk.raw
    .venv/bin/python tools/glance_stack.py down --workdir /tmp/gs
"""

import argparse
import configparser
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import testbed  # noqa: E402

STATE_FILE = "glance_stack.json"
USER_ID = "e2e-admin"
PROJECT_ID = "e2e-project"
ROLES = "admin,member,reader"
NOAUTH_TOKEN = "noauth"
DEFAULT_BACKENDS = {"ceph1": "images", "ceph2": "images2"}
# python-glanceclient sends 1 MiB chunks; uWSGI refuses a chunk of a
# chunked body above chunked-input-limit, 1 MiB by default.
CHUNKED_INPUT_LIMIT = 16 * 2**20
# uWSGI fails a body read after socket-timeout (4 s by default) without
# data: glance then logs "unable to receive chunked part".
SOCKET_TIMEOUT = 60

PASTE_INI = """\
[composite:glance-api]
paste.composite_factory = glance.api:root_app_factory
/: api
/healthcheck: healthcheck

[composite:api]
paste.composite_factory = glance.api:pipeline_factory
default = cors http_proxy_to_wsgi versionnegotiation osprofiler context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[app:healthcheck]
paste.app_factory = oslo_middleware:Healthcheck.app_factory
backends = disable_by_file
disable_by_file_path = {workdir}/healthcheck_disable

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory

[filter:osprofiler]
paste.filter_factory = osprofiler.web:WsgiMiddleware.factory

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = glance
oslo_config_program = glance-api

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware:HTTPProxyToWSGI.factory
"""  # noqa: E501


def _ini(sections):
    """Render {section: {key: value}}; a list value repeats its key, as
    uWSGI's routes need (oslo.config lists are given as strings)."""
    lines = []
    for section, options in sections.items():
        lines.append("[%s]" % section)
        for key, value in options.items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, bool):
                    item = str(item).lower()
                lines.append("%s = %s" % (key, item))
        lines.append("")
    return "\n".join(lines)


def _parse_ini(text):
    """{section: {key: value}} of an ini text, values verbatim: like
    oslo.config, no inline comments stripped and no interpolation."""
    parser = configparser.RawConfigParser(default_section="\0")
    parser.optionxform = str
    parser.read_string(text)
    return {section: dict(parser[section]) for section in parser.sections()}


def _processes():
    """(pid, state, ppid, pgrp) of every process, from /proc."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                state, ppid, pgrp = f.read().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue
        yield int(entry), state, int(ppid), int(pgrp)


def _wait_group_gone(pgid, proc, timeout):
    """Wait until no process of the group runs; False on timeout.  Zombies
    do not count: orphans of `up` may never be reaped on this machine."""
    deadline = time.monotonic() + timeout
    while any(pgrp == pgid and state != "Z"
              for _, state, _, pgrp in _processes()):
        if time.monotonic() > deadline:
            return False
        if proc is not None:
            proc.poll()  # reap the master
        time.sleep(0.05)
    return True


def _stop_uwsgi(master, proc=None, timeout=15):
    """SIGTERM the master (die-on-term: it stops its workers), SIGKILL
    its process group if anything is left after ``timeout``.

    The master was started in its own session, so its pid is also the
    group of its workers and of nothing else.  ``proc`` is its Popen.
    """
    try:
        os.kill(master, signal.SIGTERM)
        os.killpg(master, signal.SIGCONT)  # a stopped process cannot exit
    except ProcessLookupError:
        timeout = 0  # orphaned workers: only SIGKILL stops them now
    if not _wait_group_gone(master, proc, timeout):
        try:
            os.killpg(master, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait_group_gone(master, proc, 10)
    if proc is not None:
        proc.wait(timeout=5)


class GlanceAPI:
    """glance-api under uWSGI on 127.0.0.1, storing into the test bed's Ceph.

    ``backends`` maps backend names to pools (default: ceph1 -> images,
    ceph2 -> images2); the pools must exist.  mode='single' configures
    [glance_store] with the first pool; mode='multi' declares every
    backend in ``enabled_backends``, the first one being the default.
    ``driver`` is the glance_store driver of every store: 'progress_rbd',
    or 'rbd' (stock) for comparisons.  ``extra_conf`` ({section: {key:
    value}}) is merged into glance-api.conf last; then ``conf_text``, an
    ini text such as an operator pastes, section by section and key by
    key, its values taken verbatim.
    """

    def __init__(self, workdir, ceph, memcached_address, *, mode="single",
                 backends=None, driver="progress_rbd", port=None, workers=2,
                 extra_conf=None, python=sys.executable, conf_text=None):
        if mode not in ("single", "multi"):
            raise ValueError("mode must be 'single' or 'multi'")
        self.workdir = os.path.abspath(workdir)
        self.ceph = ceph
        self.memcached_address = memcached_address
        self.mode = mode
        self.backends = dict(backends or DEFAULT_BACKENDS)
        self.driver = driver
        self.port = port or testbed.free_port()
        self.workers = workers
        self.extra_conf = extra_conf or {}
        self.conf_text = conf_text
        self.python = python
        self.url = "http://127.0.0.1:%d" % self.port
        self.conf_dir = os.path.join(self.workdir, "etc")
        self.conf_path = os.path.join(self.conf_dir, "glance-api.conf")
        self.uwsgi_ini = os.path.join(self.conf_dir, "glance-api-uwsgi.ini")
        self.log_path = os.path.join(self.workdir, "glance-api.log")
        self._proc = None

    @property
    def pools(self):
        """The pools this configuration stores into; they must exist."""
        pools = list(self.backends.values())
        return pools[:1] if self.mode == "single" else pools

    # -- configuration -----------------------------------------------------

    def _store_options(self, pool):
        options = {
            "rbd_store_pool": pool,
            # The test bed's ceph.conf points at client.admin's keyring.
            "rbd_store_user": "admin",
            "rbd_store_ceph_conf": self.ceph.conf_path,
            "rbd_store_chunk_size": 8,
        }
        if self.driver == "progress_rbd":
            options["progress_memcached_servers"] = self.memcached_address
        return options

    def _glance_conf(self):
        w = self.workdir
        conf = {
            "DEFAULT": {
                "enabled_import_methods":
                    "[glance-direct,web-download,copy-image]",
                # Tests check that direct_url and locations are rbd:// URLs.
                "show_image_direct_url": True,
                "show_multiple_locations": True,
                # Where glance-direct imports find the staged data, as
                # deployments with several API workers must set it.
                "worker_self_reference_url": self.url,
            },
            "database": {"connection": "sqlite:///%s/glance.sqlite" % w},
            # web-download fetches from ports 80 and 443 only, and never
            # from loopback unless allowed: tests serve on 127.0.0.1 (not
            # "localhost").  Without the brackets every URI gets a bare
            # "does not pass filtering".
            "import_filtering_opts": {"allowed_hosts": "[127.0.0.1]",
                                      "allowed_ports": "[]"},
        }
        if self.mode == "single":
            conf["DEFAULT"]["node_staging_uri"] = "file://%s/staging" % w
            conf["glance_store"] = dict(
                stores=self.driver, default_store="rbd",
                **self._store_options(self.pools[0]))
        else:
            conf["DEFAULT"]["enabled_backends"] = ",".join(
                "%s:%s" % (name, self.driver) for name in self.backends)
            conf["glance_store"] = {
                "default_backend": next(iter(self.backends))}
            conf["os_glance_staging_store"] = {
                "filesystem_store_datadir": os.path.join(w, "staging")}
            conf["os_glance_tasks_store"] = {
                "filesystem_store_datadir": os.path.join(w, "tasks")}
            for name, pool in self.backends.items():
                conf[name] = self._store_options(pool)
        for section, options in self.extra_conf.items():
            conf.setdefault(section, {}).update(options)
        for section, options in _parse_ini(self.conf_text or "").items():
            conf.setdefault(section, {}).update(options)
        return conf

    def _uwsgi_conf(self):
        return {"uwsgi": {
            "http-socket": "127.0.0.1:%d" % self.port,
            "module": "glance.wsgi.api:application",
            "master": True,
            "processes": self.workers,
            "single-interpreter": True,
            "enable-threads": True,
            "die-on-term": True,
            "need-app": True,
            # The app is loaded in the master and forked into the workers:
            # the driver's progress publisher must survive that fork.
            "lazy-apps": False,
            "chunked-input-limit": CHUNKED_INPUT_LIMIT,
            "socket-timeout": SOCKET_TIMEOUT,
            # http-socket closes the connection after each response; saying
            # so keeps clients from reusing it (else: connection resets).
            "add-header": "Connection: close",
            # No Keystone: a request without an identity gets headers()'.
            "route-if-not": "empty:${HTTP_X_IDENTITY_STATUS} goto:identified",
            "route-run": [
                "addvar:HTTP_%s=%s" % (name.upper().replace("-", "_"), value)
                for name, value in self.headers().items()],
            "route-label": "identified",
        }}

    def _write_config(self):
        for sub in ("etc", "staging", "tasks"):
            os.makedirs(os.path.join(self.workdir, sub), exist_ok=True)
        with open(self.conf_path, "w") as f:
            f.write(_ini(self._glance_conf()))
        paste_ini = os.path.join(self.conf_dir, "glance-api-paste.ini")
        with open(paste_ini, "w") as f:
            f.write(PASTE_INI.format(workdir=self.workdir))
        with open(self.uwsgi_ini, "w") as f:
            f.write(_ini(self._uwsgi_conf()))

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout=60):
        """Create the database and start uWSGI; return once the API answers
        and every worker runs (fault tests pick a worker to kill)."""
        if self._proc is not None:
            return
        self._write_config()
        # pyuwsgi starts inside an already running interpreter, so uWSGI's
        # own `env` option never reaches os.environ, where glance looks.
        env = dict(os.environ, OS_GLANCE_CONFIG_DIR=self.conf_dir)
        sync = subprocess.run(
            [self.python, "-m", "glance.cmd.manage", "--config-file",
             self.conf_path, "db_sync"],
            capture_output=True, text=True, env=env, timeout=300)
        if sync.returncode != 0:
            raise RuntimeError("glance-manage db_sync failed (rc=%d): %s"
                               % (sync.returncode, sync.stderr[-3000:]))
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [self.python, "-c",
                 "import sys, pyuwsgi; sys.exit(pyuwsgi.run())",
                 "--ini", self.uwsgi_ini],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not (self._answers() and
                       len(self.worker_pids()) == self.workers):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        "glance-api did not answer on %s within %s s:\n%s"
                        % (self.url, timeout, self.log_tail()))
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def _answers(self):
        if self._proc.poll() is not None:
            raise RuntimeError("glance-api exited (rc=%d):\n%s"
                               % (self._proc.returncode, self.log_tail()))
        try:
            with urllib.request.urlopen(self.url + "/versions", timeout=5):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def stop(self):
        """Stop uWSGI's master and workers.  Idempotent."""
        if self._proc is not None:
            _stop_uwsgi(self._proc.pid, self._proc)
            self._proc = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def pid(self):
        """The uWSGI master's pid."""
        return self._proc.pid

    def worker_pids(self):
        return sorted(pid for pid, state, ppid, _ in _processes()
                      if ppid == self._proc.pid and state != "Z")

    def log_tail(self, lines=50):
        """The end of the log shared by uWSGI and glance."""
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return ""

    # -- clients -----------------------------------------------------------

    def headers(self):
        """The identity of an admin of the e2e project, as Keystone's
        authtoken would pass it to glance.

        For raw HTTP clients only: python-glanceclient percent-encodes
        header values, which makes "admin,member,reader" one unknown role.
        """
        return {"X-Identity-Status": "Confirmed", "X-User-Id": USER_ID,
                "X-Project-Id": PROJECT_ID, "X-Roles": ROLES}

    def client(self):
        """A python-glanceclient v2 client, acting as headers()' admin.

        It sends only a token, and uWSGI adds the identity (headers()
        says why not identity_headers).
        """
        from glanceclient.v2 import client
        return client.Client(self.url, token=NOAUTH_TOKEN)

    def cli_env(self):
        """Environment of the glance CLI: with an image URL and a token it
        skips Keystone; nothing checks the token."""
        return {"OS_IMAGE_URL": self.url, "OS_AUTH_TOKEN": NOAUTH_TOKEN}


# -- CLI ---------------------------------------------------------------------

def write_state(workdir, ceph, memcached, api):
    """Record a stack that outlives its creator (`up`, the demo's --keep)
    so that `down --workdir` stops it."""
    pids = dict(ceph.pids(), memcached=memcached.pid, uwsgi=api.pid)
    # What each process's command line contains, against pid reuse.
    markers = dict.fromkeys(ceph.pids(), ceph.conf_path)
    markers.update(memcached="-p %d " % memcached.port, uwsgi=api.uwsgi_ini)
    with open(os.path.join(os.path.abspath(workdir), STATE_FILE), "w") as f:
        json.dump({"pids": pids, "markers": markers}, f, indent=2)


def _cmd_up(args):
    workdir = os.path.abspath(args.workdir)
    started = time.monotonic()
    ceph = testbed.CephCluster(os.path.join(workdir, "ceph"),
                               memstore_bytes=int(args.memstore_gib * 2**30))
    memcached = testbed.Memcached()
    api = GlanceAPI(workdir, ceph, memcached.address, mode=args.mode,
                    driver=args.driver, workers=args.workers,
                    python=args.python)
    ceph.start()
    try:
        memcached.start()
        for pool in api.pools:
            ceph.create_pool(pool)
        api.start()
    except BaseException:
        api.stop()
        memcached.stop()
        ceph.stop()
        raise
    write_state(workdir, ceph, memcached, api)
    print("glance-api %s (%s, %s, pools %s) up in %.1f s; log %s"
          % (api.url, args.mode, args.driver, ",".join(api.pools),
             time.monotonic() - started, api.log_path), file=sys.stderr)
    env = dict(api.cli_env(), CEPH_CONF=ceph.conf_path,
               GPS_MEMCACHED=memcached.address)
    for key, value in env.items():
        print("export %s=%s" % (key, shlex.quote(value)))
    glance = shlex.quote(os.path.join(os.path.dirname(args.python), "glance"))
    print("# %s image-create --name demo --disk-format raw "
          "--container-format bare --file FILE" % glance)
    print("# %s image-list" % glance)


def _cmd_down(args):
    path = os.path.join(os.path.abspath(args.workdir), STATE_FILE)
    with open(path) as f:
        state = json.load(f)
    # uWSGI first, it talks to Ceph; the OSD is SIGKILLed as in
    # CephCluster.stop().
    for name in ("uwsgi", "osd", "mgr", "mon", "memcached"):
        pid = state["pids"].get(name)
        if not pid or state["markers"][name] not in testbed._pid_cmdline(pid):
            continue
        if name == "uwsgi":
            _stop_uwsgi(pid)
        else:
            testbed._terminate(pid, first=signal.SIGKILL if name == "osd"
                               else signal.SIGTERM)
    os.unlink(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="boot Ceph, memcached and glance-api; "
                                   "print export lines for the glance CLI")
    up.add_argument("--workdir", required=True)
    up.add_argument("--mode", choices=("single", "multi"), default="single")
    up.add_argument("--driver", choices=("progress_rbd", "rbd"),
                    default="progress_rbd")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--memstore-gib", type=float, default=12)
    up.add_argument("--python", default=sys.executable,
                    help="interpreter with glance and pyuwsgi installed")
    up.set_defaults(func=_cmd_up)
    down = sub.add_parser("down", help="stop what `up` started")
    down.add_argument("--workdir", required=True)
    down.set_defaults(func=_cmd_down)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
