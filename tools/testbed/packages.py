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
import os
import subprocess
import sys
import sysconfig

PACKAGES = ("ceph-mon", "ceph-osd", "ceph-mgr", "ceph-common",
            "python3-rados", "python3-rbd", "memcached")
CEPH_PACKAGES = PACKAGES[:-1]
SYSTEM_DIST_PACKAGES = "/usr/lib/python3/dist-packages"

_apt_updated = False
_installed = set()


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


def link_bindings():
    """Make rados/rbd importable in the running interpreter's (venv) site;
    returns the directory the .pth file names."""
    dest = rbd_bindings_dir(os.path.join(sys.prefix, "ceph-bindings"))
    site = sysconfig.get_paths()["purelib"]
    with open(os.path.join(site, "ceph-bindings.pth"), "w") as f:
        f.write(dest + "\n")
    return dest
