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

"""Each audience's extra, alone in a fresh virtual environment.

Each host's venv is made with the install guide's own command for it
(``doc/source/install/``), pip installing from the package index with
pip's cache: the five at once took 73 s on 2 busy cores (237 s one after
the other), most of it the store's and OpenStackClient's dependencies.
Each test then runs its audience's surface there and checks that the
other audiences' libraries were not installed. The surfaces run against
the session's real memcached; the store and the filter load without
Ceph's bindings, as glance_store's own RBD driver does.
"""

import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from glance_progress_store import records
from glance_progress_store.upload import publisher
from tests.cli_helpers import MiB
from tests import docs

import testbed  # on sys.path through conftest

ROOT = pathlib.Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns('.git', '.venv*', '.tox', 'build', 'dist',
                                '*.egg-info', '__pycache__', 'node_modules',
                                '.pytest_cache', '.testbed', 'doc', 'api-ref',
                                'releasenotes')

# The import names only one audience's extra brings (setup.cfg); shared
# libraries (keystoneauth1, oslo.utils) are left out.
CORE = {'memcache', 'oslo_config', 'tqdm'}
AUDIENCES = {
    'store': {'glance_store', 'webob'},
    'exporter': {'prometheus_client'},
    'osc': {'openstackclient', 'osc_lib', 'cliff'},
    'dashboard': set(),
}
# What no extra brings: glance itself, Horizon, Ceph's bindings.
NEVER = {'glance', 'django', 'openstack_dashboard', 'rados', 'rbd'}
ALL = CORE | NEVER | {'keystoneauth1'} | set().union(*AUDIENCES.values())


def _checkout(host):
    """A checkout as an operator copies it onto a host: the tree without
    build output (pip builds in it; the working tree is left alone)."""
    path = host / 'glance_progress_store'
    shutil.copytree(ROOT, path, ignore=IGNORE)
    return path


def _env():
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1')
    for var in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV'):
        env.pop(var, None)
    return env


def _run(argv, timeout=120):
    return subprocess.run([str(a) for a in argv], capture_output=True,
                          text=True, env=_env(), timeout=timeout)


def _installed(done):
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _importable(venv):
    """Which of ALL this venv can import (found, not imported)."""
    done = _run([venv / 'bin' / 'python', '-c',
                 'import importlib.util, json, sys\n'
                 'print(json.dumps(sorted(n for n in sys.argv[1:]\n'
                 '      if importlib.util.find_spec(n) is not None)))',
                 *sorted(ALL)])
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def assert_only(venv, audience):
    """The core and this audience's libraries are there; the other
    audiences' and glance's, Horizon's and Ceph's are not."""
    found = _importable(venv)
    own = AUDIENCES.get(audience, set())
    assert CORE | own <= found, (audience, CORE | own - found)
    others = NEVER.union(*(libs for name, libs in AUDIENCES.items()
                           if name != audience))
    assert not found & others, (audience, sorted(found & others))
    return found


def _publish_in_flight(address, image_id, nbytes, total):
    """An upload in flight, as the store publishes it (record and
    discovery index), under a key prefix of this test's own."""
    prefix = 'extras-%s:' % uuid.uuid4().hex[:6]
    now = time.time()
    record = records.ProgressRecord('uploading', nbytes, total, None,
                                    now - 10, now, None)
    token = (prefix, image_id, None)
    pub = publisher.get_publisher([address], 0.5)
    pub.submit(token, records.key_values(
        records.keys_for(image_id, None, prefix), record), 600,
        final=False, index=(60, 600))
    assert pub.flush(token, 10)
    return ['--servers', address, '--prefix', prefix]


def _no_config(tmp_path):
    """An empty glance-api.conf: the host's /etc/glance stays out."""
    path = tmp_path / 'empty.conf'
    path.write_text('')
    return ['--config-file', path]


def _venv(path):
    """A venv of the interpreter Ceph's bindings are built for (the
    glance-api node's), as install-venv expects one."""
    python = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'testbed'), 'python'],
        capture_output=True, text=True, check=True).stdout.strip()
    _installed(_run([python, '-m', 'venv', path]))
    return path


def _horizon_install_line():
    """install/horizon.rst's pip command (the rest of its block needs a
    Horizon: collectstatic, a restart)."""
    block = docs.code_blocks(docs.DOC / 'install' / 'horizon.rst')[
        'horizon-install']
    lines = [line for line in block.splitlines() if ' pip install ' in line]
    assert len(lines) == 1, block
    return lines[0]


def _install(audience, host):
    """Each host's command, into host/venv from host's own checkout: the
    core alone (a bastion that only reads), the install guide's block for
    each audience."""
    venv = host / 'venv'
    src = _checkout(host)
    if audience == 'core':
        _venv(venv)
        return _run([venv / 'bin' / 'pip', 'install', src], timeout=900)
    if audience == 'store':  # install-venv: into glance-api's venv
        _venv(venv)
        return docs.run_install_block('install-venv', venv, src, host)
    if audience == 'dashboard':  # into Horizon's venv (none here)
        _venv(venv)
        return subprocess.run(
            ['bash', '-euo', 'pipefail', '-c', _horizon_install_line()],
            capture_output=True, text=True, timeout=900,
            env=dict(_env(), HORIZON_PY=str(venv / 'bin' / 'python'),
                     SRC=str(src)))
    block = {'exporter': 'install-operator', 'osc': 'install-laptop'}
    return docs.run_install_block(block[audience], venv, src, host)


@pytest.fixture(scope='module')
def venvs(tmp_path_factory):
    """ready(audience) -> its venv. The five install at once (pip waits
    on the package index more than it computes); each test waits for its
    own."""
    hosts = tmp_path_factory.mktemp('extras')
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=5)
    started = {name: pool.submit(_install, name, hosts / name)
               for name in ('core', 'store', 'exporter', 'osc', 'dashboard')}

    def ready(name):
        _installed(started[name].result())
        return hosts / name / 'venv'

    yield ready
    pool.shutdown()


def test_core_reads_memcached_and_nothing_else(venvs, tmp_path, addr,
                                               image):
    venv = venvs('core')
    assert 'keystoneauth1' not in assert_only(venv, 'core')
    assert _run([venv / 'bin' / 'glance-progress', '--help']).returncode == 0
    where = _publish_in_flight(addr, image, 3 * MiB, 8 * MiB)
    where += _no_config(tmp_path)
    done = _run([venv / 'bin' / 'glance-progress', 'show', image, '--json',
                 *where])
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown['image_id'], shown['state'], shown['bytes'],
            shown['total']) == (image, 'uploading', 3 * MiB, 8 * MiB)
    listed = _run([venv / 'bin' / 'glance-progress', 'list', '--json',
                   *where])
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)['image_id']
            for line in listed.stdout.splitlines()] == [image]
    # the exporter is its extra's: said so, no traceback
    done = _run([venv / 'bin' / 'glance-progress', 'exporter', '--listen',
                 '127.0.0.1:0', *where])
    assert done.returncode == 64, done.stderr
    assert 'install glance_progress_store[exporter]' in done.stderr


def test_store_extra_loads_the_driver_and_the_filter(venvs):
    venv = venvs('store')
    assert_only(venv, 'store')
    # as glance_store loads a driver: stevedore, by entry point
    done = _run([venv / 'bin' / 'python', '-c',
                 'from stevedore import driver\n'
                 'store = driver.DriverManager("glance_store.drivers",\n'
                 '                             "progress_rbd").driver\n'
                 'from glance_progress_store import middleware\n'
                 'filter_factory = middleware.UploadProgressFilter.factory\n'
                 'print(store.__module__, callable(filter_factory))'])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ['glance_progress_store.store', 'True']


IN_FLIGHT = re.compile(r'^glance_progress_uploads_in_flight\{[^}]*'
                       r'state="uploading"[^}]*\} 1\.0$', re.M)


def test_exporter_extra_serves_metrics(venvs, tmp_path, addr, image):
    venv = venvs('exporter')
    assert 'keystoneauth1' not in assert_only(venv, 'exporter')
    where = _publish_in_flight(addr, image, MiB, 4 * MiB)
    port = testbed.free_port()
    proc = subprocess.Popen(
        [str(a) for a in (
            venv / 'bin' / 'glance-progress', 'exporter', *where,
            '--listen', '127.0.0.1:%d' % port, '--refresh', '0.2',
            *_no_config(tmp_path))],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=_env())
    try:
        banner = proc.stderr.readline()
        assert 'serving http://127.0.0.1:%d/' % port in banner, banner
        url = 'http://127.0.0.1:%d/metrics' % port
        for _ in range(100):  # the first refresh: 0.2 s, on a busy host more
            with urllib.request.urlopen(url, timeout=10) as response:
                metrics = response.read().decode()
            if IN_FLIGHT.search(metrics):
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert 'Traceback' not in err
    assert 'glance_progress_memcached_up{server="%s"} 1.0' % addr in metrics
    assert IN_FLIGHT.search(metrics), metrics


def test_osc_extra_runs_openstack_image_progress(venvs):
    venv = venvs('osc')
    assert 'keystoneauth1' in assert_only(venv, 'osc')
    openstack = venv / 'bin' / 'openstack'
    done = _run([openstack, 'image', 'progress', 'show', '--help'])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('usage: openstack image progress show')
    # the plugin's client on a glance that refuses: the row's error, exit 1
    done = _run([openstack, '--os-auth-type', 'none', '--os-endpoint',
                 'http://127.0.0.1:1', 'image', 'progress', 'show',
                 'an-image'])
    assert done.returncode == 1
    assert 'glance at http://127.0.0.1:1' in done.stderr
    assert 'Traceback' not in done.stderr


def test_dashboard_extra_brings_no_server_side_library(venvs):
    # Horizon itself is not installed here (the e2e Horizon tests load
    # the plugin in a real one): the extra's own footprint is what counts.
    venv = venvs('dashboard')
    assert 'keystoneauth1' in assert_only(venv, 'dashboard')
    done = _run([venv / 'bin' / 'python', '-c',
                 'import importlib.resources as r\n'
                 'from glance_progress_store.dashboard.enabled import '
                 '_1051_glance_progress as enabled\n'
                 'static = r.files("glance_progress_store.dashboard")\n'
                 'js = static / "static/dashboard/glance-progress"\n'
                 'print(enabled.ADD_INSTALLED_APPS[0],\n'
                 '      sorted(p.name for p in js.iterdir())[0])'])
    assert done.returncode == 0, done.stderr
    installed_app, first_file = done.stdout.split()
    assert installed_app == 'glance_progress_store.dashboard'
    assert first_file.endswith(('.js', '.html', '.scss'))
