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

"""``glance-progress link-ceph-bindings VENV``: Ceph's bindings in a venv.

Ceph's Python bindings, the rados and rbd extension modules, are not on
PyPI: they come with the distribution (python3-rados, python3-rbd) and
land in its dist-packages, which a virtual environment (kolla,
openstack-ansible, a hand-made one) does not see. In such a venv
"import rbd" fails and glance_store disables the store with
only a log line ("The required libraries(rbd and rados) are not
available").

This puts exactly those two modules on the venv's path, and nothing else
of the distribution's packages: symlinks to them in VENV/ceph-bindings
and that directory in ceph-bindings.pth in the venv's site-packages.
The extensions only load into the Python version they were built for, so
that is checked first. Running it again changes nothing; it ends by
importing both modules with the venv's Python.
"""

import glob
import json
import os
import re
import subprocess  # nosec B404
import sys

from glance_progress_store.read import states

DIST_PACKAGES = '/usr/lib/python3/dist-packages'
MODULES = ('rados', 'rbd')
LINK_DIR = 'ceph-bindings'
PTH_FILE = 'ceph-bindings.pth'

# Run by the venv's interpreter: what it is and where its site-packages is.
_PROBE = """\
import json, sys, sysconfig
print(json.dumps({
    'version': '%d.%d' % sys.version_info[:2],
    'ext_suffix': sysconfig.get_config_var('EXT_SUFFIX'),
    'purelib': sysconfig.get_paths()['purelib'],
    'is_venv': sys.prefix != sys.base_prefix,
}))
"""
_VERIFY = 'import rados, rbd; print(rados.__file__); print(rbd.__file__)'


class LinkError(Exception):
    """Something the operator has to fix first; the message says what."""


class VerifyError(Exception):
    """The modules are linked, but the venv's Python cannot import them."""


def _clean_env():
    # The venv's interpreter must see its own path only.
    env = dict(os.environ)
    for var in ('PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP'):
        env.pop(var, None)
    return env


def _run_python(python, code):
    # An argument list, no shell: the interpreter the operator named runs
    # this module's own code.
    return subprocess.run(  # nosec B603
        [python, '-c', code], capture_output=True, text=True,
        env=_clean_env(), cwd='/', timeout=60)


def probe(venv):
    """The venv's Python: dict of version, ext_suffix, purelib, python."""
    python = os.path.join(venv, 'bin', 'python')
    if not os.access(python, os.X_OK):
        raise LinkError('%s is not a virtual environment: there is no '
                        'bin/python in it' % venv)
    try:
        proc = _run_python(python, _PROBE)
    except OSError as e:
        raise LinkError('cannot run %s: %s' % (python, e))
    if proc.returncode != 0:
        raise LinkError('%s does not run: %s'
                        % (python, _last_line(proc.stderr)))
    info = json.loads(proc.stdout)
    if not info['is_venv']:
        raise LinkError('%s is not a virtual environment (its bin/python is '
                        'the system\'s); the distribution\'s python3-rados '
                        'and python3-rbd are already on its path' % venv)
    info['python'] = python
    return info


def _built_for(filename):
    """'CPython 3.11' for rados.cpython-311-x86_64-linux-gnu.so."""
    match = re.search(r'\.cpython-(\d)(\d+)', filename)
    return ('CPython %s.%s' % match.groups()) if match else filename


def find_bindings(directory, info):
    """{module: path} of the extensions that load into the venv's Python;
    LinkError when they are missing or built for another version."""
    found = {}
    for module in MODULES:
        candidates = [os.path.join(directory, module + suffix)
                      for suffix in (info['ext_suffix'], '.abi3.so')]
        match = [path for path in candidates if os.path.isfile(path)]
        if match:
            found[module] = match[0]
            continue
        others = sorted(glob.glob(os.path.join(directory, module + '.*so')))
        if others:
            raise LinkError(
                'the %s bindings in %s are built for %s (%s), but the venv '
                'runs Python %s: create the venv with that Python, or '
                'install Ceph bindings built for Python %s'
                % (module, directory, _built_for(os.path.basename(others[0])),
                   os.path.basename(others[0]), info['version'],
                   info['version']))
        raise LinkError(
            'no %s module in %s: install Ceph\'s Python bindings '
            '(Debian, Ubuntu: apt install python3-rados python3-rbd), or '
            'give the directory that has them with --dist-packages'
            % (module, directory))
    return found


def link(venv, info, bindings):
    """Make the links and the .pth file; returns what it changed."""
    changed = []
    dest = os.path.join(venv, LINK_DIR)
    os.makedirs(dest, exist_ok=True)
    wanted = {os.path.basename(path): path for path in bindings.values()}
    for name in sorted(os.listdir(dest)):
        path = os.path.join(dest, name)
        if name not in wanted and os.path.islink(path):
            os.unlink(path)  # a link for another Python version
            changed.append('removed %s' % path)
    for name, target in sorted(wanted.items()):
        path = os.path.join(dest, name)
        if os.path.islink(path) and os.readlink(path) == target:
            continue
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(target, path)
        changed.append('linked %s -> %s' % (path, target))
    pth = os.path.join(info['purelib'], PTH_FILE)
    try:
        with open(pth) as f:
            current = f.read()
    except FileNotFoundError:
        current = None
    if current != dest + '\n':
        with open(pth, 'w') as f:
            f.write(dest + '\n')
        changed.append('wrote %s' % pth)
    return changed


def verify(info):
    """Import both modules with the venv's Python; their paths."""
    proc = _run_python(info['python'], _VERIFY)
    if proc.returncode != 0:
        raise VerifyError('%s cannot import rados and rbd: %s'
                          % (info['python'], _last_line(proc.stderr)))
    return proc.stdout.split()


def _last_line(text):
    lines = text.strip().splitlines()
    return lines[-1] if lines else '(no message)'


def link_ceph_bindings(venv, dist_packages=DIST_PACKAGES, out=sys.stdout):
    venv = os.path.abspath(venv)
    info = probe(venv)
    bindings = find_bindings(dist_packages, info)
    changed = link(venv, info, bindings)
    for line in changed or ['already linked in %s'
                            % os.path.join(venv, LINK_DIR)]:
        out.write(line + '\n')
    paths = verify(info)
    out.write('%s imports rados and rbd: %s\n'
              % (info['python'], ', '.join(paths)))


def run(args):
    """The sub-command; returns the exit code."""
    try:
        link_ceph_bindings(args.venv, args.dist_packages)
    except LinkError as e:
        sys.stderr.write('glance-progress: error: %s\n' % e)
        return states.EXIT_USAGE
    except (VerifyError, OSError, subprocess.SubprocessError) as e:
        sys.stderr.write('glance-progress: error: %s\n' % e)
        return states.EXIT_FAILED
    return states.EXIT_OK
