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

"""Debian roots of other releases, for the CI legs and mixed versions.

``python3 tools/testbed leg trixie`` runs the suite inside a Debian 13
root (Ceph 18.2 Reef, CPython 3.13), ``leg forky`` inside a forky root
(Ceph 20.2 Tentacle, CPython 3.14), both built here with debootstrap.

A root is built once (debootstrap, then the test bed's Debian packages)
and kept in /var/cache/glance-progress-store/roots/SUITE, with a stamp of
its inputs (suite, mirror, package set, debootstrap's version): a change
of any of them rebuilds it. Each use copies the host's apt, pip and CA
configuration in, mounts /proc, /sys and /dev (and what it is asked to
bind), and unmounts all of it on the way out, failure or not.
"""

import contextlib
import glob
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

from testbed import packages

CACHE = os.environ.get("GPS_ROOTS_CACHE", "/var/cache/glance-progress-store")
RELEASES = {
    "trixie": "Debian 13: Ceph 18.2 Reef, CPython 3.13",
    "forky": "Debian forky: Ceph 20.2 Tentacle, CPython 3.14",
}
# In the root from the start: what tools/setup-env needs to begin with.
BASE = ("python3", "ca-certificates")
# Bumped when the way a root is built changes.
BUILD = 1
SRC = "/src/glance_progress_store"  # the checkout's copy inside a root
# Variables a command inside the root keeps (CA bundle, pip, CI).
PASS_ENV = re.compile(r"^(PIP_|SSL_|CURL_|REQUESTS_|CI$|GPS_|LANG$|TERM$|"
                      r"DEBIAN_FRONTEND$)")
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def say(*args):
    print(*args, file=sys.stderr, flush=True)


def root_path(suite):
    return os.path.join(CACHE, "roots", suite)


def mirror():
    """The Debian mirror the host's apt uses (its sources), else
    deb.debian.org."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            text = f.read()
        for stanza in text.split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if (uris and suites and "/debian" in uris.group(1)
                    and "security" not in uris.group(1)
                    and not re.search(r"^Enabled:\s*no", stanza, re.M)):
                return uris.group(1).rstrip("/")
    try:
        with open("/etc/apt/sources.list") as f:
            for line in f:
                m = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)\s", line)
                if m and "security" not in m.group(1):
                    return m.group(1).rstrip("/")
    except FileNotFoundError:
        pass
    return "http://deb.debian.org/debian"


def _debootstrap_version():
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}",
                           "debootstrap"], capture_output=True, text=True)
    return proc.stdout.strip()


def inputs(suite, include=BASE, installed=packages.PACKAGES):
    """What a root is made of (debootstrap's ``include``, then the
    packages ``installed``); a change rebuilds it."""
    parts = [suite, mirror(), " ".join(include)]
    parts += [" ".join(installed)] if installed else []
    parts += [str(BUILD), _debootstrap_version()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _run(cmd, what, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise RuntimeError("%s failed (rc=%d): %s\n%s" % (
            what, proc.returncode, " ".join(cmd), tail))
    return proc.stdout


# -- mounts ------------------------------------------------------------------

def _is_mount(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _mounts_under(root):
    root = os.path.realpath(root)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted({p for p in points
                   if p == root or p.startswith(root + "/")},
                  key=len, reverse=True)


def unmount_all(root):
    """Unmount everything under ``root`` (not root itself), deepest first,
    lazily if busy: what an interrupted build left."""
    for point in _mounts_under(root):
        if point != os.path.realpath(root):
            _umount(point)


def _umount(point):
    if subprocess.run(["umount", "-R", point],
                      capture_output=True).returncode:
        subprocess.run(["umount", "-R", "-l", point], capture_output=True)


def _mount(args, target, made):
    _run(["mount", *args, target], "mount")
    made.append(target)


# Roots whose /proc, /sys and /dev this process mounted: {root: [users,
# mount points]}, so that two clusters from one root share them and the
# last one out unmounts them.
_base = {}


@contextlib.contextmanager
def mounted(root, binds=()):
    """/proc, /sys, /dev (with pts, shm) and ``binds`` (host path, or
    (host path, path in root[, "ro"])) mounted in root; what this mounted
    is unmounted on exit, whatever happened."""
    root = os.path.realpath(root)
    made = []
    created = []
    entry = _base.setdefault(root, [0, []])
    entry[0] += 1
    try:
        if entry[0] == 1 and not _is_mount(os.path.join(root, "proc")):
            for args in (["-t", "proc", "proc", "proc"],
                         ["-t", "sysfs", "sysfs", "sys"],
                         ["--rbind", "/dev", "dev"]):
                target = os.path.join(root, args[-1])
                os.makedirs(target, exist_ok=True)
                _mount(args[:-1], target, entry[1])
            _run(["mount", "--make-rslave", os.path.join(root, "dev")],
                 "mount")
        for bind in binds:
            if isinstance(bind, str):
                bind = (bind, bind)
            source, inside = bind[:2]
            target = os.path.join(root, inside.lstrip("/"))
            if not os.path.lexists(target):
                created.append(target)
            if os.path.isdir(source):
                os.makedirs(target, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "a").close()
            _mount(["--bind", source], target, made)
            if len(bind) > 2 and bind[2] == "ro":
                _run(["mount", "-o", "remount,bind,ro", target], "mount")
        yield root
    finally:
        for target in reversed(made):
            _umount(target)
        for target in reversed(created):
            try:
                if os.path.isdir(target):
                    os.rmdir(target)
                else:
                    os.unlink(target)
            except OSError:
                pass
        entry[0] -= 1
        base = []
        if entry[0] == 0:
            base = _base.pop(root)[1]
            for target in reversed(base):
                _umount(target)
        left = [t for t in made + base if _is_mount(t)]
        if left:
            raise RuntimeError("still mounted: %s" % " ".join(left))


# -- building ----------------------------------------------------------------

def _policy_rc_d(root):
    path = os.path.join(root, "usr/sbin/policy-rc.d")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n# testbed: no service starts in this root\n"
                "exit 101\n")
    os.chmod(path, 0o755)


def configure(root, suite):
    """The host's apt, pip and CA configuration, name resolution and this
    suite's sources, copied into the root (each use: they may change)."""
    etc = os.path.join(root, "etc")
    conf_d = os.path.join(etc, "apt/apt.conf.d")
    os.makedirs(conf_d, exist_ok=True)
    for path in sorted(glob.glob("/etc/apt/apt.conf.d/*")):
        with open(path, errors="replace") as f:
            text = f.read()
        # Hooks run programs of the host's (packagekit, appstream) that
        # the root has not: only plain settings are copied.
        if "Invoke" not in text and os.path.isfile(path):
            shutil.copy(path, conf_d)
    for sub in ("auth.conf.d", "trusted.gpg.d"):
        src = os.path.join("/etc/apt", sub)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(etc, "apt", sub),
                            dirs_exist_ok=True)
    with open(os.path.join(etc, "apt/sources.list"), "w") as f:
        f.write("deb %s %s main\n" % (mirror(), suite))
    for path in ("/etc/pip.conf", "/etc/xdg/pip", "/root/.config/pip",
                 "/etc/resolv.conf", "/etc/hosts",
                 "/usr/local/share/ca-certificates"):
        if not os.path.exists(path):
            continue
        dest = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.isdir(path):
            shutil.copytree(path, dest, dirs_exist_ok=True)
        else:
            if os.path.lexists(dest):
                os.unlink(dest)
            shutil.copy(path, dest)
    _policy_rc_d(root)


def pip_local_dirs():
    """Local directories the host's pip configuration names (find-links,
    file:// indexes): bound read-only into the root so that pip there
    finds what the host's finds."""
    dirs = []
    for path in ("/etc/pip.conf", "/etc/xdg/pip/pip.conf",
                 "/root/.config/pip/pip.conf"):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for word in re.findall(r"(?:file://)?(/[^\s]+)", text):
            word = word.rstrip("/")
            # A simple index's pages link to files beside it (../files).
            if os.path.basename(word) == "simple":
                word = os.path.dirname(word)
            top = "/" + word.strip("/").split("/")[0]
            if (os.path.isdir(word) and top not in ("/etc", "/root",
                                                    "/usr", "/var")
                    and word not in dirs):
                dirs.append(word)
    return dirs


def chroot_cmd(root, argv, cwd="/"):
    env = ["%s=%s" % (k, v) for k, v in sorted(os.environ.items())
           if PASS_ENV.match(k)]
    env += ["HOME=/root", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
            "/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive"]
    return ["chroot", root, "/usr/bin/env", "-i", *env,
            "/bin/sh", "-c", 'cd "$0" && exec "$@"', cwd, *argv]


def _debootstrap(suite, target, include):
    script = "/usr/share/debootstrap/scripts/" + suite
    extra = [] if os.path.exists(script) else [
        "/usr/share/debootstrap/scripts/sid"]  # a suite newer than the host
    _run(["debootstrap", "--variant=minbase", "--include=" + ",".join(include),
          suite, target, mirror(), *extra], "debootstrap", timeout=1200)


def _built_once(path, want, what, build):
    """``path``, made by ``build(new)`` in ``path.new`` then renamed, unless
    its stamp (``path.stamp``) says it was made from ``want`` already."""
    stamp = path + ".stamp"
    try:
        with open(stamp) as f:
            if f.read().strip() == want and os.path.isdir(path):
                return path
    except FileNotFoundError:
        pass
    started = time.monotonic()
    say("building %s in %s ..." % (what, path))
    new = path + ".new"
    for old in (new, path):
        if os.path.exists(old):
            unmount_all(old)
            shutil.rmtree(old)
    if os.path.exists(stamp):
        os.unlink(stamp)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    build(new)
    os.rename(new, path)
    with open(stamp, "w") as f:
        f.write(want + "\n")
    say("  built in %.0f s" % (time.monotonic() - started))
    return path


def ensure_root(suite):
    """The root of ``suite``, built (or rebuilt) when its inputs changed."""
    if suite not in RELEASES:
        raise RuntimeError("no root for %s (known: %s)"
                           % (suite, ", ".join(RELEASES)))
    packages.ensure_packages(("debootstrap",), takes="10 s")

    def build(new):
        started = time.monotonic()
        _debootstrap(suite, new, BASE)
        say("  debootstrap done in %.0f s" % (time.monotonic() - started))
        configure(new, suite)
        with mounted(new):
            _run(chroot_cmd(new, ["apt-get", "update"]), "apt-get update",
                 timeout=600)
            _run(chroot_cmd(new, ["apt-get", "install", "-y",
                                  "--no-install-recommends",
                                  *packages.PACKAGES]),
                 "apt-get install", timeout=1800)
            _run(chroot_cmd(new, ["apt-get", "clean"]), "apt-get clean")

    return _built_once(
        root_path(suite), inputs(suite),
        "the %s root (%s; debootstrap and the test bed's packages: 3-6 "
        "min, once)" % (suite, RELEASES[suite]), build)


def copy_checkout(root, src=_REPO, dest=SRC):
    """The checkout's files (tracked and untracked, not ignored) into the
    root at ``dest``; its .venv there (the root's own) is kept."""
    inside = os.path.join(root, dest.lstrip("/"))
    if os.path.isdir(inside):
        for name in os.listdir(inside):
            if name != ".venv":
                path = os.path.join(inside, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
    os.makedirs(inside, exist_ok=True)
    files = _run(["git", "-C", src, "ls-files", "-z", "-c", "-o",
                  "--exclude-standard"], "git ls-files").split("\0")
    tar = os.path.join(root, "tmp/checkout.tar")
    with tarfile.open(tar, "w") as t:
        for name in files:
            if name and os.path.lexists(os.path.join(src, name)):
                t.add(os.path.join(src, name), arcname=name,
                      recursive=False)
    with tarfile.open(tar) as t:
        t.extractall(inside)
    os.unlink(tar)
    return dest


# -- the CI legs -------------------------------------------------------------

# The end-to-end subset a leg runs: glance-api boots, uploads go through
# progress_rbd with the paste filter, progress is read through the CLI, the
# endpoint and the exporter; the Horizon plugin's tests whole (Horizon 27
# on the release's own Python: its venv's paths differ by release).
E2E_SUBSET = (
    "tests/e2e/test_glance_api.py::test_upload_single_store",
    "tests/e2e/test_glance_api.py::"
    "test_failed_upload_leaves_no_image_and_a_failed_record",
    "tests/e2e/test_progress_api.py::test_owner_follows_an_upload_to_stored",
    "tests/e2e/test_progress_api.py::test_failed_upload_shows_failed",
    "tests/e2e/test_exporter.py::test_prometheus_scrapes_an_upload_in_flight",
    "tests/e2e/test_exporter.py::test_a_failed_upload_is_counted_once",
    "tests/e2e/test_ceph_bindings.py",
    "tests/e2e/test_horizon.py",
    "tests/e2e/test_horizon_js.py",
)


def run_in_root(suite, argv, binds=()):
    """Run ``argv`` in the root's copy of the checkout; its exit code."""
    root = ensure_root(suite)
    configure(root, suite)
    copy_checkout(root)
    pip_cache = os.path.join(CACHE, "pip")
    os.makedirs(pip_cache, exist_ok=True)
    all_binds = [(d, d, "ro") for d in pip_local_dirs()]
    all_binds.append((pip_cache, "/root/.cache/pip"))
    all_binds.extend(binds)
    with mounted(root, all_binds):
        _run(chroot_cmd(root, ["update-ca-certificates"]),
             "update-ca-certificates")
        return subprocess.run(chroot_cmd(root, argv, cwd=SRC)).returncode


def leg(suite, pytest_args=()):
    """The suite's CI leg: unit + functional + the e2e subset (Horizon's
    tests included), inside the root; returns pytest's exit code (5, no
    test ran, made 1)."""
    started = time.monotonic()
    root_started = time.monotonic()
    ensure_root(suite)
    root_cost = time.monotonic() - root_started
    # The documentation is built once, on the host, by CI's docs leg and
    # tests/unit/test_docs.py there: the root's copy of the checkout has no
    # git history, which openstackdocstheme (the page's git sha) and reno
    # read, and the docs do not depend on the Ceph or Python release.
    script = ("tools/setup-env e2e && exec .venv/bin/python -m pytest "
              "-p no:cacheprovider -m 'not soak' tests/unit tests/functional "
              "--ignore=tests/unit/test_docs.py "
              + " ".join(map(shlex.quote, E2E_SUBSET + tuple(pytest_args))))
    rc = run_in_root(suite, ["bash", "-c", script])
    if rc == 5:
        say("leg %s: no test ran" % suite)
        rc = 1
    say("leg %s (%s): exit %d in %.0f s (root %.0f s)" % (
        suite, RELEASES[suite], rc, time.monotonic() - started, root_cost))
    return rc


# -- README's commands on a fresh machine -----------------------------------

# What README asks a fresh machine to have before its two commands.
FRESH = ("git", "ca-certificates", "python3")
FRESH_SUITES = ("bookworm", "trixie", "forky")


def fresh_root(suite):
    """A pristine minbase root of ``suite`` with only README's
    prerequisites (FRESH), built once and kept, stamped with its inputs,
    in CACHE/fresh/SUITE. It is never used itself: fresh() copies it."""
    if suite not in FRESH_SUITES:
        raise RuntimeError("no fresh root for %s (known: %s)"
                           % (suite, ", ".join(FRESH_SUITES)))
    packages.ensure_packages(("debootstrap",), takes="10 s")
    return _built_once(
        os.path.join(CACHE, "fresh", suite),
        inputs(suite, include=FRESH, installed=()),
        "a fresh %s root (debootstrap, about a minute, once)" % suite,
        lambda new: _debootstrap(suite, new, FRESH))


def _kill_rooted(root):
    """SIGKILL every process whose root directory is ``root`` (a service
    a package started, a daemon the demo left): the copy can then go."""
    root = os.path.realpath(root)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/root" % pid) == root:
                os.kill(int(pid), 9)
                say("  killed %s, left running in the root" % pid)
        except OSError:
            pass


def fresh(suite, argv):
    """One of README's commands (``argv``: ``tools/demo`` or
    ``tools/run-tests``, with their arguments) on a fresh ``suite``
    machine, as a new user runs it: a copy of its fresh root with the
    host's apt, pip and CA configuration (what any machine here has; no
    pip cache), a git clone of this checkout's HEAD (committed work
    only), then the command as root in the clone; the copy is removed
    after. Returns the command's exit code."""
    pristine = fresh_root(suite)
    root = tempfile.mkdtemp(prefix="fresh-%s-" % suite,
                            dir=os.path.dirname(pristine))
    command = " ".join(map(shlex.quote, argv))
    started = time.monotonic()
    try:
        _run(["cp", "-a", pristine + "/.", root], "copying the fresh root")
        configure(root, suite)
        # A fresh machine has no policy-rc.d (configure writes one).
        os.unlink(os.path.join(root, "usr/sbin/policy-rc.d"))
        origin = "/src/origin"
        binds = [(d, d, "ro") for d in pip_local_dirs()]
        binds.append((_REPO, origin, "ro"))
        script = ("git -c safe.directory='*' clone -q %s /root/gps && "
                  "cd /root/gps && git log --oneline -1 && exec %s"
                  % (origin, command))
        with mounted(root, binds):
            _run(chroot_cmd(root, ["update-ca-certificates"]),
                 "update-ca-certificates")
            say("fresh %s: git clone, then %s" % (suite, command))
            try:
                rc = subprocess.run(
                    chroot_cmd(root, ["bash", "-c", script]),
                    stdin=subprocess.DEVNULL).returncode
            finally:
                _kill_rooted(root)
    finally:
        unmount_all(root)
        shutil.rmtree(root, ignore_errors=True)
    say("fresh %s: %s exit %d, %.0f s from a fresh copy" % (
        suite, command, rc, time.monotonic() - started))
    return rc
