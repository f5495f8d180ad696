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

"""The real glance-api on loopback, in front of the test bed's Ceph.

End-to-end tests, the demo and the benchmarks need glance itself (its
upload path, import tasks and uWSGI chunked input) between the client
and our driver, configured as an operator would configure it.  This
module writes glance-api.conf and a paste pipeline, creates the sqlite
database and runs glance under uWSGI (pyuwsgi): glance has no standalone
server any more.  Stdlib only; glance runs in the interpreter given as
``python``, which needs glance, pyuwsgi, this package and the Ceph
bindings (``tools/setup-env e2e``).

By default there is no Keystone.  The paste pipeline is glance's
Keystone pipeline without ``authtoken``, so glance trusts the
X-Identity-Status, X-User-Id, X-Project-Id and X-Roles headers, and
uWSGI adds those of an admin to any request that has none, such as the
glance CLI's.  With ``keystone=`` (a testbed.Keystone) glance runs the
stock ``keystone`` flavor of this repository's etc/glance-api-paste.ini,
the file operators get (authtoken, then the upload_progress filter), and
trusts no header: every request needs a real token.
"""

import configparser
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from testbed import procs

USER_ID = "e2e-admin"
PROJECT_ID = "e2e-project"
ROLES = "admin,member,reader"
NOAUTH_TOKEN = "noauth"
DEFAULT_BACKENDS = {"ceph1": "images", "ceph2": "images2"}
# python-glanceclient sends 1 MiB chunks; uWSGI refuses a chunk of a
# chunked body above chunked-input-limit, 1 MiB by default.
# The paste file operators get: every flavor carries the filter.
SHIPPED_PASTE_INI = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "etc", "glance-api-paste.ini")
CHUNKED_INPUT_LIMIT = 16 * 2**20
# uWSGI fails a body read after socket-timeout (4 s by default) without
# data: glance then logs "unable to receive chunked part".
SOCKET_TIMEOUT = 60

# glance's own uWSGI settings, key by key: httpd/glance-api-uwsgi.ini of
# glance 33 (31 names a wsgi-file instead of the module). The test
# bed changes only the address (http-socket, on loopback) and, for
# Debian's uWSGI, the plugin (see _system_uwsgi_python); pyuwsgi has
# Python built in and only logs that it cannot load "python".
GLANCE_UWSGI_INI = {
    "socket-timeout": 10,
    "http-auto-chunked": True,
    "http-chunked-input": True,
    "http-raw-body": True,
    "chmod-socket": 666,
    "lazy-apps": True,
    "add-header": "Connection: close",
    "buffer-size": 65535,
    "thunder-lock": True,
    "plugins": "python",
    "enable-threads": True,
    "exit-on-reload": True,
    "die-on-term": True,
    "master": True,
    "processes": 4,
    "http-socket": "127.0.0.1:60999",
    "module": "glance.wsgi.api:application",
}

PASTE_INI = """\
[composite:glance-api]
paste.composite_factory = glance.api:root_app_factory
/: api
/healthcheck: healthcheck

[composite:api]
paste.composite_factory = glance.api:pipeline_factory
default = cors http_proxy_to_wsgi versionnegotiation osprofiler context {progress}rootapp

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

[filter:upload_progress]
paste.filter_factory = glance_progress_store.middleware:UploadProgressFilter.factory
"""  # noqa: E501


def _parse_ini(text):
    """{section: {key: value}} of an ini text, values verbatim: like
    oslo.config, no inline comments stripped and no interpolation."""
    parser = configparser.RawConfigParser(default_section="\0")
    parser.optionxform = str
    parser.read_string(text)
    return {section: dict(parser[section]) for section in parser.sections()}


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


class GlanceAPI(procs.UwsgiService):
    """glance-api under uWSGI on 127.0.0.1, storing into the test bed's Ceph.

    ``backends`` maps backend names to pools (default: ceph1 -> images,
    ceph2 -> images2); the pools must exist.  mode='single' configures
    [glance_store] with the first pool; mode='multi' declares every
    backend in ``enabled_backends``, the first one being the default.
    ``driver`` is the glance_store driver of every store: 'progress_rbd',
    or 'rbd' (stock) for comparisons.  ``extra_conf`` ({section: {key:
    value}}) is merged into glance-api.conf last; then ``conf_text``, an
    ini text such as an operator pastes, section by section and key by
    key, its values taken verbatim.  ``progress_filter`` puts the
    package's upload_progress paste filter after ``context``.

    ``keystone`` (a testbed.Keystone) runs ``[paste_deploy] flavor =
    keystone`` of SHIPPED_PASTE_INI (so the filter is always there) with
    ``[keystone_authtoken]`` for keystone's ``glance`` user, and without
    the test bed's identity headers; register the URL in the catalog
    with ``keystone.add_service``.  ``shared_with`` (another GlanceAPI)
    makes this one a second node of the same glance: same database and
    staging directory (no db_sync), own port, workdir and log.
    ``database`` (a testbed.PostgreSQL) is glance's database instead of
    a sqlite file, which fails concurrent writers ("database is locked").

    ``threads`` runs that many threads in each of the test bed's uWSGI
    processes (many uploads in one process: the benchmark's).
    ``uwsgi='glance'`` runs uWSGI with glance's own settings
    (GLANCE_UWSGI_INI: 4 processes of one thread, lazy-apps,
    enable-threads, socket-timeout 10) instead of the test bed's;
    ``workers`` is then the ini's. ``uwsgi_without`` removes keys from
    the uWSGI settings (``("enable-threads",)``); ``uwsgi_server`` is a
    uWSGI binary to run instead of pyuwsgi (Debian's
    ``/usr/bin/uwsgi-core``, with its plugin of this venv's Python).
    """

    def __init__(self, workdir, ceph, memcached_address, *, mode="single",
                 backends=None, driver="progress_rbd", port=None, workers=2,
                 extra_conf=None, python=sys.executable, conf_text=None,
                 progress_filter=False, keystone=None, shared_with=None,
                 uwsgi="testbed", uwsgi_without=(), uwsgi_server=None,
                 threads=None, database=None):
        if mode not in ("single", "multi"):
            raise ValueError("mode must be 'single' or 'multi'")
        if uwsgi not in ("testbed", "glance"):
            raise ValueError("uwsgi must be 'testbed' or 'glance'")
        self.workdir = os.path.abspath(workdir)
        self.ceph = ceph
        self.memcached_address = memcached_address
        self.mode = mode
        self.backends = dict(backends or DEFAULT_BACKENDS)
        self.driver = driver
        self.port = port or procs.free_port()
        self.uwsgi = uwsgi
        self.uwsgi_without = tuple(uwsgi_without)
        self.uwsgi_server = uwsgi_server
        self.workers = (GLANCE_UWSGI_INI["processes"] if uwsgi == "glance"
                        else workers)
        self.threads = threads
        self.extra_conf = extra_conf or {}
        self.conf_text = conf_text
        self.progress_filter = progress_filter
        self.keystone = keystone
        self.shared_with = shared_with
        self.database = database or getattr(shared_with, "database", None)
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
        # A second node uses the first node's database and staging area.
        shared = self.shared_with.workdir if self.shared_with else w
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
            "database": {"connection": self.database.url if self.database
                         else "sqlite:///%s/glance.sqlite" % shared},
            # web-download fetches from ports 80 and 443 only, and never
            # from loopback unless allowed: tests serve on 127.0.0.1 (not
            # "localhost").  Without the brackets every URI gets a bare
            # "does not pass filtering".
            "import_filtering_opts": {"allowed_hosts": "[127.0.0.1]",
                                      "allowed_ports": "[]"},
        }
        if self.mode == "single":
            conf["DEFAULT"]["node_staging_uri"] = "file://%s/staging" % shared
            conf["glance_store"] = dict(
                stores=self.driver, default_store="rbd",
                **self._store_options(self.pools[0]))
        else:
            conf["DEFAULT"]["enabled_backends"] = ",".join(
                "%s:%s" % (name, self.driver) for name in self.backends)
            conf["glance_store"] = {
                "default_backend": next(iter(self.backends))}
            conf["os_glance_staging_store"] = {
                "filesystem_store_datadir": os.path.join(shared, "staging")}
            conf["os_glance_tasks_store"] = {
                "filesystem_store_datadir": os.path.join(w, "tasks")}
            for name, pool in self.backends.items():
                conf[name] = self._store_options(pool)
        if self.keystone is not None:
            conf["paste_deploy"] = {"flavor": "keystone",
                                    "config_file": SHIPPED_PASTE_INI}
            conf["keystone_authtoken"] = self.keystone.authtoken_conf()
        for section, options in self.extra_conf.items():
            conf.setdefault(section, {}).update(options)
        for section, options in _parse_ini(self.conf_text or "").items():
            conf.setdefault(section, {}).update(options)
        return conf

    def _uwsgi_conf(self):
        if self.uwsgi == "glance":
            conf = {"uwsgi": dict(GLANCE_UWSGI_INI, **{
                "http-socket": "127.0.0.1:%d" % self.port})}
        else:
            conf = self._testbed_uwsgi_conf()
        if self.uwsgi_server is not None:
            conf["uwsgi"].update(self._system_uwsgi_python())
        for key in self.uwsgi_without:
            conf["uwsgi"].pop(key, None)
        if self.keystone is None:
            # No Keystone: a request without an identity gets headers()'.
            conf["uwsgi"].update({
                "route-if-not":
                    "empty:${HTTP_X_IDENTITY_STATUS} goto:identified",
                "route-run": [
                    "addvar:HTTP_%s=%s" % (name.upper().replace("-", "_"),
                                           value)
                    for name, value in self.headers().items()],
                "route-label": "identified",
            })
        return conf

    def _system_uwsgi_python(self):
        """Settings for Debian's uWSGI: the plugin of this venv's Python
        (its version asked of it) and the venv's packages on its path.

        Not ``virtualenv``: a venv made from another build of the same
        Python (pyenv's, say) brings a standard library whose extensions
        Debian's libpython cannot load. The checkout itself is on the path
        too: the venv has this package as an editable install, a .pth
        file that only ``site`` reads.
        """
        version, *paths = json.loads(subprocess.run(
            [self.python, "-c",
             "import json, sys, sysconfig; print(json.dumps("
             "['%d%d' % sys.version_info[:2], sysconfig.get_paths()"
             "['purelib'], sysconfig.get_paths()['platlib']]))"],
            capture_output=True, text=True, check=True).stdout)
        root = os.path.dirname(os.path.dirname(SHIPPED_PASTE_INI))
        return {"plugins": "python%s" % version,
                "pythonpath": [root] + sorted(set(paths))}

    def _testbed_uwsgi_conf(self):
        return {"uwsgi": {
            "http-socket": "127.0.0.1:%d" % self.port,
            "module": "glance.wsgi.api:application",
            "master": True,
            "processes": self.workers,
            # None: one request at a time per process.
            **({"threads": self.threads} if self.threads else {}),
            "single-interpreter": True,
            "enable-threads": True,
            "die-on-term": True,
            "need-app": True,
            # The app is loaded in the master and forked into the workers:
            # the driver's progress publisher must survive that fork.
            "lazy-apps": False,
            "chunked-input-limit": CHUNKED_INPUT_LIMIT,
            # As devstack sets it: uWSGI's 4 KiB default drops requests
            # with long headers (tokens) or paths, without an answer.
            "buffer-size": 65535,
            "socket-timeout": SOCKET_TIMEOUT,
            # http-socket closes the connection after each response; saying
            # so keeps clients from reusing it (else: connection resets).
            "add-header": "Connection: close",
        }}

    def _write_config(self):
        for sub in ("etc", "staging", "tasks"):
            os.makedirs(os.path.join(self.workdir, sub), exist_ok=True)
        with open(self.conf_path, "w") as f:
            f.write(_ini(self._glance_conf()))
        paste_ini = os.path.join(self.conf_dir, "glance-api-paste.ini")
        with open(paste_ini, "w") as f:
            f.write(PASTE_INI.format(
                workdir=self.workdir,
                progress="upload_progress " if self.progress_filter else ""))
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
        if self.shared_with is None:  # a second node: the first one's
            sync = subprocess.run(
                [self.python, "-m", "glance.cmd.manage", "--config-file",
                 self.conf_path, "db_sync"],
                capture_output=True, text=True, env=env, timeout=300)
            if sync.returncode != 0:
                raise RuntimeError(
                    "glance-manage db_sync failed (rc=%d): %s"
                    % (sync.returncode, sync.stderr[-3000:]))
        self._spawn_uwsgi(self.python, self.uwsgi_ini, self.log_path, env,
                          self.uwsgi_server)
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

    @property
    def pid(self):
        """The uWSGI master's pid."""
        return self._proc.pid

    def worker_pids(self):
        return sorted(p.pid for p in procs.processes()
                      if p.ppid == self._proc.pid and p.state != "Z")

    # -- clients -----------------------------------------------------------

    def headers(self, user="admin"):
        """The identity of an admin of the e2e project, as Keystone's
        authtoken would pass it to glance.

        For raw HTTP clients only: python-glanceclient percent-encodes
        header values, which makes "admin,member,reader" one unknown role.
        With Keystone: a new token of ``user`` (a testbed.keystone.USERS
        name) as X-Auth-Token.
        """
        if self.keystone is not None:
            return {"X-Auth-Token": self.keystone.token(user)}
        return {"X-Identity-Status": "Confirmed", "X-User-Id": USER_ID,
                "X-Project-Id": PROJECT_ID, "X-Roles": ROLES}

    def client(self, user="admin"):
        """A python-glanceclient v2 client, acting as headers()' admin.

        It sends only a token, and uWSGI adds the identity (headers()
        says why not identity_headers).  With Keystone: a keystoneauth
        session of ``user``'s password, talking to this node's URL.
        """
        from glanceclient.v2 import client
        if self.keystone is None:
            return client.Client(self.url, token=NOAUTH_TOKEN)
        from keystoneauth1.identity import v3
        from keystoneauth1 import session
        auth = v3.Password(**self.keystone.auth(user))
        return client.Client(self.url, session=session.Session(auth=auth))

    def cli_env(self, user="admin"):
        """Environment of the glance CLI: with an image URL and a token it
        skips Keystone; nothing checks the token (with Keystone: a real
        token of ``user``)."""
        token = NOAUTH_TOKEN
        if self.keystone is not None:
            token = self.keystone.token(user)
        return {"OS_IMAGE_URL": self.url, "OS_AUTH_TOKEN": token}
