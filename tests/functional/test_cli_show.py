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

"""glance-progress show against the session's real memcached.

Records are written with the package's own writer (the Publisher the
store uses), foreign values with python-memcached directly.
"""

import json
import re
import subprocess
import sys
import uuid

import memcache
import pytest

from glance_progress_store.read import sources
from glance_progress_store.read import states
from glance_progress_store import records
from tests.cli_helpers import FIELDS
from tests.cli_helpers import GiB
from tests.cli_helpers import MiB
from tests.cli_helpers import MULTI
from tests.cli_helpers import publish
from tests.cli_helpers import publish_multi
from tests.cli_helpers import record
from tests.cli_helpers import run
from tests.cli_helpers import show_json
from tests.cli_helpers import write_conf
from tests import helpers

import testbed  # on sys.path through conftest


def test_show_known_size(capsys, addr, image):
    publish(addr, image, record(nbytes=int(1.2 * GiB), total=2 * GiB,
                                started_ago=30, updated_ago=1))
    code, out, _ = run(capsys, 'show', image, '--servers', addr)
    assert code == 0
    assert out.splitlines()[0] == image
    assert 'uploading' in out
    assert '1.2 GiB / 2.0 GiB (60.0%)' in out
    assert 'MiB/s average' in out
    assert 'eta:' in out and re.search(r'updated:  [12]s ago', out)


def test_show_unknown_size(capsys, addr, image):
    publish(addr, image, record(nbytes=300 * MiB, total=None))
    code, out, _ = run(capsys, 'show', image, '--servers', addr)
    assert code == 0
    assert '300.0 MiB (size not known yet)' in out
    assert 'eta:' not in out
    code, views = show_json(capsys, image, '--servers', addr)
    assert (views[0]['total'], views[0]['percent'], views[0]['eta_s']) == (
        None, None, None)


@pytest.mark.parametrize('rec, state, code', [
    (dict(state='stored', nbytes=GiB, total=GiB), 'stored', 0),
    (dict(state='failed', nbytes=5, total=GiB, reason='storage_full'),
     'failed', 1),
    (dict(state='uploading', nbytes=5, total=GiB, updated_ago=3600),
     'stalled', 2),
    (dict(state='finalizing', nbytes=GiB, total=GiB, updated_ago=3600),
     'stalled', 2),
])
def test_show_final_and_stalled_states(capsys, addr, image, rec, state,
                                       code):
    publish(addr, image, record(started_ago=4000, **rec))
    result, out, _ = run(capsys, 'show', image, '--servers', addr)
    assert result == code
    assert 'state:    %s\n' % state in out
    if state == 'failed':
        assert 'reason:   storage_full' in out


def test_show_stall_after_is_an_option(capsys, addr, image):
    publish(addr, image, record(nbytes=5, total=10, updated_ago=20))
    assert show_json(capsys, image, '--servers', addr)[1][0]['state'] == \
        'uploading'
    code, views = show_json(capsys, image, '--servers', addr,
                            '--stall-after', 5)
    assert (code, views[0]['state']) == (2, 'stalled')


def test_show_unknown_image(capsys, addr, image):
    code, out, _ = run(capsys, 'show', image, '--servers', addr)
    assert code == states.EXIT_UNKNOWN
    assert 'state:    unknown' in out


def test_show_json_fields(capsys, addr, image):
    rec = record(nbytes=60 * MiB, total=100 * MiB, started_ago=6,
                 updated_ago=1)
    publish(addr, image, rec)
    other = str(uuid.uuid4())
    code, views = show_json(capsys, image, other, '--servers', addr)
    assert code == states.EXIT_UNKNOWN  # the other one has no record
    assert [list(v) for v in views] == [FIELDS, FIELDS]
    view = views[0]
    assert view['image_id'] == image and view['backend'] is None
    assert (view['state'], view['bytes'], view['total'],
            view['percent']) == ('uploading', 60 * MiB, 100 * MiB, 60.0)
    assert view['rate_bytes_per_s'] == pytest.approx(12 * MiB, rel=0.01)
    assert 1.0 <= view['age_s'] < 3
    assert 0 < view['eta_s'] <= 3.4
    assert (view['started_at'], view['updated_at']) == (rec.started_at,
                                                        rec.updated_at)
    assert (view['reason'], view['error']) == (None, None)
    assert views[1] == dict.fromkeys(FIELDS) | {
        'image_id': other, 'state': 'unknown'}


def test_show_pickled_value_is_bad_and_never_loaded(capsys, addr, image,
                                                    tmp_path):
    tripwire = helpers.Tripwire(tmp_path / 'pwned')
    memcache.Client([addr]).set(records.keys_for(image).status, tripwire)
    code, views = show_json(capsys, image, '--servers', addr)
    assert code == states.EXIT_UNKNOWN
    assert views[0]['state'] == 'bad'
    assert 'pickled' in views[0]['error']
    code, out, _ = run(capsys, 'show', image, '--servers', addr)
    assert 'state:    bad' in out and 'did not write' in out
    assert not tripwire.path.exists()


def test_show_foreign_text_is_bad(capsys, addr, image):
    memcache.Client([addr]).set(records.keys_for(image).status, b'hello')
    code, views = show_json(capsys, image, '--servers', addr)
    assert (code, views[0]['state']) == (states.EXIT_UNKNOWN, 'bad')
    assert 'not JSON' in views[0]['error']


def test_show_memcached_unreachable(capsys, image):
    dead = '127.0.0.1:%d' % testbed.free_port()
    code, out, _ = run(capsys, 'show', image, '--servers', dead)
    assert code == states.EXIT_UNREACHABLE
    assert 'state:    unreachable' in out
    assert '%s refused the connection' % dead in out


def test_show_stopped_memcached_is_unreachable(capsys, live_memcached,
                                               image):
    live_memcached.stop()  # the fixture starts it again
    code, views = show_json(capsys, image, '--servers',
                            live_memcached.address)
    assert code == states.EXIT_UNREACHABLE
    assert views[0]['state'] == 'unreachable'


def test_single_store_config(capsys, addr, image, tmp_path):
    conf = write_conf(tmp_path / 'glance-api.conf', (
        '[DEFAULT]\nbind_port = 9292\n\n'
        '[glance_store]\nstores = progress_rbd\ndefault_store = rbd\n'
        'progress_memcached_servers = %s\nprogress_key_prefix = r1:\n'
        % addr))
    publish(addr, image, record(nbytes=1, total=2), prefix='r1:')
    code, views = show_json(capsys, image, '--config-file', conf)
    assert (code, views[0]['bytes']) == (0, 1)
    # the same id without the prefix is another record
    code, views = show_json(capsys, image, '--config-file', conf,
                            '--prefix', '')
    assert (code, views[0]['state']) == (states.EXIT_UNKNOWN, 'unknown')


def test_default_config_location(capsys, addr, image, tmp_path,
                                 monkeypatch):
    conf = write_conf(tmp_path / 'glance-api.conf', (
        '[glance_store]\nprogress_memcached_servers = %s\n' % addr))
    conf_d = tmp_path / 'glance-api.conf.d'
    conf_d.mkdir()
    write_conf(conf_d / 'progress.conf',
               '[glance_store]\nprogress_key_prefix = d1:\n')
    monkeypatch.setattr(sources, 'DEFAULT_CONFIG_FILE', conf)
    monkeypatch.setattr(sources, 'DEFAULT_CONFIG_DIR', str(conf_d))
    publish(addr, image, record(state='stored', nbytes=7, total=7),
            prefix='d1:')
    code, views = show_json(capsys, image)
    assert (code, views[0]['state'], views[0]['bytes']) == (0, 'stored', 7)


def test_config_dir(capsys, addr, image, tmp_path):
    conf_d = tmp_path / 'conf.d'
    conf_d.mkdir()
    write_conf(conf_d / 'glance-api.conf',
               '[glance_store]\nprogress_memcached_servers = 127.0.0.1:1\n')
    write_conf(conf_d / 'zz-progress.conf', (
        '[glance_store]\nprogress_memcached_servers = %s\n' % addr))
    publish(addr, image, record(state='stored', nbytes=7, total=7))
    code, views = show_json(capsys, image, '--config-dir', conf_d)
    assert (code, views[0]['state']) == (0, 'stored')  # the last file wins


def test_multi_store_config(capsys, addr, image, tmp_path):
    conf = write_conf(tmp_path / 'glance-api.conf', MULTI.format(
        dead='127.0.0.1:1', addr=addr, addr2=addr))
    settings = sources.load_settings([conf], [])
    assert sorted(settings.backends) == ['ceph1', 'ceph2']  # not "local"
    assert settings.backends['ceph2'] == sources.Source((addr,), 'two:')
    publish_multi(addr, image, record(nbytes=3, total=9, backend='ceph1'))
    publish_multi(addr, image, record(state='stored', nbytes=4, total=4,
                                      backend='ceph2'), prefix='two:')
    code, views = show_json(capsys, image, '--config-file', conf)
    assert code == 0
    # the plain record of each prefix, then each backend's record
    assert [(v['backend'], v['state'], v['bytes']) for v in views] == [
        (None, 'uploading', 3), (None, 'stored', 4),
        ('ceph1', 'uploading', 3), ('ceph2', 'stored', 4)]
    code, views = show_json(capsys, image, '--config-file', conf,
                            '--backend', 'ceph2')
    assert [(v['backend'], v['bytes']) for v in views] == [('ceph2', 4)]
    code, out, _ = run(capsys, 'show', image, '--config-file', conf)
    assert '%s [ceph1]\n' % image in out and '%s [ceph2]\n' % image in out


def test_multi_store_backend_defaults_and_own_servers(capsys, addr, image,
                                                      tmp_path):
    other = testbed.Memcached()
    other.start()
    try:
        conf = write_conf(tmp_path / 'glance-api.conf', MULTI.replace(
            'progress_memcached_servers = {addr}\n', '').format(
                dead=addr, addr2=other.address))
        settings = sources.load_settings([conf], [])
        assert settings.backends['ceph1'] == sources.Source((addr,), '')
        publish_multi(other.address, image, record(
            state='failed', nbytes=1, total=9, backend='ceph2',
            reason='ceph_error'), prefix='two:')
        code, views = show_json(capsys, image, '--config-file', conf)
        assert code == states.EXIT_FAILED
        assert [(v['backend'], v['state']) for v in views] == [
            (None, 'failed'), ('ceph2', 'failed')]
        assert views[1]['reason'] == 'ceph_error'
        other.stop()
        code, views = show_json(capsys, image, '--config-file', conf)
        assert code == states.EXIT_UNREACHABLE
        assert [(v['backend'], v['state']) for v in views] == [
            (None, 'unreachable')]
        assert other.address in views[0]['error']
    finally:
        other.stop()


def test_unknown_backend_warns_and_is_read(capsys, addr, image, tmp_path):
    """A backend just removed from enabled_backends: its keys stay
    readable, at its own group's servers or [backend_defaults]'."""
    conf = write_conf(tmp_path / 'glance-api.conf', MULTI.format(
        dead=addr, addr=addr, addr2=addr))
    code, out, err = run(capsys, 'show', image, '--config-file', conf,
                         '--backend', 'local')
    assert code == states.EXIT_UNKNOWN  # read: there is no record
    assert "'local' is not a progress_rbd backend" in err
    assert err.startswith('glance-progress: warning: ') and \
        err.count('\n') == 1
    publish(addr, image, record(state='stored', nbytes=1, total=1,
                                backend='gone'), 'gone')
    for command in (['show'], ['watch', '--timeout', 30]):
        code, out, err = run(capsys, *command, image, '--config-file', conf,
                             '--backend', 'gone')
        assert code == 0, (out, err)
        assert 'stored' in out and 'gone' in out
        assert "'gone' is not a progress_rbd backend" in err


def test_backend_in_single_store_warns(capsys, addr, image):
    publish(addr, image, record(state='stored', nbytes=1, total=1,
                                backend='b1'), 'b1')
    code, views = show_json(capsys, image, '--servers', addr,
                            '--backend', 'b1')
    assert (code, views[0]['backend'], views[0]['state']) == (
        0, 'b1', 'stored')
    code, out, err = run(capsys, 'show', image, '--servers', addr,
                         '--backend', 'b1')
    assert err.startswith('glance-progress: warning: --backend b1: '
                          'single-store configuration')


def test_servers_override_config(capsys, addr, image, tmp_path):
    conf = write_conf(tmp_path / 'glance-api.conf', (
        '[glance_store]\nprogress_memcached_servers = 127.0.0.1:%d\n'
        % testbed.free_port()))
    publish(addr, image, record(state='stored', nbytes=2, total=2))
    assert run(capsys, 'show', image, '--config-file', conf)[0] == \
        states.EXIT_UNREACHABLE
    code, views = show_json(capsys, image, '--config-file', conf,
                            '--servers', addr)
    assert (code, views[0]['state']) == (0, 'stored')


def test_subprocess_watch_and_show(addr, image):
    publish(addr, image, record(state='stored', nbytes=9, total=9))
    base = [sys.executable, '-m', 'glance_progress_store.cmd.cli']
    done = subprocess.run(base + ['watch', image, '--servers', addr,
                                  '--timeout', '30'],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:4] == [image, '-', 'stored', '9/9']
    done = subprocess.run(base + ['show', '--json', image, 'missing',
                                  '--servers', addr],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == states.EXIT_UNKNOWN
    views = [json.loads(line) for line in done.stdout.splitlines()]
    assert [v['state'] for v in views] == ['stored', 'unknown']
