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

"""Debian packages of the test bed, and Ceph's bindings for a venv.

Ceph, memcached and the rados/rbd bindings come from Debian, not PyPI, so
a fresh CI machine installs them here (as root) before anything starts.
"""

import glob
import importlib.util
import io
import os
import re
import subprocess
import sys
import time

CEPH_PACKAGES = ("ceph-mon", "ceph-osd", "ceph-mgr", "ceph-common",
                 "python3-rados", "python3-rbd")
# Other languages' memcached clients, for the wire-compatibility test.
CLIENT_PACKAGES = ("php-cli", "php-memcached")
# The exporter's tests: a real Prometheus scrapes it, a real browser shows
# its page (Selenium drives Debian's chromedriver: no browser download).
MONITORING_PACKAGES = ("prometheus", "chromium", "chromium-driver")
# The upload notifications' tests: a private RabbitMQ node (rabbitmq.py).
# Debian's package would start a system node on 5672: POLICY_RC_D keeps
# it from starting, and the test bed never uses it.
MESSAGING_PACKAGES = ("rabbitmq-server",)
# glance's database when many uploads write at once (postgres.py), which
# sqlite cannot take; installed on first use. Debian's package creates a
# system cluster that POLICY_RC_D keeps from starting: never used.
DATABASE_PACKAGES = ("postgresql",)
# Skyline's web server (skyline.py), as its install guide has it;
# installed on first use. Debian's package would start a system nginx on
# port 80: POLICY_RC_D keeps it from starting, and the test bed runs its
# own on loopback.
SKYLINE_PACKAGES = ("nginx",)
# skyline-apiserver 9.0.0 requires immutables, whose newest release (0.21)
# has no wheel for CPython 3.14 (forky's): pip compiles its C extension
# there, with these. Installed only for such an interpreter (skyline.py).
SKYLINE_BUILD_PACKAGES = ("gcc", "python3-dev")
# What the demo runs (Ceph, memcached; glance comes from PyPI), and on
# top of it what only the tests use: the demo installs the first set,
# tools/run-tests both.
DEMO_PACKAGES = CEPH_PACKAGES + ("memcached",)
PACKAGES = (DEMO_PACKAGES + CLIENT_PACKAGES + MONITORING_PACKAGES +
            MESSAGING_PACKAGES)
SETS = {"demo": DEMO_PACKAGES, "tests": PACKAGES}
# Daemons are started by the test bed on loopback, never as the system's
# services (Debian's prometheus would listen on every interface): while
# apt-get runs, invoke-rc.d asks this policy, which refuses every start.
POLICY_RC_D = "/usr/sbin/policy-rc.d"
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

_apt_updated = False
_installed = set()


def bindings_python(dist_packages="/usr/lib/python3/dist-packages"):
    """The interpreter Debian's python3-rbd is built for, from the
    installed extension's name (rbd.cpython-313-x86_64-linux-gnu.so:
    "python3.13"): Debian 12 builds it for 3.11, 13 for 3.13, forky for
    3.14 alone, whatever its default python3 is. None before
    python3-rbd is installed."""
    for path in sorted(glob.glob(os.path.join(dist_packages,
                                              "rbd.cpython-3*.so"))):
        match = re.match(r"rbd\.cpython-3(\d+)", os.path.basename(path))
        if match:
            return "python3.%s" % match.group(1)
    return None


def venv_packages(python=None):
    """Debian's venv of ``python`` (default: the running interpreter)
    when it lacks it (``python3 -m venv`` fails without ensurepip, which
    Debian ships apart, as python3.X-venv): () or ("python3.13-venv",)."""
    if python is None:
        if importlib.util.find_spec("ensurepip") is not None:
            return ()
        return ("python%d.%d-venv" % sys.version_info[:2],)
    if subprocess.run([python, "-c", "import ensurepip"],
                      capture_output=True).returncode == 0:
        return ()
    return ("%s-venv" % os.path.basename(python),)


def ensure_packages(packages=PACKAGES, takes=None, out=None):
    """Install missing Debian packages so a fresh CI machine has them.

    Says on ``out`` what it installs before apt-get runs, how long that
    usually takes (``takes``, e.g. "1-3 min"; apt-get is silent
    meanwhile), then how long it took; says nothing when everything is
    there."""
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
    out = out or sys.stderr
    print("installing Debian's %s (apt-get%s) ..." % (
        " ".join(missing), "; %s on a fresh machine" % takes if takes
        else ""), file=out, flush=True)
    started = time.monotonic()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    steps = [] if _apt_updated else [["apt-get", "update"]]
    steps.append(
        ["apt-get", "install", "-y", "--no-install-recommends", *missing])
    own_policy = not os.path.exists(POLICY_RC_D)
    if own_policy:
        with open(POLICY_RC_D, "w") as f:
            f.write("#!/bin/sh\n# testbed: no service starts during "
                    "apt-get install\nexit 101\n")
        os.chmod(POLICY_RC_D, 0o755)
    try:
        for cmd in steps:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  env=env)
            if proc.returncode != 0:
                tail = "\n".join(
                    (proc.stdout + proc.stderr).splitlines()[-20:])
                raise RuntimeError("%s failed (rc=%d):\n%s"
                                   % (" ".join(cmd), proc.returncode, tail))
            if cmd[1] == "update":
                _apt_updated = True
    finally:
        if own_policy:
            os.remove(POLICY_RC_D)
    _installed.update(missing)
    print("  installed in %.0f s" % (time.monotonic() - started), file=out,
          flush=True)


def link_bindings():
    """Make rados/rbd importable in the running interpreter's venv.

    The package's own ``glance-progress link-ceph-bindings`` does it, the
    way README tells operators; imported from the checkout, since this
    runs before the package is installed. Returns the linked directory.
    """
    sys.path.insert(0, _ROOT)
    from glance_progress_store.ops import ceph_bindings
    ceph_bindings.link_ceph_bindings(sys.prefix, out=io.StringIO())
    return os.path.join(sys.prefix, ceph_bindings.LINK_DIR)
