"""glance-progress against the session's real memcached.

Records are written with the package's own writer (the Publisher the
store uses), foreign values with python-memcached directly.
"""

import contextlib
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import uuid

import memcache
import pytest

from glance_progress_store import cli
from glance_progress_store import glance_config
from glance_progress_store import progress
from glance_progress_store import records
from glance_progress_store import views as views_mod
from tests import helpers

import testbed  # on sys.path through conftest

MiB = 1024 * 1024
GiB = 1024 * MiB
FIELDS = ['image_id', 'backend', 'state', 'bytes', 'total', 'percent',
          'rate_bytes_per_s', 'eta_s', 'age_s', 'started_at', 'updated_at',
          'reason', 'error']
TRIPWIRE = '/tmp/glance-progress-cli-pwned'


class Tripwire(object):
    """Unpickling this would run code: the CLI must never do it."""

    def __reduce__(self):
        return (os.system, ('touch ' + TRIPWIRE,))


@pytest.fixture(autouse=True)
def no_host_config(monkeypatch, tmp_path):
    """The host's /etc/glance must not leak into the tests."""
    monkeypatch.setattr(glance_config, 'DEFAULT_CONFIG_FILE',
                        str(tmp_path / 'absent' / 'glance-api.conf'))
    monkeypatch.setattr(glance_config, 'DEFAULT_CONFIG_DIR',
                        str(tmp_path / 'absent' / 'glance-api.conf.d'))


@pytest.fixture
def image():
    return str(uuid.uuid4())


@pytest.fixture
def addr(live_memcached):
    return live_memcached.address


def record(state='uploading', nbytes=0, total=None, backend=None,
           started_ago=10.0, updated_ago=0.0, reason=None):
    now = time.time()
    return records.ProgressRecord(state, nbytes, total, backend,
                                  now - started_ago, now - updated_ago,
                                  reason)


def publish(address, image_id, rec, backend=None, prefix='', final=True):
    """Write a record the way the store does, and wait until it is sent."""
    publisher = progress.get_publisher([address], 0.5)
    token = ('test-cli', prefix, image_id, backend)
    keys = records.keys_for(image_id, backend, prefix)
    publisher.submit(token, records.key_values(keys, rec), 600, final)
    assert publisher.flush(token, 5)


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def show_json(capsys, *argv):
    code, out, err = run(capsys, 'show', '--json', *argv)
    return code, [json.loads(line) for line in out.splitlines()]


def free_port():
    return testbed.free_port()


# --- Pure formatting and status ---------------------------------------------

@pytest.mark.parametrize('nbytes, text', [
    (0, '0 B'), (1023, '1023 B'), (1024, '1.0 KiB'), (1536, '1.5 KiB'),
    (int(1.2 * GiB), '1.2 GiB'), (1024 * 1024 - 1, '1.0 MiB'),
    (None, '?')])
def test_human_size(nbytes, text):
    assert views_mod.human_size(nbytes) == text


@pytest.mark.parametrize('seconds, text', [
    (0, '0s'), (44.6, '45s'), (65, '1m05s'), (3600, '1h00m'),
    (7380, '2h03m'), (3 * 86400 + 4 * 3600, '3d04h'), (-3, '0s'),
    (None, '?')])
def test_human_duration(seconds, text):
    assert views_mod.human_duration(seconds) == text


def test_human_rate():
    assert views_mod.human_rate(50 * MiB) == '50.0 MiB/s'
    assert views_mod.human_rate(None) == '?'


def test_view_of_uploading_has_rate_eta_and_age():
    rec = records.ProgressRecord('uploading', 60 * MiB, 100 * MiB, None,
                                 1000.0, 1006.0)
    view = views_mod.view_of('i', None, rec, now=1008.0, stall_after=60)
    assert view.state == 'uploading'
    assert view.percent == 60.0
    assert view.rate_bytes_per_s == 10 * MiB  # 60 MiB in 6 s
    assert view.eta_s == 2.0  # 4 s left at the last update, 2 s ago
    assert view.age_s == 2.0


def test_view_of_stalled_and_final_states():
    rec = records.ProgressRecord('finalizing', 5, 5, None, 0.0, 10.0)
    assert views_mod.view_of('i', None, rec, 71.0, 60).state == 'stalled'
    assert views_mod.view_of('i', None, rec, 69.0, 60).state == 'finalizing'
    stalled = views_mod.view_of('i', None, rec, 71.0, 60)
    assert stalled.eta_s is None
    old = records.ProgressRecord('stored', 5, 5, None, 0.0, 10.0)
    assert views_mod.view_of('i', None, old, 1e6, 60).state == 'stored'
    assert views_mod.view_of('i', 'b', None, 1.0, 60).state == 'unknown'


def test_view_of_unknown_size_has_no_percent_nor_eta():
    rec = records.ProgressRecord('uploading', 10, None, None, 0.0, 5.0)
    view = views_mod.view_of('i', None, rec, 5.0, 60)
    assert (view.percent, view.eta_s, view.rate_bytes_per_s) == (
        None, None, 2.0)


def test_plain_line_is_stable():
    rec = records.ProgressRecord('uploading', 512, 1024, 'ceph1', 0.0, 2.0)
    view = views_mod.view_of('img', 'ceph1', rec, 2.0, 60)
    assert views_mod.plain_line(view) == \
        'img ceph1 uploading 512/1024 50.0% 256B/s 2s'
    rec = records.ProgressRecord('failed', 3, None, None, 0.0, 1.0, 'io')
    view = views_mod.view_of('img', None, rec, 1.0, 60)
    assert views_mod.plain_line(view) == 'img - failed 3/? - 3B/s - io'


def test_exit_code_highest_wins():
    views = [views_mod.View('a', None, s)
             for s in ('stored', 'failed', 'stalled')]
    assert views_mod.exit_code(views) == views_mod.EXIT_STALLED
    assert views_mod.exit_code([views_mod.View('a', None, 'uploading')]) == 0


# --- show ----------------------------------------------------------------

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
    assert code == views_mod.EXIT_UNKNOWN
    assert 'state:    unknown' in out


def test_show_json_fields(capsys, addr, image):
    rec = record(nbytes=60 * MiB, total=100 * MiB, started_ago=6,
                 updated_ago=1)
    publish(addr, image, rec)
    other = str(uuid.uuid4())
    code, views = show_json(capsys, image, other, '--servers', addr)
    assert code == views_mod.EXIT_UNKNOWN  # the other one has no record
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


def test_show_pickled_value_is_bad_and_never_loaded(capsys, addr, image):
    memcache.Client([addr]).set(records.keys_for(image).status, Tripwire())
    code, views = show_json(capsys, image, '--servers', addr)
    assert code == views_mod.EXIT_UNKNOWN
    assert views[0]['state'] == 'bad'
    assert 'pickled' in views[0]['error']
    code, out, _ = run(capsys, 'show', image, '--servers', addr)
    assert 'state:    bad' in out and 'did not write' in out
    assert not os.path.exists(TRIPWIRE)


def test_show_foreign_text_is_bad(capsys, addr, image):
    memcache.Client([addr]).set(records.keys_for(image).status, 'hello')
    code, views = show_json(capsys, image, '--servers', addr)
    assert (code, views[0]['state']) == (views_mod.EXIT_UNKNOWN, 'bad')
    assert 'not JSON' in views[0]['error']


def test_show_memcached_unreachable(capsys, image):
    dead = '127.0.0.1:%d' % free_port()
    code, out, _ = run(capsys, 'show', image, '--servers', dead)
    assert code == views_mod.EXIT_UNREACHABLE
    assert 'state:    unreachable' in out
    assert '%s did not answer' % dead in out


def test_show_stopped_memcached_is_unreachable(capsys, live_memcached,
                                               image):
    live_memcached.stop()  # the fixture starts it again
    code, views = show_json(capsys, image, '--servers',
                            live_memcached.address)
    assert code == views_mod.EXIT_UNREACHABLE
    assert views[0]['state'] == 'unreachable'


# --- configuration --------------------------------------------------------

def write_conf(path, text):
    path.write_text(text)
    return str(path)


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
    assert (code, views[0]['state']) == (views_mod.EXIT_UNKNOWN, 'unknown')


def test_default_config_location(capsys, addr, image, tmp_path,
                                 monkeypatch):
    conf = write_conf(tmp_path / 'glance-api.conf', (
        '[glance_store]\nprogress_memcached_servers = %s\n' % addr))
    conf_d = tmp_path / 'glance-api.conf.d'
    conf_d.mkdir()
    write_conf(conf_d / 'progress.conf',
               '[glance_store]\nprogress_key_prefix = d1:\n')
    monkeypatch.setattr(glance_config, 'DEFAULT_CONFIG_FILE', conf)
    monkeypatch.setattr(glance_config, 'DEFAULT_CONFIG_DIR', str(conf_d))
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


def test_no_config_reads_localhost():
    args = cli.build_parser().parse_args(['show', 'x'])
    settings = glance_config.settings_from_args(args)
    assert settings.plain_sources == [
        glance_config.Source(('127.0.0.1:11211',), '')]
    assert settings.backends == {}


MULTI = """\
[DEFAULT]
enabled_backends = ceph1:progress_rbd, ceph2:progress_rbd, local:file

[glance_store]
default_backend = ceph1

[backend_defaults]
progress_memcached_servers = {dead}

[ceph1]
rbd_store_pool = images
progress_memcached_servers = {addr}

[ceph2]
rbd_store_pool = images2
progress_memcached_servers = {addr2}
progress_key_prefix = two:

[local]
filesystem_store_datadir = /tmp
"""


def publish_multi(address, image_id, rec, prefix=''):
    """As the store does: the backend's keys and the plain keys."""
    publish(address, image_id, rec, rec.backend, prefix)
    publish(address, image_id, rec, None, prefix)


def test_multi_store_config(capsys, addr, image, tmp_path):
    conf = write_conf(tmp_path / 'glance-api.conf', MULTI.format(
        dead='127.0.0.1:1', addr=addr, addr2=addr))
    settings = glance_config.load_settings([conf], [])
    assert sorted(settings.backends) == ['ceph1', 'ceph2']  # not "local"
    assert settings.backends['ceph2'] == glance_config.Source((addr,), 'two:')
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
        settings = glance_config.load_settings([conf], [])
        assert settings.backends['ceph1'] == glance_config.Source((addr,), '')
        publish_multi(other.address, image, record(
            state='failed', nbytes=1, total=9, backend='ceph2',
            reason='ceph_error'), prefix='two:')
        code, views = show_json(capsys, image, '--config-file', conf)
        assert code == views_mod.EXIT_FAILED
        assert [(v['backend'], v['state']) for v in views] == [
            (None, 'failed'), ('ceph2', 'failed')]
        assert views[1]['reason'] == 'ceph_error'
        other.stop()
        code, views = show_json(capsys, image, '--config-file', conf)
        assert code == views_mod.EXIT_UNREACHABLE
        assert [(v['backend'], v['state']) for v in views] == [
            (None, 'unreachable')]
        assert other.address in views[0]['error']
    finally:
        other.stop()


def test_unknown_backend_is_a_usage_error(capsys, addr, image, tmp_path):
    conf = write_conf(tmp_path / 'glance-api.conf', MULTI.format(
        dead=addr, addr=addr, addr2=addr))
    code, out, err = run(capsys, 'show', image, '--config-file', conf,
                         '--backend', 'local')
    assert code == cli.EXIT_USAGE
    assert "'local' is not a progress_rbd backend" in err


@pytest.mark.parametrize('text, message', [
    ('[glance_store]\nprogress_memcached_servers = nohost\n',
     "[glance_store] progress_memcached_servers entry 'nohost' is not"),
    ('[glance_store]\nprogress_key_prefix = has space\n',
     'progress_key_prefix must be printable ASCII'),
])
def test_bad_config_is_reported(capsys, tmp_path, text, message):
    conf = write_conf(tmp_path / 'glance-api.conf', text)
    code, out, err = run(capsys, 'show', 'x', '--config-file', conf)
    assert code == cli.EXIT_USAGE
    assert message in err


def test_missing_config_file_is_reported(capsys, tmp_path):
    code, out, err = run(capsys, 'show', 'x', '--config-file',
                         tmp_path / 'nope.conf')
    assert code == cli.EXIT_USAGE
    assert 'nope.conf' in err


def test_servers_override_config(capsys, addr, image, tmp_path):
    conf = write_conf(tmp_path / 'glance-api.conf', (
        '[glance_store]\nprogress_memcached_servers = 127.0.0.1:%d\n'
        % free_port()))
    publish(addr, image, record(state='stored', nbytes=2, total=2))
    assert run(capsys, 'show', image, '--config-file', conf)[0] == \
        views_mod.EXIT_UNREACHABLE
    code, views = show_json(capsys, image, '--config-file', conf,
                            '--servers', addr)
    assert (code, views[0]['state']) == (0, 'stored')


# --- watch -------------------------------------------------------------------

def parse_lines(out):
    return [line.split(None, 7) for line in out.splitlines()
            if not line.startswith('#')]


def later(delay, function, *args, **kwargs):
    timer = threading.Timer(delay, function, args, kwargs)
    timer.start()
    return timer


def test_watch_until_stored(capsys, addr, image):
    # the operator starts watching before the upload starts
    started = time.time()

    def upload():
        for nbytes in (0, MiB, 3 * MiB):
            publish(addr, image, records.ProgressRecord(
                'uploading', nbytes, 4 * MiB, None, started, time.time()),
                final=False)
            time.sleep(0.2)
        publish(addr, image, records.ProgressRecord(
            'stored', 4 * MiB, 4 * MiB, None, started, time.time()))

    timer = later(0.4, upload)
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.05, '--timeout', 30)
    timer.join()
    assert code == 0
    lines = parse_lines(out)
    assert lines[0] == [image, '-', 'waiting', '-', '-', '-', '-']
    assert [line[2:4] for line in lines[1:]] == [
        ['uploading', '0/4194304'], ['uploading', '1048576/4194304'],
        ['uploading', '3145728/4194304'], ['stored', '4194304/4194304']]
    assert lines[-1][4] == '100.0%' and lines[-1][5].endswith('B/s')


def test_watch_failed(capsys, addr, image):
    publish(addr, image, record(nbytes=MiB, total=4 * MiB), final=False)
    timer = later(0.3, publish, addr, image, record(
        state='failed', nbytes=2 * MiB, total=4 * MiB, reason='ceph_error'))
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.05, '--timeout', 30)
    timer.join()
    assert code == views_mod.EXIT_FAILED
    assert parse_lines(out)[-1][2:4] == ['failed', '2097152/4194304']
    assert out.splitlines()[-1].endswith(' ceph_error')


def test_watch_stalled(capsys, addr, image):
    publish(addr, image, record(nbytes=MiB, total=4 * MiB,
                                started_ago=7200, updated_ago=3600))
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--timeout', 30)
    assert code == views_mod.EXIT_STALLED
    assert parse_lines(out) == [[image, '-', 'stalled', '1048576/4194304',
                                 '25.0%', '291B/s', '-']]


def test_watch_becomes_stalled_when_updates_stop(capsys, addr, image):
    publish(addr, image, record(nbytes=MiB, total=4 * MiB))
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.1, '--stall-after', 0.5,
                       '--timeout', 30)
    assert code == views_mod.EXIT_STALLED
    assert [line[2] for line in parse_lines(out)] == ['uploading',
                                                      'stalled']


def test_watch_unknown_after_wait_start(capsys, addr, image):
    begin = time.monotonic()
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.05, '--wait-start', 0.3)
    assert code == views_mod.EXIT_UNKNOWN
    assert time.monotonic() - begin >= 0.3
    assert [line[2] for line in parse_lines(out)] == ['waiting', 'unknown']


def test_watch_timeout(capsys, addr, image):
    publish(addr, image, record(nbytes=MiB, total=4 * MiB))
    begin = time.monotonic()
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.05, '--timeout', 0.3)
    assert code == cli.EXIT_TIMEOUT
    assert 0.3 <= time.monotonic() - begin < 5
    assert out.splitlines()[-1] == '# timed out after 0s'


def test_watch_several_images_waits_for_all(capsys, addr, image):
    other = str(uuid.uuid4())
    publish(addr, image, record(state='stored', nbytes=1, total=1))
    publish(addr, other, record(nbytes=1, total=2), final=False)
    timer = later(0.3, publish, addr, other,
                  record(state='stored', nbytes=2, total=2))
    code, out, _ = run(capsys, 'watch', image, other, '--servers', addr,
                       '--interval', 0.05, '--timeout', 30)
    timer.join()
    assert code == 0
    last = {line[0]: line[2] for line in parse_lines(out)}
    assert last == {image: 'stored', other: 'stored'}


def test_watch_multi_store_one_line_per_backend(capsys, addr, image,
                                                tmp_path):
    conf = write_conf(tmp_path / 'glance-api.conf', MULTI.format(
        dead=addr, addr=addr, addr2=addr))
    publish_multi(addr, image, record(state='stored', nbytes=5, total=5,
                                      backend='ceph1'))
    publish_multi(addr, image, record(state='failed', nbytes=1, total=5,
                                      backend='ceph2', reason='x'),
                  prefix='two:')
    code, out, _ = run(capsys, 'watch', image, '--config-file', conf,
                       '--timeout', 30)
    assert code == views_mod.EXIT_FAILED
    assert sorted((line[1], line[2]) for line in parse_lines(out)) == [
        ('ceph1', 'stored'), ('ceph2', 'failed')]


def test_watch_pickled_value_is_bad(capsys, addr, image):
    memcache.Client([addr]).set(records.keys_for(image).status, Tripwire())
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--timeout', 30)
    assert code == views_mod.EXIT_UNKNOWN
    line = parse_lines(out)[0]
    assert line[2] == 'bad' and 'pickled' in line[7]
    assert not os.path.exists(TRIPWIRE)


def test_watch_memcached_unreachable(capsys, image):
    begin = time.monotonic()
    code, out, _ = run(capsys, 'watch', image, '--servers',
                       '127.0.0.1:%d' % free_port(), '--timeout', 30)
    assert code == views_mod.EXIT_UNREACHABLE
    assert time.monotonic() - begin < 10  # wrong servers: no waiting
    line = parse_lines(out)[0]
    assert line[2] == 'unreachable' and 'did not answer' in line[7]


def test_watch_survives_a_memcached_restart(capsys, live_memcached,
                                            image):
    addr = live_memcached.address
    publish(addr, image, record(nbytes=1, total=2), final=False)

    def restart_then_store():
        live_memcached.stop()
        time.sleep(0.5)
        live_memcached.start()
        publish(addr, image, record(state='stored', nbytes=2, total=2))

    timer = later(0.3, restart_then_store)
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.05, '--timeout', 30)
    timer.join()
    assert code == 0
    states = [line[2] for line in parse_lines(out)]
    assert states[0] == 'uploading' and states[-1] == 'stored'
    assert 'unreachable' in states


@contextlib.contextmanager
def terminal(columns):
    """A real pseudo-terminal of `columns` columns; yields (out, read)."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ,
                struct.pack('HHHH', 40, columns, 0, 0))
    out = os.fdopen(slave, 'w', encoding='utf-8')

    def read():
        out.flush()
        chunks = []
        while select.select([master], [], [], 0.2)[0]:
            chunks.append(os.read(master, 65536))
        return b''.join(chunks).decode('utf-8', 'replace')
    try:
        yield out, read
    finally:
        out.close()
        os.close(master)


def watch_on(columns, addr, image):
    publish(addr, image, record(state='stored', nbytes=3 * MiB,
                                total=4 * MiB))
    args = cli.build_parser().parse_args(['watch', image, '--servers',
                                          addr])
    settings = glance_config.settings_from_args(args)
    with terminal(columns) as (out, read):
        assert cli.Watch(args, settings, out).run() == 0
        return read()


def test_watch_on_a_terminal_draws_bars(addr, image):
    text = watch_on(120, addr, image)
    # a 30 character bar, 75% full
    assert re.search(r'%s \|█{22}\S? *\| ' % image, text), text
    assert 'stored  3.0 MiB / 4.0 MiB (75.0%)' in text


def test_watch_on_a_terminal_of_unknown_width_prints_lines(addr, image):
    # tqdm draws nothing in 0 columns (a pty without a window size)
    text = watch_on(0, addr, image)
    assert '%s - stored 3145728/4194304 75.0%%' % image in text, text


# --- the command line itself ------------------------------------------------

def test_subprocess_watch_and_show(addr, image):
    publish(addr, image, record(state='stored', nbytes=9, total=9))
    base = [sys.executable, '-m', 'glance_progress_store.cli']
    done = subprocess.run(base + ['watch', image, '--servers', addr,
                                  '--timeout', '30'],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:4] == [image, '-', 'stored', '9/9']
    done = subprocess.run(base + ['show', '--json', image, 'missing',
                                  '--servers', addr],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == views_mod.EXIT_UNKNOWN
    views = [json.loads(line) for line in done.stdout.splitlines()]
    assert [v['state'] for v in views] == ['stored', 'unknown']


@pytest.mark.parametrize('argv', [['show', '--help'], ['watch', '--help'],
                                  ['--help']])
def test_help(capsys, argv):
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    out = capsys.readouterr().out
    assert raised.value.code == 0
    assert 'exit codes' in out and '64  usage' in out


def test_version(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(['--version'])
    assert raised.value.code == 0
    assert capsys.readouterr().out.startswith('glance-progress ')


@pytest.mark.parametrize('argv', [
    [], ['show'], ['watch', 'x', '--interval', '0'],
    ['watch', 'x', '--timeout', '-1'], ['frobnicate', 'x']])
def test_usage_errors_do_not_look_like_stalled(capsys, argv):
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    assert raised.value.code == cli.EXIT_USAGE
    assert 'usage:' in capsys.readouterr().err


# --- orphans: partial uploads left in Ceph ----------------------------------
#
# RBD images are made with librbd in the session's Ceph (with or without
# the protected snapshot "snap" every finished upload has), records with
# the store's own publisher; a finished upload also goes through the store.

ORPHAN_FIELDS = ['pool', 'image', 'state', 'bytes', 'total', 'age_s',
                 'record_state', 'reason', 'error']


@pytest.fixture
def rbd_image(ceph):
    """make(pool, snap=None|'unprotected'|'protected') -> a new image name.

    Every image made (or named in ``made``) is removed after the test.
    """
    import rados
    import rbd
    made = []

    def make(pool=helpers.POOL, snap=None, name=None, size=MiB):
        name = name or str(uuid.uuid4())
        with rados.Rados(conffile=ceph.conf_path) as cluster:
            with cluster.open_ioctx(pool) as ioctx:
                rbd.RBD().create(ioctx, name, size)
                made.append((pool, name))
                if snap:
                    with rbd.Image(ioctx, name) as image:
                        image.create_snap('snap')
                        if snap == 'protected':
                            image.protect_snap('snap')
        return name

    make.made = made
    yield make
    for pool, name in made:
        helpers.remove_image(ceph, pool, name)


@pytest.fixture(scope='module')
def quiet_pool(ceph):
    """A pool of this module's own: no other test leaves anything in it."""
    name = 'orphans-quiet'
    ceph.create_pool(name)
    yield name
    ceph.delete_pool(name)


def orphans_run(capsys, ceph, addr, *argv):
    return run(capsys, 'orphans', '--ceph-conf', ceph.conf_path,
               '--servers', addr, *argv)


def orphans_json(capsys, ceph, addr, *argv):
    code, out, err = orphans_run(capsys, ceph, addr, '--json', *argv)
    found = [json.loads(line) for line in out.splitlines()]
    for item in found:
        assert list(item) == ORPHAN_FIELDS
    return code, found, err


def by_image(found):
    return {item['image']: item for item in found}


def stalled_record(**kwargs):
    values = dict(nbytes=4 * MiB, total=8 * MiB, started_ago=600,
                  updated_ago=300)
    values.update(kwargs)
    return record(**values)


def test_orphans_classifies_every_state(capsys, ceph, addr, rbd_image):
    images = {state: rbd_image() for state in (
        'in progress', 'stalled', 'failed', 'bad', 'inconsistent', 'new')}
    finalizing = rbd_image(snap='unprotected')  # died between the two
    finished = rbd_image(snap='protected')
    finished_no_record = rbd_image(snap='protected')
    publish(addr, images['in progress'], record(nbytes=MiB, total=None,
                                                updated_ago=1))
    publish(addr, images['stalled'], stalled_record())
    publish(addr, finalizing, stalled_record(state='finalizing',
                                             nbytes=8 * MiB))
    publish(addr, images['failed'], stalled_record(
        state='failed', nbytes=MiB, reason='storage_error'))
    memcache.Client([addr]).set(records.keys_for(images['bad']).status,
                                Tripwire())
    publish(addr, images['inconsistent'], record(
        state='stored', nbytes=8 * MiB, total=8 * MiB))
    publish(addr, finished, record(state='stored', nbytes=MiB, total=MiB))

    code, found, _ = orphans_json(capsys, ceph, addr, '--pool', helpers.POOL)
    assert code == cli.EXIT_ORPHANS
    found = by_image(found)
    assert finished not in found and finished_no_record not in found
    assert {name: found[name]['state'] for name in images.values()} == {
        name: state for state, name in images.items()}
    assert all(found[name]['pool'] == helpers.POOL for name in found)
    progressing = found[images['in progress']]
    assert (progressing['bytes'], progressing['total'],
            progressing['record_state']) == (MiB, None, 'uploading')
    assert 0.9 <= progressing['age_s'] < 10
    stalled = found[images['stalled']]
    assert (stalled['bytes'], stalled['total'], stalled['record_state'],
            stalled['reason'], stalled['error']) == (
        4 * MiB, 8 * MiB, 'uploading', None, None)
    assert 299 < stalled['age_s'] < 310
    assert (found[finalizing]['state'],
            found[finalizing]['record_state']) == ('stalled', 'finalizing')
    failed = found[images['failed']]
    assert (failed['record_state'], failed['reason']) == (
        'failed', 'storage_error')
    bad = found[images['bad']]
    assert bad['record_state'] is None and 'pickled' in bad['error']
    assert not os.path.exists(TRIPWIRE)
    assert found[images['inconsistent']]['record_state'] == 'stored'
    new = found[images['new']]
    assert new['record_state'] is None and 0 <= new['age_s'] < 30


def test_orphans_no_record_has_the_image_age(capsys, ceph, addr, rbd_image):
    name = rbd_image()
    code, found, _ = orphans_json(capsys, ceph, addr, '--pool', helpers.POOL)
    assert by_image(found)[name]['state'] == 'new'  # created just now
    time.sleep(1.1)  # Ceph's create timestamp counts whole seconds
    code, found, _ = orphans_json(capsys, ceph, addr, '--pool', helpers.POOL,
                                  '--stall-after', 1)
    item = by_image(found)[name]
    assert code == cli.EXIT_ORPHANS
    assert item['state'] == 'no record'
    assert 1 <= item['age_s'] < 30  # from Ceph's create timestamp
    assert (item['bytes'], item['total'], item['record_state']) == (
        None, None, None)


def test_orphans_table_and_commands(capsys, ceph, addr, rbd_image):
    stalled = rbd_image()
    finalizing = rbd_image(snap='unprotected')
    moving = rbd_image()
    odd = rbd_image(name='odd name\n%s' % uuid.uuid4().hex[:8])
    publish(addr, stalled, stalled_record())
    publish(addr, finalizing, stalled_record(state='finalizing'))
    publish(addr, moving, record(nbytes=MiB, total=2 * MiB))
    publish(addr, odd, stalled_record())
    code, out, _ = orphans_run(capsys, ceph, addr, '--pool', helpers.POOL,
                               '--rbd-user', 'admin')
    assert code == cli.EXIT_ORPHANS
    lines = out.splitlines()
    assert lines[0].split() == ['POOL', 'IMAGE', 'STATE', 'BYTES/TOTAL',
                                'AGE', 'ACTION']
    row = next(line for line in lines if line.startswith(
        '%s  %s' % (helpers.POOL, stalled)))
    assert re.search(r' stalled +4\.0 MiB / 8\.0 MiB +5m0[0-9]s +remove: '
                     'its glance-api worker died$', row), row
    row = next(line for line in lines if moving in line)
    assert re.search(r' in progress +1\.0 MiB / 2\.0 MiB +[0-9]s +none: '
                     'upload in progress$', row), row
    # a name with a control character stays on its row, escaped
    assert any(line.startswith('%s  %s ' % (helpers.POOL,
                                            odd.replace('\n', '\\n')))
               for line in lines)
    summary = next(line for line in lines if 'unfinished of' in line)
    assert re.search(r'^\d+ unfinished of \d+ images in images: \d+ orphans '
                     r'\(.*\d+ stalled.*\), .*\d+ in progress', summary)
    rbd = 'rbd -c %s --id admin -p %s' % (ceph.conf_path, helpers.POOL)
    text = '\n'.join(lines)
    assert '  glance image-show %s\n  %s rm %s\n' % (
        stalled, rbd, stalled) in text
    assert '  %s snap purge %s\n  %s rm %s' % (
        rbd, finalizing, rbd, finalizing) in text
    assert "  %s rm $'%s'" % (rbd, odd.replace('\n', '\\x0a')) in text
    assert 'glance image-show %s' % moving not in text  # not an orphan
    assert 'Never remove an image that glance uses' in text


def test_orphans_commands_really_remove_the_orphan(capsys, ceph, addr,
                                                   rbd_image):
    """The printed commands work as they are (through a shell)."""
    name = rbd_image(snap='unprotected', name='odd name\t%s' % uuid.uuid4())
    publish(addr, name, stalled_record(state='finalizing'))
    code, out, _ = orphans_run(capsys, ceph, addr, '--pool', helpers.POOL)
    escaped = name.replace('\t', '\\x09')
    commands = [line.strip() for line in out.splitlines()
                if line.startswith('  rbd ') and escaped in line]
    assert [c.split(' -p %s ' % helpers.POOL)[1].split()[0]
            for c in commands] == ['snap', 'rm']
    for command in commands:
        done = subprocess.run(['bash', '-c', command], capture_output=True,
                              text=True, timeout=60, env=testbed._clean_env())
        assert done.returncode == 0, done.stderr
    assert name not in ceph.images(helpers.POOL)


def test_orphans_none_exits_0_and_finished_uploads_never_show(
        capsys, ceph, addr, quiet_pool, rbd_image, single_store):
    # a finished upload, through the store itself
    store = single_store(rbd_store_pool=quiet_pool)
    uploaded = str(uuid.uuid4())
    rbd_image.made.append((quiet_pool, uploaded))
    data = helpers.payload(3 * MiB + 5)
    helpers.add_single(store, uploaded, helpers.SlowReader(data), len(data))
    assert helpers.read_rbd(ceph, quiet_pool, uploaded, 'snap')[1] == {
        'snap': True}
    old = rbd_image(quiet_pool, snap='protected')  # finished, record gone
    code, found, _ = orphans_json(capsys, ceph, addr, '--pool', quiet_pool)
    assert (code, found) == (0, [])
    code, out, _ = orphans_run(capsys, ceph, addr, '--pool', quiet_pool)
    assert code == 0
    assert out == '0 unfinished of 2 images in %s: 0 orphans.\n' % quiet_pool
    # an upload in progress is listed, but is no orphan
    moving = rbd_image(quiet_pool)
    publish(addr, moving, record(nbytes=MiB, total=2 * MiB))
    code, found, _ = orphans_json(capsys, ceph, addr, '--pool', quiet_pool)
    assert code == 0
    assert [(f['image'], f['state']) for f in found] == [
        (moving, 'in progress')]
    assert old not in by_image(found) and uploaded not in by_image(found)
    # memcached is only needed to classify unfinished images
    helpers.remove_image(ceph, quiet_pool, moving)
    dead = '127.0.0.1:%d' % free_port()
    code, found, _ = orphans_json(capsys, ceph, dead, '--pool', quiet_pool)
    assert (code, found) == (0, [])


def test_orphans_memcached_unreachable(capsys, ceph, rbd_image):
    name = rbd_image()
    dead = '127.0.0.1:%d' % free_port()
    code, found, _ = orphans_json(capsys, ceph, dead, '--pool', helpers.POOL)
    assert code == views_mod.EXIT_UNREACHABLE
    item = by_image(found)[name]
    assert item['state'] == 'unreachable'
    assert '%s did not answer' % dead in item['error']


def test_orphans_failed_store_cleanup_is_found(capsys, ceph, addr, image,
                                               rbd_image, single_store):
    """A real failed upload whose partial image is left (the image the
    store's cleanup would remove is recreated, as if it had failed)."""
    from glance_store import exceptions
    store = single_store()
    data = helpers.payload(2 * MiB)
    with pytest.raises(exceptions.Invalid):  # body shorter than declared
        helpers.add_single(store, image, helpers.SlowReader(data),
                           len(data) + 1)
    assert not helpers.rbd_exists(ceph, helpers.POOL, image)
    rbd_image(name=image)
    code, found, _ = orphans_json(capsys, ceph, addr, '--pool', helpers.POOL)
    item = by_image(found)[image]
    assert code == cli.EXIT_ORPHANS
    assert (item['state'], item['record_state'], item['reason']) == (
        'failed', 'failed', 'size_mismatch')


def rbd_conf(ceph, addr, prefix='', user='rbd_store_user = admin\n'):
    return ('[glance_store]\nstores = progress_rbd\ndefault_store = rbd\n'
            'rbd_store_pool = %s\nrbd_store_ceph_conf = %s\n%s'
            'progress_memcached_servers = %s\nprogress_key_prefix = %s\n'
            % (helpers.POOL, ceph.conf_path, user, addr, prefix))


def test_orphans_single_store_config(capsys, ceph, addr, rbd_image,
                                     tmp_path):
    conf = write_conf(tmp_path / 'glance-api.conf',
                      rbd_conf(ceph, addr, prefix='r1:'))
    name = rbd_image()
    publish(addr, name, stalled_record(), prefix='r1:')
    other = rbd_image(helpers.POOL2)
    publish(addr, other, stalled_record(), prefix='r1:')
    code, out, _ = run(capsys, 'orphans', '--config-file', conf, '--json')
    found = by_image(json.loads(line) for line in out.splitlines())
    assert code == cli.EXIT_ORPHANS
    assert found[name]['state'] == 'stalled'  # the record under r1:
    assert other not in found  # images2 is not the store's pool
    code, out, _ = run(capsys, 'orphans', '--config-file', conf)
    assert 'rbd -c %s --id admin -p images rm %s' % (ceph.conf_path,
                                                     name) in out
    # --pool replaces the pools, keeping the configuration's Ceph
    code, out, _ = run(capsys, 'orphans', '--config-file', conf, '--json',
                       '--pool', helpers.POOL2)
    found = by_image(json.loads(line) for line in out.splitlines())
    assert found[other]['state'] == 'stalled' and name not in found
    # the prefix given on the command line wins
    code, out, _ = run(capsys, 'orphans', '--config-file', conf, '--json',
                       '--prefix', '')
    assert by_image(json.loads(line) for line in out.splitlines())[
        name]['state'] == 'new'


def test_orphans_unset_user_is_librados_default(capsys, ceph, addr,
                                                rbd_image, tmp_path):
    # glance_store would connect as "client.None"; librados' default user
    # is client.admin, whose keyring the test bed's ceph.conf names.
    conf = write_conf(tmp_path / 'glance-api.conf',
                      rbd_conf(ceph, addr, user=''))
    name = rbd_image()
    publish(addr, name, stalled_record())
    for extra in ([], ['--rbd-user', 'None']):
        code, out, _ = run(capsys, 'orphans', '--config-file', conf, *extra)
        assert code == cli.EXIT_ORPHANS
        assert 'rbd -c %s -p images rm %s' % (ceph.conf_path, name) in out
    code, out, _ = run(capsys, 'orphans', '--config-file', conf, '--json',
                       '--rbd-user', 'nobody')
    assert code == views_mod.EXIT_UNREACHABLE
    [problem] = [json.loads(line) for line in out.splitlines()]
    assert (problem['pool'], problem['image'], problem['state']) == (
        helpers.POOL, None, 'unreachable')
    assert 'client.nobody' in problem['error']
    assert 'permission denied' in problem['error']


MULTI_RBD = """\
[DEFAULT]
enabled_backends = ceph1:progress_rbd, ceph2:progress_rbd, local:file

[glance_store]
default_backend = ceph1

[backend_defaults]
rbd_store_ceph_conf = {conf}
rbd_store_user = admin
progress_memcached_servers = {addr}

[ceph1]
rbd_store_pool = images

[ceph2]
rbd_store_pool = images2
progress_key_prefix = two:

[local]
filesystem_store_datadir = /tmp
"""


def test_orphans_multi_store_config(capsys, ceph, addr, rbd_image,
                                    tmp_path):
    conf = write_conf(tmp_path / 'glance-api.conf', MULTI_RBD.format(
        conf=ceph.conf_path, addr=addr))
    one = rbd_image(helpers.POOL)
    two = rbd_image(helpers.POOL2)
    moving = rbd_image(helpers.POOL2)
    publish_multi(addr, one, stalled_record(state='failed', backend='ceph1',
                                            reason='storage_full'))
    # the same image id is being copied into ceph2 (copy-image) and its
    # upload there died; the plain keys say the ceph1 upload failed
    publish(addr, two, stalled_record(backend='ceph2'), 'ceph2', 'two:')
    publish(addr, two, record(state='stored', nbytes=1, total=1,
                              backend='ceph1'), None, 'two:')
    publish_multi(addr, moving, record(nbytes=1, total=2, backend='ceph2'),
                  prefix='two:')
    code, out, _ = run(capsys, 'orphans', '--config-file', conf, '--json')
    found = by_image(json.loads(line) for line in out.splitlines())
    assert code == cli.EXIT_ORPHANS
    assert (found[one]['pool'], found[one]['state'],
            found[one]['reason']) == (helpers.POOL, 'failed',
                                      'storage_full')
    assert (found[two]['pool'], found[two]['state'],
            found[two]['record_state']) == (helpers.POOL2, 'stalled',
                                            'uploading')
    assert found[moving]['state'] == 'in progress'
    code, out, _ = run(capsys, 'orphans', '--config-file', conf)
    summary = next(line for line in out.splitlines()
                   if 'unfinished of' in line)
    assert ' images in images, images2: ' in summary
    # --backend: that backend's pool only
    code, out, _ = run(capsys, 'orphans', '--config-file', conf, '--json',
                       '--backend', 'ceph2')
    found = by_image(json.loads(line) for line in out.splitlines())
    assert one not in found and found[two]['state'] == 'stalled'
    code, out, err = run(capsys, 'orphans', '--config-file', conf,
                         '--backend', 'local')
    assert code == cli.EXIT_USAGE
    assert "'local' is not a progress_rbd backend" in err


def test_orphans_targets_from_config(tmp_path, ceph):
    conf = write_conf(tmp_path / 'glance-api.conf', MULTI_RBD.format(
        conf='/etc/ceph/other.conf', addr='127.0.0.1:11211').replace(
            '[ceph2]\n', '[ceph2]\nrbd_store_user = glance2\n'))
    argv = ['orphans', '--config-file', conf]
    args = cli.build_parser().parse_args(argv)
    targets = glance_config.orphan_targets(
        args, glance_config.settings_from_args(args))
    assert [(t.backend, t.pool, t.ceph_conf, t.user) for t in targets] == [
        ('ceph1', 'images', '/etc/ceph/other.conf', 'admin'),
        ('ceph2', 'images2', '/etc/ceph/other.conf', 'glance2')]
    assert targets[1].records_at == (
        (glance_config.Source(('127.0.0.1:11211',), 'two:'), 'ceph2'),)
    args = cli.build_parser().parse_args(argv + [
        '--pool', 'images2', '--pool', 'other', '--ceph-conf', '/c.conf',
        '--rbd-user', 'ops'])
    targets = glance_config.orphan_targets(
        args, glance_config.settings_from_args(args))
    assert [(t.backend, t.pool, t.ceph_conf, t.user) for t in targets] == [
        ('ceph2', 'images2', '/c.conf', 'ops'),
        (None, 'other', '/c.conf', 'ops')]
    # no configuration: glance_store's defaults
    args = cli.build_parser().parse_args(['orphans'])
    [target] = glance_config.orphan_targets(
        args, glance_config.settings_from_args(args))
    assert (target.pool, target.ceph_conf, target.user) == (
        'images', '', None)


def test_orphans_missing_pool_is_a_configuration_error(capsys, ceph, addr):
    code, found, _ = orphans_json(capsys, ceph, addr, '--pool', 'nope',
                                  '--pool', helpers.POOL)
    assert code == cli.EXIT_USAGE
    problem = [f for f in found if f['image'] is None]
    assert [(f['pool'], f['state']) for f in problem] == [('nope',
                                                           'no pool')]
    assert "error opening pool 'nope'" in problem[0]['error']


def test_orphans_ceph_unreachable(capsys, ceph, addr, tmp_path):
    dead = tmp_path / 'dead.conf'
    dead.write_text(open(ceph.conf_path).read().replace(
        ceph.mon_addr, '127.0.0.1:%d' % free_port()))
    begin = time.monotonic()
    code, out, _ = run(capsys, 'orphans', '--ceph-conf', dead, '--servers',
                       addr, '--pool', helpers.POOL, '--ceph-timeout', 2,
                       '--json')
    assert time.monotonic() - begin < 20
    assert code == views_mod.EXIT_UNREACHABLE
    [problem] = [json.loads(line) for line in out.splitlines()]
    assert (problem['image'], problem['state']) == (None, 'unreachable')
    assert 'timed out' in problem['error']
    code, out, _ = run(capsys, 'orphans', '--ceph-conf', dead, '--servers',
                       addr, '--pool', helpers.POOL, '--ceph-timeout', 2)
    assert 'Not checked: images (unreachable).' in out
    assert 'check Ceph: cannot connect to Ceph with %s' % dead in out


def test_orphans_without_ceph_bindings(addr, image):
    """show works without rados/rbd; orphans says what to install."""
    publish(addr, image, record(state='stored', nbytes=1, total=1))
    script = ('import sys; sys.modules["rados"] = sys.modules["rbd"] = None;'
              'from glance_progress_store import cli;'
              'sys.exit(cli.main(sys.argv[1:]))')
    done = subprocess.run([sys.executable, '-c', script, 'show', image,
                           '--servers', addr],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, '-c', script, 'orphans',
                           '--servers', addr],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == cli.EXIT_USAGE
    assert 'python3-rados and python3-rbd' in done.stderr


def test_orphans_subprocess(ceph, addr, rbd_image):
    name = rbd_image()
    publish(addr, name, stalled_record())
    done = subprocess.run(
        [sys.executable, '-m', 'glance_progress_store.cli', 'orphans',
         '--json', '--servers', addr, '--ceph-conf', ceph.conf_path],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == cli.EXIT_ORPHANS, done.stderr
    found = by_image(json.loads(line) for line in done.stdout.splitlines())
    assert found[name]['state'] == 'stalled'


@pytest.mark.parametrize('argv', [
    ['orphans', '--ceph-timeout', '0'], ['orphans', '--stall-after', '-1'],
    ['orphans', 'extra']])
def test_orphans_usage_errors(capsys, argv):
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    assert raised.value.code == cli.EXIT_USAGE


def test_orphans_backend_needs_multi_store(capsys):
    code, out, err = run(capsys, 'orphans', '--backend', 'ceph1')
    assert code == cli.EXIT_USAGE
    assert '--backend needs a multi-store configuration' in err


def test_orphans_help(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(['orphans', '--help'])
    out = capsys.readouterr().out
    assert raised.value.code == 0
    for text in ('1   orphans found', '4   Ceph or memcached unreachable',
                 '64  usage', 'stalled ', 'no record', '--pool NAME',
                 '--rbd-user USER', '--ceph-conf PATH'):
        assert text in out


@pytest.mark.parametrize('text, quoted', [
    ('0c9e2a17-5b7d-4e0f-8a61-6d2f3b9c4e10',
     '0c9e2a17-5b7d-4e0f-8a61-6d2f3b9c4e10'),
    ('with space', "'with space'"), ("it's", "'it'\"'\"'s'"),
    ('tab\there', "$'tab\\x09here'"), ("a'\x01\\", "$'a\\'\\x01\\\\'"),
    ('caf\u00e9', "'caf\u00e9'")])
def test_orphans_shell_word(text, quoted):
    from glance_progress_store import orphans
    assert orphans.shell_word(text) == quoted
    done = subprocess.run(['bash', '-c', 'printf %s ' + quoted],
                          capture_output=True, timeout=30)
    assert done.stdout.decode('utf-8') == text


def test_orphans_classify_boundaries():
    from glance_progress_store import orphans
    target = orphans.Target('images')
    partial = orphans.Partial(target, 'i', 1000.0, ())
    active = records.ProgressRecord('uploading', 1, 2, None, 900.0, 990.0)
    assert orphans.classify(partial, active, 1050.0, 60).state == \
        'in progress'
    assert orphans.classify(partial, active, 1050.1, 60).state == 'stalled'
    assert orphans.classify(partial, None, 1059.0, 60).state == 'new'
    assert orphans.classify(partial, None, 1060.0, 60).state == 'no record'
    unknown_age = orphans.Partial(target, 'i', None, ())
    finding = orphans.classify(unknown_age, None, 1001.0, 60)
    assert (finding.state, finding.age_s, finding.orphan) == (
        'no record', None, True)
    assert not orphans.classify(partial, active, 1000.0, 60).orphan
