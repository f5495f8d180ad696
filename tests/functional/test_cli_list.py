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

"""``glance-progress list``: uploads found by discovery, as operators see."""

import json
import subprocess
import sys
import time
import uuid

import testbed

from glance_progress_store import records
from glance_progress_store.upload import publisher


def _cli(*args):
    return subprocess.run(
        [sys.executable, '-m', 'glance_progress_store.cmd.cli', 'list', *args],
        capture_output=True, text=True, timeout=60)


def _publish(address, prefix, image_id, state, updated_ago=0.0,
             reason=None):
    pub = publisher.get_publisher([address], 0.5)
    now = time.time()
    record = records.ProgressRecord(
        state, 5 * 2**20, 10 * 2**20, None, now - 30, now - updated_ago,
        reason)
    token = (prefix, image_id, None)
    pub.submit(token, records.key_values(
        records.keys_for(image_id, None, prefix), record), 600,
        final=state in ('stored', 'failed'), index=(60, 600))
    assert pub.flush(token, 10)


def test_list_table_json_states_since(live_memcached):
    prefix = 'list-%s:' % uuid.uuid4().hex[:6]
    address = live_memcached.address
    ids = {name: str(uuid.uuid4()) for name in
           ('moving', 'stuck', 'done', 'broken')}
    _publish(address, prefix, ids['moving'], 'uploading')
    _publish(address, prefix, ids['stuck'], 'uploading', updated_ago=120)
    _publish(address, prefix, ids['done'], 'stored')
    _publish(address, prefix, ids['broken'], 'failed', reason='storage_full')
    where = ['--servers', address, '--prefix', prefix]

    out = _cli(*where)
    assert out.returncode == 2, out  # a stalled upload: as show
    lines = out.stdout.splitlines()
    assert lines[0].split() == ['IMAGE', 'BACKEND', 'STATE', 'PROGRESS',
                                'RATE', 'ETA', 'AGE']
    assert [line.split()[0] for line in lines[1:]] == [
        ids['stuck'], ids['moving']]  # stalled first
    assert lines[1].split()[2] == 'stalled'
    assert '5.0 MiB / 10.0 MiB (50.0%)' in lines[2]

    out = _cli(*where, '--json', '--since', '10m')
    found = [json.loads(line) for line in out.stdout.splitlines()]
    assert {v['image_id']: v['state'] for v in found} == {
        ids['moving']: 'uploading', ids['stuck']: 'stalled',
        ids['done']: 'stored', ids['broken']: 'failed'}
    assert out.returncode == 2  # stalled beats failed
    assert set(found[0]) == {
        'image_id', 'backend', 'state', 'bytes', 'total', 'percent',
        'rate_bytes_per_s', 'eta_s', 'age_s', 'started_at', 'updated_at',
        'reason', 'error'}

    out = _cli(*where, '--since', '1h', '--state', 'failed,stored')
    assert out.returncode == 1  # failed
    assert {line.split()[0] for line in out.stdout.splitlines()[1:]} == {
        ids['done'], ids['broken']}


def test_list_with_a_server_down_names_it(live_memcached):
    prefix = 'list-%s:' % uuid.uuid4().hex[:6]
    down = testbed.Memcached()  # nothing listens there
    out = _cli('--servers', '%s,%s' % (live_memcached.address, down.address),
               '--prefix', prefix)
    assert out.returncode == 4
    assert 'Traceback' not in out.stderr
    assert down.address in out.stderr and 'not listed' in out.stderr
    assert out.stdout.strip() == ('no upload in flight on the memcached '
                                  'servers that answered')


def test_list_with_every_server_down_says_nothing_could_be_read():
    # before: "no upload in flight", as if nothing were uploading
    down = [testbed.Memcached(), testbed.Memcached()]  # nobody listens
    out = _cli('--servers', ','.join(s.address for s in down))
    assert out.returncode == 4
    assert out.stdout.strip() == ('nothing could be read: no memcached '
                                  'server answered')
    for server in down:
        assert server.address in out.stderr


def test_list_usage_errors(live_memcached):
    for args in (['--since', 'soon'], ['--state', 'sleeping'],
                 ['--servers', '[::1]:11211']):
        out = _cli(*args)
        assert out.returncode == 64, (args, out)
        assert 'Traceback' not in out.stderr


def test_list_says_when_uploads_exist_but_none_matches(live_memcached):
    prefix = 'list-%s:' % uuid.uuid4().hex[:6]
    _publish(live_memcached.address, prefix, str(uuid.uuid4()), 'uploading')
    out = _cli('--servers', live_memcached.address, '--prefix', prefix,
               '--state', 'failed')
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'no upload matches --state or --backend'
