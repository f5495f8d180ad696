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

"""A real Keystone on loopback: uWSGI, sqlite, fernet tokens.

For the tests of glance with keystonemiddleware's ``authtoken`` (real
tokens, several projects).  ``keystone-manage`` creates the database and
the fernet and credential keys, and bootstraps the admin, the roles
(admin implies manager implies member implies reader), RegionOne and the
identity endpoints; then the REST API adds the test bed's projects and
users (``USERS``) and glance's service user.  Stdlib only, like the rest
of tools/testbed; keystone runs in the interpreter given as ``python``,
which needs keystone and pyuwsgi (``tools/setup-env e2e``).
"""

import collections
import grp
import json
import os
import pwd
import subprocess
import sys
import time
import urllib.error
import urllib.request

from testbed import procs

REGION = "RegionOne"
DOMAIN = "Default"
ADMIN_PASSWORD = "admin-secret"

#: A test bed user: its project and its role there.
User = collections.namedtuple("User", "name password project role")

#: Who the bootstrap creates; the cloud names of ``clouds_yaml()``.
USERS = {
    "admin": User("admin", ADMIN_PASSWORD, "admin", "admin"),
    "alice": User("alice", "alice-secret", "alpha", "member"),
    "bob": User("bob", "bob-secret", "beta", "member"),
    # glance's [keystone_authtoken] user, as glance's install guide makes
    # it: admin in the service project.
    "glance": User("glance", "glance-secret", "service", "admin"),
}


def _ini(sections):
    lines = []
    for section, options in sections.items():
        lines.append("[%s]" % section)
        lines.extend("%s = %s" % item for item in options.items())
        lines.append("")
    return "\n".join(lines)


class Keystone(procs.UwsgiService):
    """Keystone under uWSGI on 127.0.0.1, its sqlite database in workdir.

    Use it as a context manager.  ``url`` is the identity endpoint's base
    and ``auth_url`` its v3 URL; ``users`` are ``USERS``, all in the
    Default domain, with ``project_ids``/``user_ids`` filled in by
    ``start()``.  ``add_service`` registers another service's endpoints;
    ``token(user)`` issues a project-scoped token; ``clouds_yaml()``
    writes a clouds.yaml with one cloud per user (named after it).
    """

    def __init__(self, workdir, *, port=None, workers=2,
                 python=sys.executable):
        self.workdir = os.path.abspath(workdir)
        self.port = port or procs.free_port()
        self.workers = workers
        self.python = python
        self.url = "http://127.0.0.1:%d" % self.port
        self.auth_url = self.url + "/v3"
        self.conf_dir = os.path.join(self.workdir, "etc")
        self.conf_path = os.path.join(self.conf_dir, "keystone.conf")
        self.uwsgi_ini = os.path.join(self.conf_dir, "keystone-uwsgi.ini")
        self.log_path = os.path.join(self.workdir, "keystone.log")
        self.users = dict(USERS)
        self.project_ids = {}
        self.user_ids = {}
        self.role_ids = {}
        self.boot_seconds = None
        self._proc = None
        self._admin_token = None

    # -- configuration -----------------------------------------------------

    def _keystone_conf(self):
        w = self.workdir
        return {
            "DEFAULT": {"log_file": self.log_path},
            "database": {"connection": "sqlite:///%s/keystone.sqlite" % w},
            "token": {"provider": "fernet"},
            "fernet_tokens": {"key_repository": os.path.join(w, "fernet")},
            "fernet_receipts": {
                "key_repository": os.path.join(w, "fernet-receipts")},
            "credential": {
                "key_repository": os.path.join(w, "credential-keys")},
            # bcrypt's fewest rounds: every password check (each token
            # issued) costs milliseconds, not a quarter of a second.
            "identity": {"password_hash_rounds": 4},
        }

    def _uwsgi_conf(self):
        return {"uwsgi": {
            "http-socket": "127.0.0.1:%d" % self.port,
            "module": "keystone.wsgi.api:application",
            "master": "true",
            "processes": self.workers,
            "enable-threads": "true",
            "die-on-term": "true",
            "need-app": "true",
            # Each worker opens its own sqlite connections (devstack's
            # keystone runs lazy-apps too).
            "lazy-apps": "true",
            "buffer-size": 65535,
            "add-header": "Connection: close",
        }}

    def _manage(self, *commands):
        """Run keystone-manage commands, each a tuple of arguments, at
        the same time (they are independent: half the boot time)."""
        running = [(args, subprocess.Popen(
            [self.python, "-c",
             "import sys; from keystone.cmd.manage import main; "
             "sys.exit(main())", "--config-file", self.conf_path] +
            list(args),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)) for args in commands]
        failures = []
        for args, proc in running:
            _, err = proc.communicate(timeout=300)
            if proc.returncode != 0:
                failures.append("keystone-manage %s failed (rc=%d): %s" % (
                    args[0], proc.returncode, err[-3000:]))
        if failures:
            raise RuntimeError("\n".join(failures))

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout=60):
        """Create and bootstrap the database, start uWSGI, add the users;
        ``boot_seconds`` says how long that took."""
        if self._proc is not None:
            return
        started = time.monotonic()
        os.makedirs(self.conf_dir, exist_ok=True)
        with open(self.conf_path, "w") as f:
            f.write(_ini(self._keystone_conf()))
        with open(self.uwsgi_ini, "w") as f:
            f.write(_ini(self._uwsgi_conf()))
        owner = ["--keystone-user", pwd.getpwuid(os.getuid()).pw_name,
                 "--keystone-group", grp.getgrgid(os.getgid()).gr_name]
        self._manage(("db_sync",), ("fernet_setup", *owner),
                     ("credential_setup", *owner))
        self._manage((
            "bootstrap", "--bootstrap-password", ADMIN_PASSWORD,
            "--bootstrap-username", "admin",
            "--bootstrap-project-name", "admin",
            "--bootstrap-role-name", "admin",
            "--bootstrap-service-name", "keystone",
            "--bootstrap-region-id", REGION,
            "--bootstrap-admin-url", self.auth_url,
            "--bootstrap-public-url", self.auth_url,
            "--bootstrap-internal-url", self.auth_url))
        env = dict(os.environ, OS_KEYSTONE_CONFIG_DIR=self.conf_dir)
        self._spawn_uwsgi(self.python, self.uwsgi_ini, self.log_path, env)
        try:
            procs.wait_for("keystone on %s" % self.url, self._answers,
                           timeout, interval=0.1,
                           on_timeout=lambda: ":\n" + self.log_tail())
            self._populate()
        except BaseException:
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - started

    def _answers(self):
        if self._proc.poll() is not None:
            raise RuntimeError("keystone exited (rc=%d):\n%s"
                               % (self._proc.returncode, self.log_tail()))
        try:
            with urllib.request.urlopen(self.auth_url, timeout=5):
                return True
        except OSError:  # URLError and HTTPError are OSErrors
            return False

    def _populate(self):
        """The projects, users and role assignments of ``users``."""
        for role in self.request("GET", "/roles")["roles"]:
            self.role_ids[role["name"]] = role["id"]
        for user in self.users.values():
            if user.project not in self.project_ids:
                found = self.request(
                    "GET", "/projects?name=%s" % user.project)["projects"]
                if not found:
                    found = [self.request("POST", "/projects", {"project": {
                        "name": user.project, "domain_id": "default"}})[
                            "project"]]
                self.project_ids[user.project] = found[0]["id"]
            found = self.request("GET", "/users?name=%s" % user.name)["users"]
            if not found:
                found = [self.request("POST", "/users", {"user": {
                    "name": user.name, "password": user.password,
                    "domain_id": "default",
                    "default_project_id": self.project_ids[user.project]}})[
                        "user"]]
            self.user_ids[user.name] = found[0]["id"]
            self.request("PUT", "/projects/%s/users/%s/roles/%s" % (
                self.project_ids[user.project], self.user_ids[user.name],
                self.role_ids[user.role]))

    # -- clients -----------------------------------------------------------

    def auth(self, user):
        """keystoneauth's ``password`` plugin arguments of a user."""
        u = self.users[user]
        return {"auth_url": self.auth_url, "username": u.name,
                "password": u.password, "project_name": u.project,
                "user_domain_name": DOMAIN, "project_domain_name": DOMAIN}

    def token(self, user="admin"):
        """A new token of ``user``, scoped to its project."""
        u = self.users[user]
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": u.name, "domain": {"name": DOMAIN},
                "password": u.password}}},
            "scope": {"project": {"name": u.project,
                                  "domain": {"name": DOMAIN}}}}}
        request = urllib.request.Request(
            self.auth_url + "/auth/tokens", json.dumps(body).encode(),
            {"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.headers["X-Subject-Token"]

    def request(self, method, path, body=None, headers=None):
        """An identity API call as the admin; the decoded JSON answer, or
        None for an empty one.  ``request('DELETE', '/auth/tokens',
        headers={'X-Subject-Token': token})`` revokes a token."""
        if self._admin_token is None:
            self._admin_token = self.token("admin")
        request = urllib.request.Request(
            self.auth_url + path,
            None if body is None else json.dumps(body).encode(),
            dict({"Content-Type": "application/json",
                  "X-Auth-Token": self._admin_token}, **(headers or {})),
            method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                data = response.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError("keystone: %s %s: %s %s" % (
                method, path, e.code, e.read()[:500])) from None
        return json.loads(data) if data else None

    def add_service(self, service_type, name, urls):
        """Register a service and its endpoints in RegionOne; ``urls``
        maps interfaces (public, internal, admin) to URLs.  Replaces the
        endpoints of an already registered service of that type."""
        found = self.request(
            "GET", "/services?type=%s" % service_type)["services"]
        if found:
            service_id = found[0]["id"]
            for endpoint in self.request(
                    "GET", "/endpoints?service_id=%s" % service_id)[
                        "endpoints"]:
                self.request("DELETE", "/endpoints/%s" % endpoint["id"])
        else:
            service_id = self.request("POST", "/services", {"service": {
                "type": service_type, "name": name}})["service"]["id"]
        for interface, url in urls.items():
            self.request("POST", "/endpoints", {"endpoint": {
                "service_id": service_id, "interface": interface,
                "url": url, "region_id": REGION}})
        return service_id

    def add_user(self, name, password, project, role):
        """Another user (a service's, say skyline's: admin in project
        ``service``, as devstack makes it), created like ``USERS`` and
        added to ``users``; idempotent."""
        self.users[name] = User(name, password, project, role)
        self._populate()
        return self.users[name]

    def set_image_service(self, url):
        """Make ``url`` (a glance-api) the catalog's image service, its
        public and internal endpoint."""
        return self.add_service("image", "glance",
                                {"public": url, "internal": url})

    def authtoken_conf(self, user="glance"):
        """The [keystone_authtoken] section of a service using ``user``."""
        u = self.users[user]
        return {"www_authenticate_uri": self.url, "auth_url": self.url,
                "auth_type": "password", "username": u.name,
                "password": u.password, "project_name": u.project,
                "user_domain_name": DOMAIN, "project_domain_name": DOMAIN,
                "region_name": REGION}

    def clouds_yaml(self, path=None, users=("admin", "alice", "bob")):
        """Write a clouds.yaml with one cloud per user, named after it,
        for openstackclient/openstacksdk/keystoneauth; return its path
        (default: clouds.yaml in workdir).  Use it with
        ``OS_CLIENT_CONFIG_FILE=<path> openstack --os-cloud alice ...``."""
        path = path or os.path.join(self.workdir, "clouds.yaml")
        lines = ["clouds:"]
        for user in users:
            lines.append("  %s:" % user)
            lines.append("    auth:")
            for key, value in self.auth(user).items():
                # A JSON string is a YAML double-quoted scalar.
                lines.append("      %s: %s" % (key, json.dumps(value)))
            lines.append("    region_name: %s" % json.dumps(REGION))
            lines.append("    interface: public")
            lines.append("    identity_api_version: 3")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path
