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

The wheel on PyPI carries a 2022 console, so the test bed builds it from
the sdist exactly as operators do: it runs the install guide's
``skyline-build`` block (doc/source/install/skyline.rst: ``pip
download`` of the sdist, ``contrib/skyline/*.patch`` applied in file-name
order with ``patch -p1``, ``yarn install``, ``yarn run build`` (webpack,
which writes ``skyline_console/static``) and ``pip wheel``), with SRC
this checkout and BUILD a new folder of the cache.  So every build checks
the recipe as pasted.

A build is cached in ``cache_dir()/skyline-console/KEY``, KEY the sha256
of that block, the sdist, each patch (name and bytes) and Node's major
version: a second call only looks (under a second); the first one costs
about a minute of ``yarn install`` and two of webpack on two cores.
Builds happen in a temporary directory renamed into place only when they
succeeded, one at a time (a lock file), and the newest two keys are kept.
Stdlib only.
"""

import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

from testbed import docs
from testbed import horizon
from testbed import packages

VERSION = "9.0.0"
ROOT = docs.ROOT
PATCH_DIR = os.path.join(ROOT, "contrib", "skyline")
# The recipe, in the install guide: the test bed runs that very block.
GUIDE = os.path.join(docs.DOC, "install", "skyline.rst")
YARN_VERSION = "1.22.22"
# The sdist's top folder: the recipe's tree, built.
TREE = "skyline_console-%s" % VERSION
KEEP = 2
SDIST = "skyline_console-%s.tar.gz" % VERSION
# What a build records about itself, next to its tree.
RECORD = "testbed-build.json"


class Build:
    """A built console: ``static`` (nginx's root, with index.html),
    ``tree`` (the patched source with node_modules, for jest and eslint),
    ``wheel`` (what operators install),
    ``seconds`` (what the build() call that returned it cost) and the
    first build's ``yarn_install_seconds`` and ``webpack_seconds``."""

    def __init__(self, path, seconds):
        with open(os.path.join(path, RECORD)) as f:
            record = json.load(f)
        self.path = path
        self.tree = os.path.join(path, TREE)
        self.static = os.path.join(self.tree, "skyline_console", "static")
        # what operators install (the recipe's last step)
        self.wheel = os.path.join(
            path, "dist", "skyline_console-%s-py3-none-any.whl" % VERSION)
        self.seconds = seconds
        self.yarn_install_seconds = record["yarn_install_seconds"]
        self.webpack_seconds = record["webpack_seconds"]

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


def _pip_python():
    """A Python with pip: this one, or (Debian's python3 has no pip) a
    venv of the cache's own."""
    if subprocess.run([sys.executable, "-c", "import pip"],
                      capture_output=True).returncode == 0:
        return sys.executable
    _ensure_venv()
    venv = os.path.join(cache_root(), "pip-venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        _run([sys.executable, "-m", "venv", venv])
    return python


def _ensure_venv():
    """python3's venv module with ensurepip (Debian's python3-venv)."""
    if subprocess.run(["python3", "-c", "import ensurepip"],
                      capture_output=True).returncode != 0:
        packages.ensure_packages(("python3-venv",), takes="10 s")


def sdist(say=print):
    """The skyline-console sdist, downloaded once (pip, from the index)."""
    folder = os.path.join(cache_root(), "sdist")
    path = os.path.join(folder, SDIST)
    if os.path.exists(path):
        return path
    say("downloading the skyline-console %s sdist (26 MB) ..." % VERSION)
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        _run([_pip_python(), "-m", "pip", "download", "-q",
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
    """The cache key: the recipe, the sdist, each patch (name and bytes,
    in order) and Node's major version."""
    digest = hashlib.sha256()
    for part in ("recipe", recipe(), "version", VERSION):
        digest.update(part.encode() + b"\0")
    with open(sdist(say), "rb") as f:
        digest.update(hashlib.sha256(f.read()).digest())
    for path in patches():
        digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    digest.update(b"node " + node_major().encode())
    return digest.hexdigest()[:20]


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


def apply_patches(tree):
    """``patch -p1`` each patch in turn, stricter than the recipe: fuzz
    fails it (-F0).  Returns patch's output per patch (it names any
    offset)."""
    if shutil.which("patch") is None:
        packages.ensure_packages(("patch",), takes="10 s")
    return [_run(["patch", "-p1", "--forward", "--no-backup-if-mismatch",
                  "-F0", "-i", path], cwd=tree)
            for path in patches()]


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


def recipe():
    """The install guide's ``skyline-build`` block: what operators paste,
    and what this module runs."""
    return docs.code_blocks(GUIDE)["skyline-build"]


def _step_seconds(log, *commands):
    """Seconds each of ``commands`` (part of a traced line) took, from
    the trace's timestamps (PS4 below): until the next traced line."""
    stamps = []
    with open(log, errors="replace") as f:
        for line in f:
            found = re.match(r"^\++ @(\d+\.\d+) (.*)$", line)
            if found:
                stamps.append((float(found.group(1)), found.group(2)))
    seconds = []
    for command in commands:
        for n, (stamp, text) in enumerate(stamps[:-1]):
            if command in text:
                seconds.append(round(stamps[n + 1][0] - stamp, 1))
                break
        else:
            seconds.append(None)
    return seconds


def _ensure_tools():
    """What the recipe runs, from Debian when missing (the guide's
    skyline-packages block): node, npx, patch, python3's venv.  Asked
    command by command: a Node.js from elsewhere (nodesource's, with its
    own npm) is kept."""
    node_major()
    if shutil.which("npx") is None:
        packages.ensure_packages(("npm",), takes="1 min")
    if shutil.which("patch") is None:
        packages.ensure_packages(("patch",), takes="10 s")
    _ensure_venv()


def _build(path, build_key, log, say):
    """Build into ``path`` (a new folder, the recipe's $BUILD): the
    guide's block with SRC this checkout, traced with timestamps into
    ``log``; then the record."""
    with open(log, "w") as f:
        f.write("skyline-console %s, key %s\n" % (VERSION, build_key))
    _ensure_tools()
    env = dict(_env(), SRC=ROOT, BUILD=path, PIP_DISABLE_PIP_VERSION_CHECK="1")
    for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(var, None)
    say("skyline-console: the install guide's skyline-build block (yarn "
        "install about 1 min, webpack 2-3 min; log %s) ..." % log)
    # bash takes no PS4 from the environment when run as root: set here.
    trace = "PS4='+ @${EPOCHREALTIME} '; set -x\n"
    _run(["bash", "-e", "-c", trace + recipe()], cwd=path, env=env, log=log)
    yarn_seconds, webpack_seconds = _step_seconds(
        log, "npx --yes yarn@%s install" % YARN_VERSION,
        "npx --yes yarn@%s run build" % YARN_VERSION)
    say("skyline-console: yarn install took %s s, webpack %s s"
        % (yarn_seconds, webpack_seconds))
    tree = os.path.join(path, TREE)
    index = os.path.join(tree, "skyline_console", "static", "index.html")
    if not os.path.exists(index):
        raise RuntimeError("the build wrote no %s; log %s" % (index, log))
    with open(os.path.join(path, RECORD), "w") as f:
        json.dump({"key": build_key, "version": VERSION,
                   "node": _run(["node", "--version"]).strip(),
                   "yarn": YARN_VERSION,
                   "patches": [os.path.basename(p) for p in patches()],
                   "yarn_install_seconds": yarn_seconds,
                   "webpack_seconds": webpack_seconds,
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
