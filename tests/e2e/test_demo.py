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

"""tools/demo as an operator runs it: --keep, then the printed commands.

Every command the demo prints is copied from its output into another
shell, in any directory: the glance-progress lines (the venv is not on
PATH), glance's and openstack's after the export line, then the stop
command, often twice; each must work, and the stop command say what it
did each time.
"""

import os
import pathlib
import re
import shlex
import subprocess
import sys
import urllib.request

import pytest

from testbed import stack

pytestmark = pytest.mark.e2e

DEMO = pathlib.Path(__file__).resolve().parents[2] / 'tools' / 'demo.py'
VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))


def pasted(line, cwd, timeout=120):
    """``line`` (a block of lines) pasted into a fresh bash in ``cwd``,
    without the venv on PATH: what a newcomer's shell has."""
    env = dict(os.environ, PATH=':'.join(
        p for p in os.environ['PATH'].split(':') if p != VENV_BIN))
    env.pop('VIRTUAL_ENV', None)
    return subprocess.run(['bash', '-c', line], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def section(out, heading):
    """The indented command lines after the line starting with
    ``heading``, up to the next unindented one."""
    lines = out.split('\n' + heading, 1)[1].splitlines()[1:]
    block = []
    for line in lines:
        if not line.startswith('  '):
            break
        block.append(line[2:])
    return block


def test_demo_says_how_to_run_glance_progress(tmp_path):
    """Without --keep: the stack is stopped, and the end of the output
    says where glance-progress is; both lines work pasted."""
    workdir = tmp_path / 'demo'
    demo = subprocess.run(
        [sys.executable, str(DEMO), '--size', '16M', '--workdir',
         str(workdir)], cwd='/', capture_output=True, text=True,
        timeout=600)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
    assert out.startswith('starting Ceph, memcached and glance-api on '
                          'loopback'), out
    assert not stack.running(workdir)
    assert "are in this checkout's venv, not on\nPATH" in out, out
    [help_line] = section(out, 'PATH: run them by their paths')
    [activate] = section(out, 'or put the venv on PATH')
    assert help_line == os.path.join(VENV_BIN, 'glance-progress') + \
        ' --help'
    assert activate == '. ' + os.path.join(VENV_BIN, 'activate')
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    for line in (help_line, activate + ' && glance-progress --help'):
        run = pasted(line, elsewhere)
        assert run.returncode == 0, (line, run.stderr)
        assert 'usage: glance-progress' in run.stdout
    assert pasted('glance-progress --help', elsewhere).returncode != 0
    again = section(out, 'The stack is stopped')
    assert again == [os.path.join(os.path.dirname(DEMO), 'demo') +
                     ' --keep'], out
    assert os.access(again[0].split()[0], os.X_OK)


def test_demo_keep_then_printed_stop_command_twice(tmp_path):
    workdir = tmp_path / 'demo'
    demo = subprocess.run(
        [sys.executable, str(DEMO), '--size', '16M', '--keep', '--no-horizon',
         '--workdir', str(workdir)], cwd='/', capture_output=True,
        text=True, timeout=600)
    try:
        assert demo.returncode == 0, demo.stdout + demo.stderr
        out = demo.stdout
        # both rates, in the same units, each saying what it measures
        through = re.search(r'through glance-api: (\d+) MiB/s \((\d+) B/s\): '
                            r"[\d.]+ s by the client's clock", out)
        store = re.search(r"in the store: +(\d+) MiB/s \((\d+) B/s\): the "
                          r"watch lines' rate", out)
        assert through and store, out
        assert '%sB/s' % store.group(2) in out  # the last watch line's
        # what the kept cluster holds, and how to clean up after it
        assert re.search(r"RAM:  up to [\d.]+ GiB for the OSD's memstore",
                         out), out
        assert re.search(r'images stored: 16 MiB', out), out
        assert out.endswith('then remove its work directory:\n'
                            '  rm -rf %s\n' % workdir), out
        stop = section(out, 'Stop it with:')[0]
        running = stack.running(workdir)
        assert {p['name'] for p in running} == {
            'exporter', 'glance-api', 'ceph-osd', 'ceph-mon', 'memcached'}
        # the exporter it started serves metrics and the page
        exporter = re.search(r'The exporter: (http://127\.0\.0\.1:\d+/)'
                             r'metrics for Prometheus, the live page at '
                             r'(http://127\.0\.0\.1:\d+/)\n', out)
        assert exporter and exporter.group(1) == exporter.group(2), out
        with urllib.request.urlopen(exporter.group(1) + 'metrics',
                                    timeout=10) as response:
            assert b'glance_progress_uploads_in_flight' in response.read()
        # the user's view followed the upload through glance's API
        assert re.search(r'(?m)^user +\| stored$', out), out
        assert re.search(r'(?m)^operator +\| \S+ - stored ', out), out
        image_id = re.search(r'uploading image (\S+) ', out).group(1)
        _printed_commands_work(out, workdir, image_id, tmp_path)
    except BaseException:
        if stack.load_state(workdir):
            stack.down_main(workdir)  # do not leave it running
        raise
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    first = subprocess.run(shlex.split(stop), cwd=elsewhere,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        'stopped exporter, glance-api, ceph-osd, ceph-mon, memcached in '
        '%s\n'
        % workdir)
    assert not any(os.path.exists('/proc/%d' % p['pid']) and
                   stack.owned(p) for p in running)
    second = subprocess.run(shlex.split(stop), cwd=elsewhere,
                            capture_output=True, text=True, timeout=120)
    assert (second.returncode, second.stdout, second.stderr) == (
        1, '', 'nothing running in %s\n' % workdir)


def _printed_commands_work(out, workdir, image_id, tmp_path):
    """The lines --keep prints, pasted as they are while the stack runs."""
    cwd = tmp_path / 'paste'
    cwd.mkdir()
    conf = str(workdir / 'etc' / 'glance-api.conf')
    assert re.search(r'(?m)^With --config-file %s$' % re.escape(conf),
                     out), out
    gp = os.path.join(VENV_BIN, 'glance-progress')
    listing, watch, orphans = section(out, 'orphans, Ceph) without '
                                           '--servers:')
    assert listing.startswith('%s list --since 1h --config-file %s  # '
                              % (gp, conf)), listing
    assert watch == '%s watch %s --config-file %s' % (gp, image_id, conf)
    assert orphans.startswith('%s orphans --config-file %s  # '
                              % (gp, conf)), orphans
    run = pasted(listing, cwd)
    assert run.returncode == 0, run.stderr
    assert re.search(r'(?m)^%s +- +stored +16\.0 MiB / 16\.0 MiB '
                     % image_id, run.stdout), run.stdout
    run = pasted(watch, cwd)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith('%s - stored 16777216/16777216 100.0%%'
                                 % image_id), run.stdout
    run = pasted(orphans, cwd)
    assert (run.returncode, run.stdout) == (
        0, '0 unfinished of 1 images in images: 0 orphans.\n'), run.stderr
    # glance's and openstack's lines after the export line, in one shell
    export, create = section(out, 'the lines above:')
    openstack, rbd = section(out, "The user's view")
    assert export.startswith('export OS_AUTH_TOKEN=')
    assert create.endswith(' --file %s/demo.raw --progress' % workdir)
    run = pasted('\n'.join(['set -e', export, create + ' >/dev/null',
                            openstack, rbd]), cwd, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r'\| state +\| stored +\|', run.stdout), run.stdout
    assert len(re.findall(r'(?m)^[0-9a-f-]{36}$', run.stdout)) == 2, \
        run.stdout  # rbd ls: the demo's image and the one uploaded again
    assert rbd.startswith('/')  # no PATH needed
