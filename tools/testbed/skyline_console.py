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

"""skyline-console 9.0.0 with this package's patches, built once.

The wheel on PyPI carries a 2022 console, so the test bed builds it as
doc/source/install/skyline.rst tells operators: the sdist
(``pip download --no-deps --no-binary :all: skyline-console==9.0.0``),
``contrib/skyline/*.patch`` applied in file-name order with
``patch -p1``, ``yarn install`` and ``yarn run build`` (webpack), which
writes ``skyline_console/static``.

A build is cached in ``cache_dir()/skyline-console/KEY``, KEY the sha256
of the sdist, of each patch (name and bytes) and of Node's major version:
a second call only looks (under a second); the first one costs about a
minute of ``yarn install`` and two of webpack on two cores.  Builds
happen in a temporary directory renamed into place only when they
succeeded, one at a time (a lock file), and the newest two keys are kept.
Stdlib only.
"""

import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

from testbed import horizon
from testbed import packages

VERSION = "9.0.0"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PATCH_DIR = os.path.join(ROOT, "contrib", "skyline")
YARN_VERSION = "1.22.22"
# Bump when the recipe below changes what a build holds.
RECIPE = "1"
KEEP = 2
SDIST = "skyline_console-%s.tar.gz" % VERSION
# What a build records about itself, next to its tree.
RECORD = "testbed-build.json"


class Build:
    """A built console: ``static`` (nginx's root, with index.html),
    ``tree`` (the patched source with node_modules, for jest and eslint),
    ``seconds`` (what the build() call that returned it cost) and the
    first build's ``yarn_install_seconds`` and ``webpack_seconds``."""

    def __init__(self, path, seconds):
        with open(os.path.join(path, RECORD)) as f:
            record = json.load(f)
        self.path = path
        self.key = record["key"]
        self.tree = os.path.join(path, "src")
        self.static = os.path.join(self.tree, "skyline_console", "static")
        self.seconds = seconds
        self.yarn_install_seconds = record["yarn_install_seconds"]
        self.webpack_seconds = record["webpack_seconds"]
        self.node = record["node"]
        self.yarn = record["yarn"]
        self.patches = record["patches"]

    def __repr__(self):
        return "<skyline-console %s %s>" % (VERSION, self.static)


def cache_root():
    path = os.path.join(horizon.cache_dir(), "skyline-console")
    os.makedirs(path, exist_ok=True)
    return path


def patches():
    """contrib/skyline/*.patch in the order they apply (file names)."""
    return sorted(glob.glob(os.path.join(PATCH_DIR, "*.patch")))


def _run(args, *, cwd=None, env=None, log=None, timeout=1800):
    """Run ``args``; its output to ``log`` (a path) when given, else
    returned.  A failure raises RuntimeError with the output's tail."""
    if log is None:
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        output = proc.stdout + proc.stderr
    else:
        with open(log, "a") as f:
            f.write("\n$ %s\n" % " ".join(args))
            f.flush()
            proc = subprocess.run(args, cwd=cwd, env=env, stdout=f,
                                  stderr=subprocess.STDOUT, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        with open(log, errors="replace") as f:
            output = f.read()
    if proc.returncode != 0:
        raise RuntimeError("%s failed (rc=%d)%s:\n%s" % (
            " ".join(args), proc.returncode,
            "" if log is None else ", log %s" % log, output[-6000:]))
    return output


def sdist(say=print):
    """The skyline-console sdist, downloaded once (pip, from the index)."""
    folder = os.path.join(cache_root(), "sdist")
    path = os.path.join(folder, SDIST)
    if os.path.exists(path):
        return path
    say("downloading the skyline-console %s sdist (26 MB) ..." % VERSION)
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        _run([sys.executable, "-m", "pip", "download", "-q",
              "--disable-pip-version-check", "--no-deps", "--no-binary",
              ":all:", "-d", tmp, "skyline-console==%s" % VERSION],
             timeout=600)
        os.rename(os.path.join(tmp, SDIST), path)
    return path


def node_major():
    """Node.js's major version ("20"), installing Debian's when absent."""
    if shutil.which("node") is None:
        packages.ensure_packages(("nodejs", "npm"), takes="1 min")
    version = _run(["node", "--version"]).strip()  # v20.20.2
    return version.lstrip("v").split(".")[0]


def key(say=print):
    """The cache key: the sdist, each patch (name and bytes, in order)
    and Node's major version."""
    digest = hashlib.sha256()
    for part in ("recipe", RECIPE, "version", VERSION):
        digest.update(part.encode() + b"\0")
    with open(sdist(say), "rb") as f:
        digest.update(hashlib.sha256(f.read()).digest())
    for path in patches():
        digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    digest.update(b"node " + node_major().encode())
    return digest.hexdigest()[:20]


def _yarn_v1(command):
    try:
        version = subprocess.run(
            [command, "--version"], capture_output=True, text=True,
            timeout=60, stdin=subprocess.DEVNULL).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return False
    return version.startswith("1.")


def yarn(say=print):
    """yarn 1 (skyline-console's yarn.lock is yarn 1's): on PATH as
    ``yarn`` or Debian's ``yarnpkg``, else npm-installed once into the
    cache."""
    for name in ("yarn", "yarnpkg"):
        found = shutil.which(name)
        if found and _yarn_v1(found):
            return found
    prefix = os.path.join(cache_root(), "yarn-%s" % YARN_VERSION)
    found = os.path.join(prefix, "node_modules", ".bin", "yarn")
    if not _yarn_v1(found):
        if shutil.which("npm") is None:
            packages.ensure_packages(("npm",), takes="1 min")
        say("installing yarn %s with npm into %s ..." % (YARN_VERSION, prefix))
        shutil.rmtree(prefix, ignore_errors=True)
        _run(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund",
              "yarn@%s" % YARN_VERSION], env=_env(), timeout=600)
    return found


def _env():
    return dict(
        os.environ,
        # cypress's postinstall downloads a browser binary: never.
        CYPRESS_INSTALL_BINARY="0",
        # husky would install git hooks (the sdist is no git checkout).
        HUSKY_SKIP_INSTALL="1",
        # One cache of tarballs for every key: a rebuild after a patch
        # changed does not download them again.
        YARN_CACHE_FOLDER=os.path.join(cache_root(), "yarn-cache"),
        NO_COLOR="1", npm_config_update_notifier="false",
        BROWSERSLIST_IGNORE_OLD_DATA="1")


def apply_patches(tree, patch_paths=None, log=None):
    """``patch -p1`` each patch in turn; fuzz fails it (-F0).  Returns
    patch's output per patch (it names any offset)."""
    if shutil.which("patch") is None:
        packages.ensure_packages(("patch",), takes="10 s")
    outputs = []
    for path in patches() if patch_paths is None else patch_paths:
        outputs.append(_run(
            ["patch", "-p1", "--forward", "--no-backup-if-mismatch", "-F0",
             "-i", path], cwd=tree, log=log))
    return outputs


def extract(sdist_path, dest):
    """The sdist's top folder, unpacked as ``dest``."""
    parent = os.path.dirname(dest)
    with tempfile.TemporaryDirectory(dir=parent) as tmp:
        with tarfile.open(sdist_path) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:
                tar.extractall(tmp)
        (top,) = os.listdir(tmp)
        os.rename(os.path.join(tmp, top), dest)
    return dest


def _build(path, build_key, log, say):
    """Build into ``path`` (a new folder): the tree, then the record."""
    tree = os.path.join(path, "src")
    extract(sdist(say), tree)
    with open(log, "w") as f:
        f.write("skyline-console %s, key %s\n" % (VERSION, build_key))
    apply_patches(tree, log=log)
    yarn_cmd = yarn(say)
    env = _env()
    say("skyline-console: yarn install (about 1 min; log %s) ..." % log)
    started = time.monotonic()
    # --pure-lockfile, not --frozen-lockfile: the sdist's yarn.lock is out
    # of step with its package.json (frozen fails), and a build must not
    # rewrite it either.
    _run([yarn_cmd, "install", "--pure-lockfile", "--non-interactive",
          "--network-timeout", "600000"], cwd=tree, env=env, log=log)
    yarn_seconds = time.monotonic() - started
    say("skyline-console: yarn install took %.0f s; webpack (about 2-3 "
        "min) ..." % yarn_seconds)
    started = time.monotonic()
    _run([yarn_cmd, "run", "build"], cwd=tree, env=env, log=log)
    webpack_seconds = time.monotonic() - started
    say("skyline-console: webpack took %.0f s" % webpack_seconds)
    index = os.path.join(tree, "skyline_console", "static", "index.html")
    if not os.path.exists(index):
        raise RuntimeError("the build wrote no %s; log %s" % (index, log))
    with open(os.path.join(path, RECORD), "w") as f:
        json.dump({"key": build_key, "version": VERSION,
                   "node": _run(["node", "--version"]).strip(),
                   "yarn": _run([yarn_cmd, "--version"]).strip(),
                   "patches": [os.path.basename(p) for p in patches()],
                   "yarn_install_seconds": round(yarn_seconds, 1),
                   "webpack_seconds": round(webpack_seconds, 1),
                   "built_at": time.time()}, f, indent=1)


def _prune(root, keep):
    """Remove builds beyond the ``keep`` most recently used, and what
    interrupted builds left (called under the lock)."""
    built = []
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if name.startswith("tmp-"):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(os.path.join(path, RECORD)):
            built.append((os.path.getmtime(os.path.join(path, RECORD)),
                          name))
    for _, name in sorted(built, reverse=True)[keep:]:
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        try:
            os.remove(os.path.join(root, name + ".log"))
        except FileNotFoundError:
            pass


def build(say=print):
    """The console with the patches, built unless cached; a Build."""
    started = time.monotonic()
    root = cache_root()
    build_key = key(say)
    path = os.path.join(root, build_key)
    with open(os.path.join(root, "lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("skyline-console: waiting for another process's build ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(path, RECORD)):
            _prune(root, KEEP - 1)
            say("skyline-console %s: building with %d patches (key %s) ..."
                % (VERSION, len(patches()), build_key))
            tmp = os.path.join(root, "tmp-%s-%d" % (build_key, os.getpid()))
            os.makedirs(tmp)
            log = os.path.join(root, build_key + ".log")
            try:
                _build(tmp, build_key, log, say)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            os.rename(tmp, path)
        # Most recently used first when pruning.
        os.utime(os.path.join(path, RECORD))
        _prune(root, KEEP)
    return Build(path, time.monotonic() - started)
