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

"""The test bed's own promises to operators: sizes, /proc, up and down.

`down` is what people type when something went wrong, so it must say
what it did in one line, also when there is nothing to stop, and a stack
that fails half way must not leave daemons behind.
"""

import os
import pathlib
import subprocess
import sys

import pytest

import testbed
from testbed import procs
from testbed import stack

TOOLS = pathlib.Path(__file__).resolve().parent.parent / 'tools'


def cli(*args, cwd='/'):
    """A tools/ command as an operator runs it, from another directory."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize('text, size', [
    ('1048576', 2**20), ('64K', 2**16), ('512M', 2**29), ('1G', 2**30),
    ('1GiB', 2**30), ('1.5G', 3 * 2**29), ('64KB', 2**16), ('4g', 2**32)])
def test_parse_size(text, size):
    assert testbed.parse_size(text) == size


def test_proc_stat_of_this_process():
    stat = procs.proc_stat(os.getpid())
    assert (stat.pid, stat.state, stat.ppid) == (os.getpid(), 'R',
                                                 os.getppid())
    assert stat.pgrp == os.getpgrp() and stat.utime > 0
    assert procs.proc_stat(2**22 + 1) is None  # above pid_max: never runs


@pytest.mark.parametrize('command', [
    [TOOLS / 'glance_stack.py'], [TOOLS / 'testbed']])
def test_down_where_nothing_ever_ran(tmp_path, command):
    out = cli(*command, 'down', '--workdir', tmp_path)
    assert out.returncode == 1
    assert (out.stdout, out.stderr) == (
        '', 'nothing running in %s\n' % tmp_path)


def test_down_with_an_unreadable_state_file(tmp_path):
    (tmp_path / stack.STATE_FILE).write_text('{"processes": [')
    out = cli(TOOLS / 'glance_stack.py', 'down', '--workdir', tmp_path)
    assert out.returncode == 1
    assert out.stderr.startswith('unreadable %s/%s: ' % (tmp_path,
                                                         stack.STATE_FILE))
    assert len(out.stderr.splitlines()) == 1


def test_up_then_down_twice(tmp_path):
    workdir = tmp_path / 'tb'
    up = cli(TOOLS / 'testbed', 'up', '--workdir', workdir)
    try:
        assert up.returncode == 0, up.stderr
        assert 'export CEPH_CONF=%s/ceph/ceph.conf\n' % workdir in up.stdout
        pids = [p['pid'] for p in stack.running(workdir)]
        assert len(pids) == 3  # ceph-osd, ceph-mon, memcached
        again = cli(TOOLS / 'testbed', 'up', '--workdir', workdir)
        assert again.returncode == 1
        assert 'a stack is up in %s' % workdir in again.stderr
    finally:
        first = cli(TOOLS / 'glance_stack.py', 'down', '--workdir', workdir)
    assert first.returncode == 0, first.stderr
    assert first.stdout == ('stopped ceph-osd, ceph-mon, memcached in %s\n'
                            % workdir)
    assert not any(procs.pid_alive(pid) for pid in pids)
    second = cli(TOOLS / 'testbed', 'down', '--workdir', workdir)
    assert (second.returncode, second.stderr) == (
        1, 'nothing running in %s\n' % workdir)
    assert 'Traceback' not in second.stdout + second.stderr


def test_a_stack_that_fails_half_way_stops_what_it_started(tmp_path):
    # glance-api's db_sync fails at once with /bin/false as its Python:
    # Ceph and memcached were already up and must be stopped again.
    local = testbed.LocalStack(tmp_path, glance={'python': '/bin/false'})
    with pytest.raises(RuntimeError, match='db_sync failed'):
        with local:
            pytest.fail('the stack started')
    pids = [local.ceph.pids(), local.memcached._proc]
    assert pids == [{}, None]
    assert not [p for p in procs.processes()
                if str(tmp_path) in procs.pid_cmdline(p.pid)]


def test_the_demo_installs_only_its_own_packages():
    """tools/demo installs Ceph and memcached; the tests' extra packages
    (PHP's memcached client, Prometheus, Chromium: about a GiB; and
    RabbitMQ) come with tools/run-tests only."""
    demo = set(testbed.packages.SETS['demo'])
    tests = set(testbed.packages.SETS['tests'])
    assert demo == set(testbed.packages.CEPH_PACKAGES) | {'memcached'}
    assert demo < tests
    assert tests - demo == set(testbed.packages.CLIENT_PACKAGES +
                               testbed.packages.MONITORING_PACKAGES +
                               testbed.packages.MESSAGING_PACKAGES)


@pytest.mark.skipif(os.geteuid() != 0, reason='apt-get needs root')
@pytest.mark.parametrize('packages', ['demo', 'tests', None])
def test_install_says_nothing_when_everything_is_there(packages):
    # The session installed the tests' packages before it started.
    out = cli(TOOLS / 'testbed', 'install',
              *([packages] if packages else []))
    assert (out.returncode, out.stdout, out.stderr) == (0, '', '')


def test_venv_package_named_when_ensurepip_is_missing():
    """Debian's python3.X ships ensurepip apart (python3.X-venv), and
    `python3 -m venv` fails without it: install names that package, a
    Debian one, and only when ensurepip cannot be found."""
    check = ('import sys; from testbed import packages; '
             'print(packages.venv_packages()); '
             'import ensurepip, os; '
             'stdlib = os.path.dirname(os.path.dirname(ensurepip.__file__)); '
             'del sys.modules["ensurepip"]; '
             'sys.path[:] = [p for p in sys.path if p != stdlib]; '
             'print(packages.venv_packages())')
    out = subprocess.run([sys.executable, '-c', check], cwd=TOOLS,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    name = 'python%d.%d-venv' % sys.version_info[:2]
    assert out.stdout == "()\n('%s',)\n" % name
    assert subprocess.run(['apt-cache', 'show', name],
                          capture_output=True).returncode == 0


def test_demo_help_answers_before_installing_anything():
    out = subprocess.run([str(TOOLS / 'demo'), '--help'], cwd='/',
                         capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stderr) == (0, '')
    assert out.stdout.startswith('usage: tools/demo [-h] [--size SIZE] '
                                 '[--keep]')


def test_setup_env_refuses_an_unknown_mode():
    out = subprocess.run([str(TOOLS / 'setup-env'), 'everything'], cwd='/',
                         capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout, out.stderr) == (
        64, '', 'usage: tools/setup-env [tests|e2e|demo]\n')


def test_setup_env_side_by_side_leaves_the_venv_whole():
    """CI runs legs side by side that each call setup-env on one checkout
    (docs and compat). Two pip installs at once removed each other's files
    (`No such file or directory: .venv/bin/glance-progress`), failing a
    leg. Now one waits for the other, and a venv already installed for
    these inputs is left as it is: its console script never vanishes."""
    root = TOOLS.parent
    script = root / '.venv' / 'bin' / 'glance-progress'
    if not script.exists():
        pytest.skip('no .venv here yet (tools/setup-env makes it)')
    settled = subprocess.run([str(TOOLS / 'setup-env'), 'e2e'], cwd=root,
                             capture_output=True, text=True, timeout=900)
    assert settled.returncode == 0, settled.stderr
    runs = [subprocess.Popen([str(TOOLS / 'setup-env'), 'e2e'], cwd=root,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    missing = 0
    while any(run.poll() is None for run in runs):
        missing += not script.exists()
    outs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    assert missing == 0
    assert outs == [('', ''), ('', '')]
