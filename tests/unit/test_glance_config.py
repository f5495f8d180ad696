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

"""glance-api configurations, written to tmp dirs, as the CLI reads them."""

import pytest

from glance_progress_store.ops import orphans
from glance_progress_store.read import sources
from glance_progress_store.read import states
from tests.cli_helpers import MULTI_RBD
from tests.cli_helpers import run
from tests.cli_helpers import write_conf


def test_no_config_reads_localhost():
    settings = sources.read_settings()
    assert settings.plain_sources == [
        sources.Source(('127.0.0.1:11211',), '')]
    assert settings.backends == {}


@pytest.mark.parametrize('text, message', [
    ('[glance_store]\nprogress_memcached_servers = a:1 b:2\n',
     "[glance_store] progress_memcached_servers: 'a:1 b:2' contains "
     "whitespace: separate servers with commas"),
    ('[glance_store]\nprogress_memcached_servers = [::1]:11211\n',
     "write an IPv6 server as inet6:"),
    ('[glance_store]\nprogress_key_prefix = has space\n',
     'progress_key_prefix must be printable ASCII'),
])
def test_bad_config_is_reported(capsys, tmp_path, text, message):
    conf = write_conf(tmp_path / 'glance-api.conf', text)
    code, out, err = run(capsys, 'show', 'x', '--config-file', conf)
    assert code == states.EXIT_USAGE
    assert message in err


def test_missing_config_file_is_reported(capsys, tmp_path):
    code, out, err = run(capsys, 'show', 'x', '--config-file',
                         tmp_path / 'nope.conf')
    assert code == states.EXIT_USAGE
    assert 'nope.conf' in err


def test_orphans_targets_from_config(tmp_path):
    conf = write_conf(tmp_path / 'glance-api.conf', MULTI_RBD.format(
        conf='/etc/ceph/other.conf', addr='127.0.0.1:11211').replace(
            '[ceph2]\n', '[ceph2]\nrbd_store_user = glance2\n'))
    settings = sources.read_settings([conf])
    targets = orphans.orphan_targets(settings, [conf])
    assert [(t.backend, t.pool, t.ceph_conf, t.user) for t in targets] == [
        ('ceph1', 'images', '/etc/ceph/other.conf', 'admin'),
        ('ceph2', 'images2', '/etc/ceph/other.conf', 'glance2')]
    assert targets[1].records_at == (
        (sources.Source(('127.0.0.1:11211',), 'two:'), 'ceph2'),)
    targets = orphans.orphan_targets(
        settings, [conf], pools=['images2', 'other'], ceph_conf='/c.conf',
        rbd_user='ops')
    assert [(t.backend, t.pool, t.ceph_conf, t.user) for t in targets] == [
        ('ceph2', 'images2', '/c.conf', 'ops'),
        (None, 'other', '/c.conf', 'ops')]
    # no configuration: glance_store's defaults
    [target] = orphans.orphan_targets(sources.read_settings())
    assert (target.pool, target.ceph_conf, target.user) == (
        'images', '', None)


SINGLE = '[glance_store]\n%sprogress_memcached_servers = 127.0.0.1:1\n'


@pytest.mark.parametrize('stores, warning', [
    ('stores = file, rbd\ndefault_store = rbd\n',
     '[glance_store] stores = file, rbd does not list progress_rbd'),
    ('stores = progress_rbd, file\ndefault_store = file\n',
     '[glance_store] default_store = file: uploads go to another store'),
    ('enabled_backends = local:file\n',
     'enabled_backends has no progress_rbd backend'),
])
def test_config_without_progress_rbd_warns(capsys, tmp_path, stores,
                                           warning):
    if stores.startswith('enabled_backends'):
        text = '[DEFAULT]\n%s\n' % stores + SINGLE % ''
    else:
        text = SINGLE % stores
    conf = write_conf(tmp_path / 'glance-api.conf', text)
    warnings = []
    sources.read_settings([conf], warn=warnings.append)
    assert len(warnings) == 1 and warnings[0].startswith(warning)
    # the CLI prints it on one line and goes on reading (nobody answers)
    code, out, err = run(capsys, 'show', 'x', '--config-file', conf)
    assert code == states.EXIT_UNREACHABLE
    assert err == 'glance-progress: warning: %s\n' % warnings[0]


@pytest.mark.parametrize('stores', [
    'stores = progress_rbd\ndefault_store = rbd\n',  # README's
    'stores = progress_rbd, http\ndefault_store = progress_rbd\n',
    ''])  # unset: nothing to say (--servers only, or not glance's file)
def test_config_with_progress_rbd_does_not_warn(tmp_path, stores):
    conf = write_conf(tmp_path / 'glance-api.conf', SINGLE % stores)
    warnings = []
    sources.read_settings([conf], warn=warnings.append)
    assert warnings == []
