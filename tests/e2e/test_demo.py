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

"""tools/demo as an operator runs it: --keep, then the printed stop command.

The stop command is copied from the demo's output into another shell, in
any directory, often twice; it must work and say what it did each time.
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


def test_demo_keep_then_printed_stop_command_twice(tmp_path):
    workdir = tmp_path / 'demo'
    demo = subprocess.run(
        [sys.executable, str(DEMO), '--size', '16M', '--keep',
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
        stop = out.split('Stop it with:\n', 1)[1].splitlines()[0]
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
