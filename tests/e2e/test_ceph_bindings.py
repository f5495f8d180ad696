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

"""The install guide's commands in a fresh venv, then an upload through it.

The install guide's shell blocks (doc/source/install/index.rst, found by
their ``:name:``) run as they are, with ``VENV`` and ``SRC`` set to a
scratch venv and this checkout: ``install-venv`` (the venv's own pip
installs the checkout, which brings glance_store), then ``import rbd``
fails in the venv until ``install-bindings`` (``glance-progress
link-ceph-bindings``) has run, and then glance_store, configured as
glance-api is, stores an image through ``progress_rbd`` into the
session's Ceph and the record says ``stored``. The guide's other way,
``install-wheel``, installs too.
"""

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

from glance_progress_store.ops import ceph_bindings
from tests import docs
from tests import helpers

pytestmark = pytest.mark.e2e

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIZE = 5 * helpers.MiB + 3
# The running interpreter's: the venv is made with it, Debian's bindings
# are built for it (3.11 on Debian 12, 3.13 on 13, 3.14 on forky).
TAG = '%d%d' % sys.version_info[:2]
VERSION = '%d.%d' % sys.version_info[:2]
OTHER = '3.%d' % (sys.version_info[1] + 1)  # a version no venv here runs

# glance-api's own steps: read glance-api.conf, create the stores, check
# the default one, add an image. Prints the location and the checksum.
UPLOAD = """\
import json, sys
from oslo_config import cfg
import glance_store
conf_path, image_id, size = sys.argv[1:]
size = int(size)
conf = cfg.CONF  # verify_default_store() reads the global one
conf(['--config-file', conf_path], project='glance')
glance_store.register_opts(conf)
glance_store.create_stores(conf)
glance_store.verify_default_store()
data = (bytes(range(256)) * (size // 256 + 1))[:size]
location, written, checksum, multihash, _ = (
    glance_store.add_to_backend_with_multihash(
        conf, image_id, iter([data[i:i + 2**20]
                              for i in range(0, size, 2**20)]),
        size, 'sha512', scheme='rbd'))
print(json.dumps([location, written, checksum]))
"""


def _env():
    env = dict(os.environ)
    for var in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV'):
        env.pop(var, None)
    return env


def run(*cmd, timeout=600):
    return subprocess.run([str(c) for c in cmd], capture_output=True,
                          text=True, env=_env(), cwd='/', timeout=timeout)


def make_venv(path):
    """An empty venv, as glance-api's would be before the guide."""
    created = run(sys.executable, '-m', 'venv', path)
    assert created.returncode == 0, created.stderr
    return path


@pytest.fixture(scope='module')
def venv(tmp_path_factory):
    """A fresh venv after the guide's install-packages and install-venv
    blocks (the package pip-installed from this checkout)."""
    where = tmp_path_factory.mktemp('operator')
    packages = docs.run_install_block('install-packages', None, ROOT, where)
    assert packages.returncode == 0, packages.stdout + packages.stderr
    path = make_venv(where / 'venv')
    pip = docs.run_install_block('install-venv', path, ROOT, where)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return path


def test_install_from_wheel(tmp_path):
    """The guide's other way: a wheel built with the venv's pip."""
    path = make_venv(tmp_path / 'venv')
    pip = docs.run_install_block('install-wheel', path, ROOT, tmp_path)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    wheels = sorted(os.listdir(tmp_path / 'dist'))
    assert wheels == ['glance_progress_store-0.1.0-py3-none-any.whl']
    version = run(path / 'bin' / 'glance-progress', '--version')
    assert version.stdout.strip() == 'glance-progress 0.1.0', version
    driver = run(path / 'bin' / 'python', '-c',
                 'from stevedore import driver; print(driver.DriverManager('
                 '"glance_store.drivers", "progress_rbd").driver)')
    assert driver.returncode == 0, driver.stderr
    assert "glance_progress_store.store.Store" in driver.stdout


def glance_conf(path, ceph, memcached):
    path.write_text(
        '[glance_store]\n'
        'stores = progress_rbd\n'
        'default_store = rbd\n'
        'rbd_store_pool = %s\n'
        'rbd_store_user = admin\n'
        'rbd_store_ceph_conf = %s\n'
        'progress_memcached_servers = %s\n'
        % (helpers.POOL, ceph.conf_path, memcached.address))
    return path


def test_link_then_upload(venv, ceph, memcached, reader, image_id,
                          tmp_path):
    python = venv / 'bin' / 'python'
    command = [venv / 'bin' / 'glance-progress', 'link-ceph-bindings', venv]
    conf = glance_conf(tmp_path / 'glance-api.conf', ceph, memcached)

    before = run(python, '-c', 'import rbd')
    assert before.returncode != 0
    assert "No module named 'rbd'" in before.stderr
    # ... and glance_store disables the store, saying so in a log line.
    unlinked = run(python, '-c', UPLOAD, conf, image_id, SIZE)
    assert unlinked.returncode != 0
    assert 'The required libraries(rbd and rados) are not available' in (
        unlinked.stderr), unlinked.stderr
    assert not helpers.rbd_exists(ceph, helpers.POOL, image_id)

    first = docs.run_install_block('install-bindings', venv, ROOT, tmp_path)
    assert first.returncode == 0, first.stderr
    links = sorted(os.listdir(venv / 'ceph-bindings'))
    assert links == ['rados.cpython-%s-x86_64-linux-gnu.so' % TAG,
                     'rbd.cpython-%s-x86_64-linux-gnu.so' % TAG]
    for name in links:
        assert os.readlink(venv / 'ceph-bindings' / name) == os.path.join(
            ceph_bindings.DIST_PACKAGES, name)
    assert 'imports rados and rbd' in first.stdout
    again = run(*command)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith('already linked'), again.stdout
    assert sorted(os.listdir(venv / 'ceph-bindings')) == links

    upload = run(python, '-c', UPLOAD, conf, image_id, SIZE)
    assert upload.returncode == 0, upload.stderr
    location, written, checksum = json.loads(upload.stdout)
    data = (bytes(range(256)) * (SIZE // 256 + 1))[:SIZE]
    assert location == 'rbd://%s/%s/%s/snap' % (ceph.fsid, helpers.POOL,
                                                image_id)
    assert (written, checksum) == (SIZE, hashlib.md5(data).hexdigest())
    stored, snaps = helpers.read_rbd(ceph, helpers.POOL, image_id, 'snap')
    assert stored == data and snaps == {'snap': True}
    record = helpers.wait_record(reader, image_id)
    assert record is not None
    assert (record.state, record.bytes, record.total) == (
        'stored', SIZE, SIZE)


def test_python_version_mismatch(venv, tmp_path):
    """Bindings built for another Python: exit 64, a message, no link."""
    other = tmp_path / 'dist-packages'
    other.mkdir()
    for module in ceph_bindings.MODULES:
        (other / ('%s.cpython-%s-x86_64-linux-gnu.so' % (
            module, OTHER.replace('.', '')))).symlink_to(
            os.path.join(ceph_bindings.DIST_PACKAGES,
                         '%s.cpython-%s-x86_64-linux-gnu.so' % (module, TAG)))
    before = sorted(os.listdir(venv))
    proc = run(venv / 'bin' / 'glance-progress', 'link-ceph-bindings', venv,
               '--dist-packages', other)
    assert proc.returncode == 64
    assert 'built for CPython %s' % OTHER in proc.stderr, proc.stderr
    assert 'the venv runs Python %s' % VERSION in proc.stderr
    assert 'Traceback' not in proc.stderr and proc.stdout == ''
    assert sorted(os.listdir(venv)) == before


@pytest.mark.parametrize('target', ['missing', 'not-a-venv', 'no-bindings'])
def test_operator_mistakes(venv, tmp_path, target):
    """Exit 64 with one line saying what to fix, never a traceback."""
    args = {'missing': [tmp_path / 'nowhere'],
            'not-a-venv': [sys.base_prefix],
            'no-bindings': [venv, '--dist-packages', tmp_path]}[target]
    proc = run(venv / 'bin' / 'glance-progress', 'link-ceph-bindings', *args)
    assert proc.returncode == 64, proc.stderr
    assert proc.stderr.startswith('glance-progress: error: ')
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    expected = {'missing': 'there is no bin/python',
                'not-a-venv': 'is not a virtual environment',
                'no-bindings': 'apt install python3-rados python3-rbd'}
    assert expected[target] in proc.stderr
