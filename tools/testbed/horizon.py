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

"""Horizon 27 with this package's plugin, on loopback, against the test
bed's Keystone.

Installed as doc/source/install/horizon.rst tells operators ("Installing"):
horizon==27.0.0 from PyPI in a venv of its own, this package into it
(editable, from the checkout), the plugin's enabled file copied into
``openstack_dashboard/local/enabled/``, ``collectstatic`` and
``compress`` (``python -m django ... --settings
openstack_dashboard.settings``); then Django's server on 127.0.0.1 (one
process, sessions in its memory).  The venv and the collected static
files are cached in ``cache_dir()`` (``$GPS_TESTBED_CACHE``, default
~/.cache/glance-progress-testbed): a second run only checks them; the
first one, on a fresh machine, takes about 2 minutes.  Stdlib only.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

from testbed import procs

VERSION = "27.0.0"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PLUGIN = os.path.join(ROOT, "glance_progress_store", "dashboard")
ENABLED_FILE = "_1051_glance_progress.py"

# Horizon's openstack_dashboard/local/local_settings.py, as an operator
# writes it; what changes between runs comes from the environment.
LOCAL_SETTINGS = """\
# Written by tools/testbed/horizon.py.
import os

DEBUG = False
ALLOWED_HOSTS = ['127.0.0.1', 'localhost']
SECRET_KEY = 'testbed-only-%(secret)s'
OPENSTACK_KEYSTONE_URL = os.environ.get(
    'GPS_HORIZON_KEYSTONE_URL', 'http://127.0.0.1:5000/v3')
OPENSTACK_ENDPOINT_TYPE = 'publicURL'
# One process: sessions in its memory (the stock default is memcached).
SESSION_ENGINE = 'django.contrib.sessions.backends.cache'
CACHES = {'default': {
    'BACKEND': 'django.core.cache.backends.locmem.LocMemCache'}}
COMPRESS_OFFLINE = True
STATIC_ROOT = os.environ.get('GPS_HORIZON_STATIC_ROOT', %(static)r)
HORIZON_IMAGES_UPLOAD_MODE = os.environ.get(
    'GPS_HORIZON_UPLOAD_MODE', 'legacy')
# A legacy upload goes through Horizon: no cap on its size here.
DATA_UPLOAD_MAX_MEMORY_SIZE = None
LOGGING = {
    'version': 1,
    'disable_existing_loggers': False,
    'handlers': {'console': {'class': 'logging.StreamHandler'}},
    'root': {'handlers': ['console'], 'level': 'INFO'},
}
"""


def cache_dir():
    """Where the test bed keeps what outlives a run."""
    path = os.environ.get("GPS_TESTBED_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "glance-progress-testbed")
    os.makedirs(path, exist_ok=True)
    return path


def _tree_hash(*paths):
    digest = hashlib.sha256()
    for top in paths:
        for folder, dirs, files in sorted(os.walk(top)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".pyc", ".spec.js")):
                    continue
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, top).encode())
                with open(path, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()[:16]


def _read(path):
    """A stamp's text; None when there is none."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _python_version(python):
    """'CPython 3.13' for the interpreter ``python``, asked of it (a venv
    outlives a bug-fix release, not a new minor one)."""
    return subprocess.run(
        [python, "-c", "import platform, sys; print(platform."
         "python_implementation(), '%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=True).stdout.strip()


class Horizon(procs.Service):
    """Horizon on 127.0.0.1 with the plugin, logging in to ``keystone``
    (a testbed.Keystone or its v3 URL).  Use it as a context manager;
    ``url`` ends with '/'.  ``install()`` alone prepares the venv and
    static files (``python3 tools/testbed`` has no command for it: the
    tests and the demo call it)."""

    def __init__(self, workdir, keystone, *, port=None, python=None,
                 upload_mode="legacy", out=None):
        self.workdir = os.path.abspath(workdir)
        self.keystone_url = getattr(keystone, "auth_url", keystone)
        self.port = port or procs.free_port()
        self.url = "http://127.0.0.1:%d/" % self.port
        self.upload_mode = upload_mode
        # The venv's interpreter: the one running the tests and the demo
        # (.venv's, the Python Debian's Ceph bindings are built for), so
        # Horizon runs on each release's own Python.  Its version and
        # paths are asked of it, never written here.
        self.base_python = python or sys.executable
        self.out = out or sys.stderr
        self.venv = os.path.join(cache_dir(), "horizon-%s" % VERSION)
        self.python = os.path.join(self.venv, "bin", "python")
        # README's commands: python -m django ... --settings
        # openstack_dashboard.settings
        self.django = [self.python, "-m", "django"]
        self.log_path = os.path.join(self.workdir, "horizon.log")
        self.static_root = None
        self.install_seconds = None
        self._site_packages = None
        self._proc = None

    # -- installing --------------------------------------------------------

    def _say(self, text):
        print(text, file=self.out, flush=True)

    def _run(self, *args, env=None, timeout=900):
        return procs.run(list(args), timeout=timeout,
                         env=os.environ.copy() if env is None else env)

    def _pip(self, *args):
        return self._run(self.python, "-m", "pip", "install", "-q",
                         "--disable-pip-version-check", *args)

    @property
    def site_packages(self):
        """The venv's site-packages, as its own Python reports it (its
        path names the interpreter's version)."""
        if self._site_packages is None:
            self._site_packages = self._run(
                self.python, "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])"
            ).strip()
        return self._site_packages

    @property
    def dashboard_dir(self):
        return os.path.join(self.site_packages, "openstack_dashboard")

    def env(self):
        return dict(procs.clean_env(),
                    GPS_HORIZON_KEYSTONE_URL=self.keystone_url,
                    GPS_HORIZON_STATIC_ROOT=self.static_root,
                    GPS_HORIZON_UPLOAD_MODE=self.upload_mode,
                    PYTHONDONTWRITEBYTECODE="1")

    def install(self):
        """Horizon's venv, the plugin in it, static files collected and
        compressed; each step only when its inputs changed."""
        started = time.monotonic()
        stamp = os.path.join(self.venv, "testbed.installed")
        # A venv made by another Python (the cache outlived an upgrade, or
        # was made by another release's) is made anew.
        wanted = "%s %s\n" % (VERSION, _python_version(self.base_python))
        if not (os.path.exists(self.python) and _read(stamp) == wanted):
            self._say("installing Horizon %s from PyPI into %s (about "
                      "2 min the first time) ..." % (VERSION, self.venv))
            shutil.rmtree(self.venv, ignore_errors=True)
            self._site_packages = None
            self._run(self.base_python, "-m", "venv", self.venv)
            self._pip("horizon==%s" % VERSION)
            with open(stamp, "w") as f:
                f.write(wanted)
        # this package with its dashboard extra (install/horizon.rst's
        # `pip install`), editable from the checkout
        # (again when another checkout or new requirements)
        mark = os.path.join(self.venv, "testbed.plugin")
        wanted = "%s %s" % (ROOT, self._setup_hash())
        if _read(mark) != wanted:
            self._say("installing glance_progress_store (editable) into "
                      "Horizon's venv ...")
            self._pip("-e", ROOT + "[dashboard]")
            with open(mark, "w") as f:
                f.write(wanted)
        # README: copy the enabled file into openstack_dashboard/local/enabled
        shutil.copy(os.path.join(PLUGIN, "enabled", ENABLED_FILE),
                    os.path.join(self.dashboard_dir, "local", "enabled"))
        self.static_root = os.path.join(cache_dir(), "horizon-%s-static-%s" % (
            VERSION, _tree_hash(PLUGIN)))
        with open(os.path.join(self.dashboard_dir, "local",
                               "local_settings.py"), "w") as f:
            f.write(LOCAL_SETTINGS % {"secret": _tree_hash(PLUGIN),
                                      "static": self.static_root})
        os.makedirs(self.workdir, exist_ok=True)
        done = os.path.join(self.static_root, "testbed.compressed")
        if not os.path.exists(done):
            self._say("collecting and compressing Horizon's static files "
                      "(about 30 s) ...")
            shutil.rmtree(self.static_root, ignore_errors=True)
            self.manage("collectstatic", "--noinput")
            self.manage("compress", "--force")
            with open(done, "w") as f:
                f.write("ok\n")
        self.install_seconds = time.monotonic() - started

    def _setup_hash(self):
        digest = hashlib.sha256()
        with open(os.path.join(ROOT, "setup.cfg"), "rb") as f:
            digest.update(f.read())
        return digest.hexdigest()[:16]

    def manage(self, *args, timeout=600):
        """``python -m django ARGS --settings
        openstack_dashboard.settings`` in Horizon's venv, as README runs
        it; its output."""
        return self._run(*self.django, *args, "--settings",
                         "openstack_dashboard.settings", env=self.env(),
                         timeout=timeout)

    # -- running -----------------------------------------------------------

    def start(self, timeout=120):
        if self._proc is not None:
            return
        self.install()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [*self.django, "runserver", "--noreload", "--insecure",
                 "--settings", "openstack_dashboard.settings",
                 "127.0.0.1:%d" % self.port],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env(), start_new_session=True)
        try:
            procs.wait_for("Horizon on %s" % self.url, self._answers,
                           timeout, interval=0.2,
                           on_timeout=lambda: ":\n" + self.log_tail())
        except BaseException:
            self.stop()
            raise

    def _answers(self):
        if self._proc.poll() is not None:
            raise RuntimeError("Horizon exited (rc=%d):\n%s"
                               % (self._proc.returncode, self.log_tail()))
        try:
            with urllib.request.urlopen(self.url + "auth/login/", timeout=10):
                return True
        except urllib.error.HTTPError:
            return False
        except OSError:
            return False

    @property
    def pid(self):
        return self._proc.pid


# -- a kept stack: the demo's --keep --------------------------------------

def start_for_stack(local, out=None):
    """Keystone, a glance-api of ``local`` in the keystone flavor (its
    catalog's image service) and Horizon with the plugin: what
    ``tools/demo --keep`` adds.  Returns (keystone, glance, horizon);
    everything started is stopped again if a step fails."""
    from testbed import keystone as keystone_mod
    ks = keystone_mod.Keystone(os.path.join(local.workdir, "keystone"))
    horizon = None
    try:
        ks.start()
        api = local.add_glance("glance-keystone", keystone=ks)
        ks.set_image_service(api.url)
        horizon = Horizon(os.path.join(local.workdir, "horizon"), ks,
                          out=out)
        horizon.start()
    except BaseException:
        if horizon is not None:
            horizon.stop()
        ks.stop()
        raise
    return ks, api, horizon


def record_in_state(workdir, keystone, horizon):
    """Add Horizon (first) and Keystone (last) to the kept stack's state
    file, so that ``tools/glance_stack.py down`` stops them too."""
    from testbed import stack
    state = stack.load_state(workdir)
    state["processes"].insert(0, {
        "name": "horizon", "pid": horizon.pid,
        "marker": "127.0.0.1:%d" % horizon.port, "group": True})
    state["processes"].append({
        "name": "keystone", "pid": keystone._proc.pid,
        "marker": keystone.uwsgi_ini, "group": True})
    state["horizon"] = horizon.url
    state["keystone"] = keystone.auth_url
    with open(stack.state_path(workdir), "w") as f:
        json.dump(state, f, indent=2)
