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

"""Skyline 9.0.0 on loopback, against the test bed's Keystone.

Run as its install guide has it, every address on 127.0.0.1:
skyline-apiserver from PyPI in a venv of its own (pins in
skyline-requirements.txt: unconstrained, pip picks releases newer than
9.0.0 was made with), ``skyline.yaml`` from its sample generator with
the test bed's values, ``alembic upgrade head`` on sqlite, uvicorn on a
free port; then Debian's nginx with the config ``skyline-nginx-generator``
writes from Keystone's catalog (one location per service), rewritten
for loopback (its own pid, temp and log paths, the upstream on uvicorn's
port).  The console is not built here: ``console_wheel`` is the wheel of
a built skyline-console (tools/testbed/skyline_console.py), which pip
installs for the session as the install guide's ``skyline-install`` block
installs it, so that the generator writes the installed package's
``static/`` as nginx's ``root``.

Skyline's login lists the network service's extensions: the catalog gets
a ``network`` service, a stdlib stub answering ``GET /v2.0/extensions``
(nova and cinder are not needed for Compute -> Images).  Its system user
``skyline`` is admin in project ``service``, as devstack makes it.  The
venv is cached in ``horizon.cache_dir()``: the first run takes about
30 s more.  Stdlib only.
"""

import grp
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from testbed import horizon
from testbed import keystone as keystone_mod
from testbed import packages
from testbed import procs

VERSION = "9.0.0"
HERE = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS = os.path.join(HERE, "skyline-requirements.txt")
NGINX = "/usr/sbin/nginx"
SYSTEM_USER = ("skyline", "skyline-secret", "service", "admin")
# what Skyline's login needs of neutron: its extensions (none here)
NETWORK_STUB = r"""
import http.server, json, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0].rstrip("/").endswith("/v2.0/extensions"):
            code, body = 200, {"extensions": []}
        else:
            code, body = 404, {"NeutronError": {
                "type": "HTTPNotFound", "detail": "",
                "message": "the test bed's network stub has no %s"
                           % self.path}}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("network stub: %s\n" % (fmt % args))
        sys.stderr.flush()

http.server.ThreadingHTTPServer(
    ("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def _needs_compiler(python):
    """Does pip compile a C extension of skyline-requirements.txt for
    ``python`` ('CPython 3.14', horizon._python_version's)? See
    packages.SKYLINE_BUILD_PACKAGES."""
    implementation, version = python.split()
    return implementation == "CPython" and tuple(
        map(int, version.split("."))) >= (3, 14)


def _file_hash(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def _set_keys(text, values):
    """The sample skyline.yaml with ``values`` ({key: value}) replacing
    the values of those keys (each key once in the sample: stdlib has no
    YAML; a JSON string is a YAML scalar)."""
    for key, value in values.items():
        text, count = re.subn(
            r"(?m)^(\s+%s:).*$" % re.escape(key),
            lambda m: "%s %s" % (m.group(1), json.dumps(value)), text)
        if count != 1:
            raise RuntimeError("skyline.yaml: %d lines of %r" % (count, key))
    return text


class Skyline(procs.Service):
    """skyline-apiserver and nginx on 127.0.0.1 serving the console of
    ``console_wheel``, logging in to ``keystone`` (a testbed.Keystone: its
    catalog gains the ``network`` stub and the user ``skyline``).  Use it
    as a context manager; ``url`` ends with '/'; ``regenerate()`` writes
    nginx's config from the catalog again and reloads it."""

    def __init__(self, workdir, keystone, console_wheel, *, port=None,
                 out=None, python=None):
        self.workdir = os.path.abspath(workdir)
        self.keystone = keystone
        self.console_wheel = os.path.abspath(console_wheel)
        # where pip installs the console for this instance (on the
        # apiserver's path): the cached venv stays the same for every run
        self.console_dir = os.path.join(self.workdir, "console")
        self.static_dir = os.path.join(self.console_dir, "skyline_console",
                                       "static")
        self.port = port or procs.free_port()
        self.api_port = procs.free_port()
        self.stub_port = procs.free_port()
        self.url = "http://127.0.0.1:%d/" % self.port
        self.api_url = "http://127.0.0.1:%d/" % self.api_port
        self.stub_url = "http://127.0.0.1:%d" % self.stub_port
        self.out = out or sys.stderr
        self.base_python = python or sys.executable
        self.venv = os.path.join(horizon.cache_dir(),
                                 "skyline-apiserver-%s" % VERSION)
        self.bin = os.path.join(self.venv, "bin")
        self.conf_dir = os.path.join(self.workdir, "etc")
        self.log_dir = os.path.join(self.workdir, "log")
        self.nginx_conf = os.path.join(self.workdir, "nginx.conf")
        self.nginx_error_log = os.path.join(self.log_dir, "nginx-main.log")
        self.log_path = os.path.join(self.workdir, "skyline-apiserver.log")
        self.stub_log = os.path.join(self.workdir, "network-stub.log")
        self.timings = {}
        self._nginx = None
        self._stub = None

    def _say(self, text):
        print(text, file=self.out, flush=True)

    def _run(self, *args, timeout=600):
        return procs.run(list(args), timeout=timeout, env=self.env())

    def env(self):
        """skyline's config dir; on the path, the console installed from
        ``console_wheel`` (the generator writes its ``static_path`` as
        nginx's root)."""
        return dict(procs.clean_env(), OS_CONFIG_DIR=self.conf_dir,
                    PYTHONPATH=self.console_dir,
                    PYTHONDONTWRITEBYTECODE="1")

    # -- installing --------------------------------------------------------

    def install(self):
        """The venv from skyline-requirements.txt, again when that file or
        the interpreter's minor version changed; Debian's nginx."""
        started = time.monotonic()
        packages.ensure_packages(packages.SKYLINE_PACKAGES, takes="10 s",
                                 out=self.out)
        python = horizon._python_version(self.base_python)
        stamp = os.path.join(self.venv, "testbed.installed")
        wanted = "%s %s %s\n" % (VERSION, python, _file_hash(REQUIREMENTS))
        if not (os.path.exists(os.path.join(self.bin, "uvicorn"))
                and horizon._read(stamp) == wanted):
            self._say("installing skyline-apiserver %s from PyPI into %s "
                      "(about 30 s the first time) ..." % (VERSION, self.venv))
            shutil.rmtree(self.venv, ignore_errors=True)
            if _needs_compiler(python):
                packages.ensure_packages(packages.SKYLINE_BUILD_PACKAGES,
                                         takes="30 s", out=self.out)
            self._run(self.base_python, "-m", "venv", self.venv)
            self._run(os.path.join(self.bin, "python"), "-m", "pip",
                      "install", "-q", "--disable-pip-version-check",
                      "-r", REQUIREMENTS, timeout=900)
            with open(stamp, "w") as f:
                f.write(wanted)
        self.timings["venv"] = time.monotonic() - started

    def _configure(self):
        """skyline.yaml from the sample generator, with the test bed's
        values; the database made by alembic."""
        for path in (self.conf_dir, self.log_dir):
            os.makedirs(path, exist_ok=True)
        # The guide's `pip install --force-reinstall --no-deps WHEEL`, into
        # a folder of this instance's instead of the cached venv; with
        # --target, pip replaces what an earlier start put there only
        # when told --upgrade.
        self._run(os.path.join(self.bin, "python"), "-m", "pip", "install",
                  "-q", "--disable-pip-version-check", "--no-deps",
                  "--upgrade", "--target", self.console_dir,
                  self.console_wheel)
        sample = os.path.join(self.conf_dir, "skyline.yaml.sample")
        self._run(os.path.join(self.bin, "skyline-sample-config-generator"),
                  "-o", sample)
        with open(sample) as f:
            text = f.read()
        user, password, project, _ = SYSTEM_USER
        text = _set_keys(text, {
            "database_url": "sqlite:///%s" % os.path.join(
                self.workdir, "skyline.db"),
            "log_dir": self.log_dir,
            "policy_file_path": os.path.join(self.conf_dir, "policy"),
            "secret_key": secrets.token_urlsafe(32),
            "ssl_enabled": False,
            "keystone_url": self.keystone.auth_url + "/",
            "system_user_name": user,
            "system_user_password": password,
            "system_project": project,
        })
        with open(os.path.join(self.conf_dir, "skyline.yaml"), "w") as f:
            f.write(text)
        package = self._run(
            os.path.join(self.bin, "python"), "-c",
            "import os, skyline_apiserver as s; "
            "print(os.path.dirname(s.__file__))").strip()
        self._run(os.path.join(self.bin, "alembic"), "-c",
                  os.path.join(package, "db", "alembic", "alembic.ini"),
                  "upgrade", "head")

    def _register(self):
        """Skyline's system user and the network stub in the catalog."""
        self.keystone.add_user(*SYSTEM_USER)
        self.keystone.add_service("network", "neutron", {
            "public": self.stub_url, "internal": self.stub_url})

    # -- running -----------------------------------------------------------

    def start(self, timeout=120):
        if self._proc is not None:
            return
        self.install()
        os.makedirs(self.workdir, exist_ok=True)
        try:
            started = time.monotonic()
            with open(self.stub_log, "ab") as log:
                self._stub = subprocess.Popen(
                    [sys.executable, "-c", NETWORK_STUB,
                     str(self.stub_port)],
                    stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)
            self._register()
            self._configure()
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(
                    [os.path.join(self.bin, "uvicorn"),
                     "skyline_apiserver.main:app", "--host", "127.0.0.1",
                     "--port", str(self.api_port)],
                    stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, env=self.env(),
                    start_new_session=True, cwd=self.workdir)
            procs.wait_for("skyline-apiserver on %s" % self.api_url,
                           lambda: self._answers(self.api_url + "api/v1/"
                                                 "config", self._proc),
                           timeout, on_timeout=self._failure)
            self.timings["apiserver"] = time.monotonic() - started
            started = time.monotonic()
            self._write_nginx_conf()
            self._nginx = subprocess.Popen(
                [NGINX, "-p", self.workdir, "-c", self.nginx_conf,
                 "-e", self.nginx_error_log, "-g", "daemon off;"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
            procs.wait_for(
                "Skyline's nginx on %s" % self.url,
                lambda: self._answers(
                    self.url + "api/openstack/skyline/api/v1/config",
                    self._nginx), timeout,
                on_timeout=lambda: ":\n" + self.log_tail())
            self.timings["nginx"] = time.monotonic() - started
        except BaseException:
            self.stop()
            raise

    def _answers(self, url, proc):
        if proc.poll() is not None:
            raise RuntimeError("%s exited (rc=%d):\n%s" % (
                proc.args[0], proc.returncode, self.log_tail()))
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status == 200
        except OSError:  # URLError and HTTPError are OSErrors
            return False

    def _generate(self):
        """``skyline-nginx-generator``'s config, as Skyline writes it from
        the catalog."""
        generated = os.path.join(self.workdir, "nginx.generated.conf")
        self._run(os.path.join(self.bin, "skyline-nginx-generator"),
                  "-o", generated, "--listen-address",
                  "127.0.0.1:%d" % self.port, "--log-dir", self.log_dir)
        with open(generated) as f:
            return f.read()

    def _write_nginx_conf(self):
        """The generated config for loopback: pid, temp paths and the
        upstream (a unix socket in /var/lib/skyline) are the test bed's,
        ``root`` must be the installed console's ``static/``; ``nginx -t``
        checks it."""
        text = self._generate()
        if not re.search(r"(?m)^\s*root %s;$" % re.escape(self.static_dir),
                         text):
            raise RuntimeError("nginx.conf from skyline-nginx-generator: its"
                               " root is not the installed console's %s"
                               % self.static_dir)
        temp = os.path.join(self.workdir, "nginx-temp")
        os.makedirs(temp, exist_ok=True)
        lines = ["pid %s;" % os.path.join(self.workdir, "nginx.pid"),
                 "error_log %s;" % self.nginx_error_log]
        if os.geteuid() == 0:
            # A root master runs its workers as nobody, who cannot read
            # the console in the workdir (0700) nor write the temp paths:
            # they run as the test bed's own user instead.
            lines.append("user %s %s;" % (
                pwd.getpwuid(os.getuid()).pw_name,
                grp.getgrgid(os.getgid()).gr_name))
        temps = "".join(
            "\n    %s_temp_path %s;" % (kind, os.path.join(temp, kind))
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                         "scgi"))
        for pattern, new in (
                (r"(?m)^pid .*;$", "\n".join(lines)),
                (r"(?m)^http \{$", "http {" + temps),
                (r"server unix:\S+", "server 127.0.0.1:%d" % self.api_port)):
            text, count = re.subn(pattern, new, text)
            if count != 1:
                raise RuntimeError("nginx.conf from skyline-nginx-generator:"
                                   " %d matches of %r" % (count, pattern))
        with open(self.nginx_conf, "w") as f:
            f.write(text)
        self._run(NGINX, "-t", "-q", "-p", self.workdir, "-c",
                  self.nginx_conf, "-e", self.nginx_error_log)

    def regenerate(self, timeout=30):
        """Generate nginx's config from the catalog as it is now (after
        ``keystone.set_image_service``, say) and reload nginx; returns
        when the old workers are gone, so every new request sees it."""
        self._write_nginx_conf()
        old = self._workers()
        os.kill(self._nginx.pid, signal.SIGHUP)
        procs.wait_for("nginx to reload %s" % self.nginx_conf,
                       lambda: (lambda now: now and not now & old)(
                           self._workers()), timeout,
                       on_timeout=lambda: ":\n" + self.log_tail())

    def _workers(self):
        return {p.pid for p in procs.processes()
                if p.ppid == self._nginx.pid and p.state != "Z"}

    def location(self, service):
        """nginx's location of ``service`` ('glance'): the console's base
        URL of its API."""
        return "%sapi/openstack/%s/%s/" % (
            self.url, keystone_mod.REGION.lower(), service)

    def log_tail(self, lines=50):
        """The ends of the apiserver's log (uvicorn's and its own), of
        nginx's error logs and of the network stub's."""
        parts = []
        for path in (self.log_path,
                     os.path.join(self.log_dir, "skyline.log"),
                     self.nginx_error_log,
                     os.path.join(self.log_dir, "skyline-nginx-error.log"),
                     self.stub_log):
            try:
                with open(path, errors="replace") as f:
                    tail = "".join(f.readlines()[-lines:])
            except FileNotFoundError:
                continue
            if tail:
                parts.append("--- %s:\n%s" % (os.path.basename(path), tail))
        return "".join(parts)

    def stop(self):
        """nginx, the apiserver, the network stub; idempotent."""
        for name in ("_nginx", "_proc", "_stub"):
            proc = getattr(self, name)
            if proc is not None:
                procs.stop_group(proc.pid, proc)
                setattr(self, name, None)
