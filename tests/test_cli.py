"""glance-progress against the session's real memcached.

Records are written with the package's own writer (the Publisher the
store uses), foreign values with python-memcached directly.
"""

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid

import memcache
import pytest

from glance_progress_store import cli
from glance_progress_store import progress
from glance_progress_store import records

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
    monkeypatch.setattr(cli, 'DEFAULT_CONFIG_FILE',
                        str(tmp_path / 'absent' / 'glance-api.conf'))
    monkeypatch.setattr(cli, 'DEFAULT_CONFIG_DIR',
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
    assert cli.human_size(nbytes) == text


@pytest.mark.parametrize('seconds, text', [
    (0, '0s'), (44.6, '45s'), (65, '1m05s'), (3600, '1h00m'),
    (7380, '2h03m'), (3 * 86400 + 4 * 3600, '3d04h'), (-3, '0s'),
    (None, '?')])
def test_human_duration(seconds, text):
    assert cli.human_duration(seconds) == text


def test_human_rate():
    assert cli.human_rate(50 * MiB) == '50.0 MiB/s'
    assert cli.human_rate(None) == '?'


def test_view_of_uploading_has_rate_eta_and_age():
    rec = records.ProgressRecord('uploading', 60 * MiB, 100 * MiB, None,
                                 1000.0, 1006.0)
    view = cli.view_of('i', None, rec, now=1008.0, stall_after=60)
    assert view.state == 'uploading'
    assert view.percent == 60.0
    assert view.rate_bytes_per_s == 10 * MiB  # 60 MiB in 6 s
    assert view.eta_s == 2.0  # 4 s left at the last update, 2 s ago
    assert view.age_s == 2.0


def test_view_of_stalled_and_final_states():
    rec = records.ProgressRecord('finalizing', 5, 5, None, 0.0, 10.0)
    assert cli.view_of('i', None, rec, 71.0, 60).state == 'stalled'
    assert cli.view_of('i', None, rec, 69.0, 60).state == 'finalizing'
    stalled = cli.view_of('i', None, rec, 71.0, 60)
    assert stalled.eta_s is None
    old = records.ProgressRecord('stored', 5, 5, None, 0.0, 10.0)
    assert cli.view_of('i', None, old, 1e6, 60).state == 'stored'
    assert cli.view_of('i', 'b', None, 1.0, 60).state == 'unknown'


def test_view_of_unknown_size_has_no_percent_nor_eta():
    rec = records.ProgressRecord('uploading', 10, None, None, 0.0, 5.0)
    view = cli.view_of('i', None, rec, 5.0, 60)
    assert (view.percent, view.eta_s, view.rate_bytes_per_s) == (
        None, None, 2.0)


def test_plain_line_is_stable():
    rec = records.ProgressRecord('uploading', 512, 1024, 'ceph1', 0.0, 2.0)
    view = cli.view_of('img', 'ceph1', rec, 2.0, 60)
    assert cli.plain_line(view) == 'img ceph1 uploading 512/1024 50.0% ' \
        '256B/s 2s'
    rec = records.ProgressRecord('failed', 3, None, None, 0.0, 1.0, 'io')
    view = cli.view_of('img', None, rec, 1.0, 60)
    assert cli.plain_line(view) == 'img - failed 3/? - 3B/s - io'


def test_exit_code_highest_wins():
    views = [cli.View('a', None, s) for s in ('stored', 'failed',
                                              'stalled')]
    assert cli.exit_code(views) == cli.EXIT_STALLED
    assert cli.exit_code([cli.View('a', None, 'uploading')]) == 0


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
    assert code == cli.EXIT_UNKNOWN
    assert 'state:    unknown' in out


def test_show_json_fields(capsys, addr, image):
    rec = record(nbytes=60 * MiB, total=100 * MiB, started_ago=6,
                 updated_ago=1)
    publish(addr, image, rec)
    other = str(uuid.uuid4())
    code, views = show_json(capsys, image, other, '--servers', addr)
    assert code == cli.EXIT_UNKNOWN  # the other one has no record
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
    assert code == cli.EXIT_UNKNOWN
    assert views[0]['state'] == 'bad'
    assert 'pickled' in views[0]['error']
    code, out, _ = run(capsys, 'show', image, '--servers', addr)
    assert 'state:    bad' in out and 'did not write' in out
    assert not os.path.exists(TRIPWIRE)


def test_show_foreign_text_is_bad(capsys, addr, image):
    memcache.Client([addr]).set(records.keys_for(image).status, 'hello')
    code, views = show_json(capsys, image, '--servers', addr)
    assert (code, views[0]['state']) == (cli.EXIT_UNKNOWN, 'bad')
    assert 'not JSON' in views[0]['error']


def test_show_memcached_unreachable(capsys, image):
    dead = '127.0.0.1:%d' % free_port()
    code, out, _ = run(capsys, 'show', image, '--servers', dead)
    assert code == cli.EXIT_UNREACHABLE
    assert 'state:    unreachable' in out
    assert '%s did not answer' % dead in out


def test_show_stopped_memcached_is_unreachable(capsys, live_memcached,
                                               image):
    live_memcached.stop()  # the fixture starts it again
    code, views = show_json(capsys, image, '--servers',
                            live_memcached.address)
    assert code == cli.EXIT_UNREACHABLE
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
    assert (code, views[0]['state']) == (cli.EXIT_UNKNOWN, 'unknown')


def test_default_config_location(capsys, addr, image, tmp_path,
                                 monkeypatch):
    conf = write_conf(tmp_path / 'glance-api.conf', (
        '[glance_store]\nprogress_memcached_servers = %s\n' % addr))
    conf_d = tmp_path / 'glance-api.conf.d'
    conf_d.mkdir()
    write_conf(conf_d / 'progress.conf',
               '[glance_store]\nprogress_key_prefix = d1:\n')
    monkeypatch.setattr(cli, 'DEFAULT_CONFIG_FILE', conf)
    monkeypatch.setattr(cli, 'DEFAULT_CONFIG_DIR', str(conf_d))
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
    settings = cli.settings_from_args(args)
    assert settings.plain_sources == [cli.Source(('127.0.0.1:11211',), '')]
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
    settings = cli.load_settings([conf], [])
    assert sorted(settings.backends) == ['ceph1', 'ceph2']  # not "local"
    assert settings.backends['ceph2'] == cli.Source((addr,), 'two:')
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
        settings = cli.load_settings([conf], [])
        assert settings.backends['ceph1'] == cli.Source((addr,), '')
        publish_multi(other.address, image, record(
            state='failed', nbytes=1, total=9, backend='ceph2',
            reason='ceph_error'), prefix='two:')
        code, views = show_json(capsys, image, '--config-file', conf)
        assert code == cli.EXIT_FAILED
        assert [(v['backend'], v['state']) for v in views] == [
            (None, 'failed'), ('ceph2', 'failed')]
        assert views[1]['reason'] == 'ceph_error'
        other.stop()
        code, views = show_json(capsys, image, '--config-file', conf)
        assert code == cli.EXIT_UNREACHABLE
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
        cli.EXIT_UNREACHABLE
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
    assert code == cli.EXIT_FAILED
    assert parse_lines(out)[-1][2:4] == ['failed', '2097152/4194304']
    assert out.splitlines()[-1].endswith(' ceph_error')


def test_watch_stalled(capsys, addr, image):
    publish(addr, image, record(nbytes=MiB, total=4 * MiB,
                                started_ago=7200, updated_ago=3600))
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--timeout', 30)
    assert code == cli.EXIT_STALLED
    assert parse_lines(out) == [[image, '-', 'stalled', '1048576/4194304',
                                 '25.0%', '291B/s', '-']]


def test_watch_becomes_stalled_when_updates_stop(capsys, addr, image):
    publish(addr, image, record(nbytes=MiB, total=4 * MiB))
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.1, '--stall-after', 0.5,
                       '--timeout', 30)
    assert code == cli.EXIT_STALLED
    assert [line[2] for line in parse_lines(out)] == ['uploading',
                                                      'stalled']


def test_watch_unknown_after_wait_start(capsys, addr, image):
    begin = time.monotonic()
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--interval', 0.05, '--wait-start', 0.3)
    assert code == cli.EXIT_UNKNOWN
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
    assert code == cli.EXIT_FAILED
    assert sorted((line[1], line[2]) for line in parse_lines(out)) == [
        ('ceph1', 'stored'), ('ceph2', 'failed')]


def test_watch_pickled_value_is_bad(capsys, addr, image):
    memcache.Client([addr]).set(records.keys_for(image).status, Tripwire())
    code, out, _ = run(capsys, 'watch', image, '--servers', addr,
                       '--timeout', 30)
    assert code == cli.EXIT_UNKNOWN
    line = parse_lines(out)[0]
    assert line[2] == 'bad' and 'pickled' in line[7]
    assert not os.path.exists(TRIPWIRE)


def test_watch_memcached_unreachable(capsys, image):
    begin = time.monotonic()
    code, out, _ = run(capsys, 'watch', image, '--servers',
                       '127.0.0.1:%d' % free_port(), '--timeout', 30)
    assert code == cli.EXIT_UNREACHABLE
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


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_watch_on_a_terminal_draws_bars(addr, image):
    publish(addr, image, record(state='stored', nbytes=3 * MiB,
                                total=4 * MiB))
    args = cli.build_parser().parse_args(['watch', image, '--servers',
                                          addr])
    out = FakeTerminal()
    settings = cli.settings_from_args(args)
    assert cli.Watch(args, settings, out).run() == 0
    text = out.getvalue()
    # a 30 character bar, 75% full (ASCII: StringIO has no encoding)
    assert re.search(r'%s \|#{22}5 {7}\| ' % image, text)
    assert 'stored  3.0 MiB / 4.0 MiB (75.0%)' in text


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
    assert done.returncode == cli.EXIT_UNKNOWN
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
