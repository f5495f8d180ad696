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

"""glance-progress orphans: partial uploads left in the session's Ceph.

RBD images are made with librbd (with or without the protected snapshot
"snap" every finished upload has), records with the store's own
publisher; a finished upload also goes through the store.
"""

import json
import re
import subprocess
import sys
import time
import uuid

import memcache
import pytest

from glance_progress_store.read import states
from glance_progress_store import records
from tests.cli_helpers import MiB
from tests.cli_helpers import MULTI_RBD
from tests.cli_helpers import ORPHAN_FIELDS
from tests.cli_helpers import publish
from tests.cli_helpers import publish_multi
from tests.cli_helpers import record
from tests.cli_helpers import run
from tests.cli_helpers import write_conf
from tests import helpers

import testbed  # on sys.path through conftest


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


def test_orphans_classifies_every_state(capsys, ceph, addr, rbd_image,
                                        tmp_path):
    tripwire = helpers.Tripwire(tmp_path / 'pwned')
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
                                tripwire)
    publish(addr, images['inconsistent'], record(
        state='stored', nbytes=8 * MiB, total=8 * MiB))
    publish(addr, finished, record(state='stored', nbytes=MiB, total=MiB))

    code, found, _ = orphans_json(capsys, ceph, addr, '--pool', helpers.POOL)
    assert code == states.EXIT_ORPHANS
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
    assert not tripwire.path.exists()
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
    assert code == states.EXIT_ORPHANS
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
    assert code == states.EXIT_ORPHANS
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
                              text=True, timeout=60, env=testbed.clean_env())
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
    dead = '127.0.0.1:%d' % testbed.free_port()
    code, found, _ = orphans_json(capsys, ceph, dead, '--pool', quiet_pool)
    assert (code, found) == (0, [])


def test_orphans_memcached_unreachable(capsys, ceph, rbd_image):
    name = rbd_image()
    dead = '127.0.0.1:%d' % testbed.free_port()
    code, found, _ = orphans_json(capsys, ceph, dead, '--pool', helpers.POOL)
    assert code == states.EXIT_UNREACHABLE
    item = by_image(found)[name]
    assert item['state'] == 'unreachable'
    assert '%s refused the connection' % dead in item['error']


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
    assert code == states.EXIT_ORPHANS
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
    assert code == states.EXIT_ORPHANS
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
        assert code == states.EXIT_ORPHANS
        assert 'rbd -c %s -p images rm %s' % (ceph.conf_path, name) in out
    code, out, _ = run(capsys, 'orphans', '--config-file', conf, '--json',
                       '--rbd-user', 'nobody')
    assert code == states.EXIT_UNREACHABLE
    [problem] = [json.loads(line) for line in out.splitlines()]
    assert (problem['pool'], problem['image'], problem['state']) == (
        helpers.POOL, None, 'unreachable')
    assert 'client.nobody' in problem['error']
    assert 'permission denied' in problem['error']


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
    assert code == states.EXIT_ORPHANS
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
    assert code == states.EXIT_USAGE
    assert "'local' is not a progress_rbd backend" in err


def test_orphans_missing_pool_is_a_configuration_error(capsys, ceph, addr):
    code, found, _ = orphans_json(capsys, ceph, addr, '--pool', 'nope',
                                  '--pool', helpers.POOL)
    assert code == states.EXIT_USAGE
    problem = [f for f in found if f['image'] is None]
    assert [(f['pool'], f['state']) for f in problem] == [('nope',
                                                           'no pool')]
    assert "error opening pool 'nope'" in problem[0]['error']


def test_orphans_ceph_unreachable(capsys, ceph, addr, tmp_path):
    dead = tmp_path / 'dead.conf'
    dead.write_text(open(ceph.conf_path).read().replace(
        ceph.mon_addr, '127.0.0.1:%d' % testbed.free_port()))
    begin = time.monotonic()
    code, out, _ = run(capsys, 'orphans', '--ceph-conf', dead, '--servers',
                       addr, '--pool', helpers.POOL, '--ceph-timeout', 2,
                       '--json')
    assert time.monotonic() - begin < 20
    assert code == states.EXIT_UNREACHABLE
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
              'from glance_progress_store.cmd import cli;'
              'sys.exit(cli.main(sys.argv[1:]))')
    done = subprocess.run([sys.executable, '-c', script, 'show', image,
                           '--servers', addr],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, '-c', script, 'orphans',
                           '--servers', addr],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == states.EXIT_USAGE
    assert 'python3-rados and python3-rbd' in done.stderr


def test_orphans_subprocess(ceph, addr, rbd_image):
    name = rbd_image()
    publish(addr, name, stalled_record())
    done = subprocess.run(
        [sys.executable, '-m', 'glance_progress_store.cmd.cli', 'orphans',
         '--json', '--servers', addr, '--ceph-conf', ceph.conf_path],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == states.EXIT_ORPHANS, done.stderr
    found = by_image(json.loads(line) for line in done.stdout.splitlines())
    assert found[name]['state'] == 'stalled'
