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

"""Store options read and validated at configure time, without Ceph."""

import pytest

from glance_store import exceptions
from oslo_config import cfg

from glance_progress_store import _memcache
from glance_progress_store import options
from glance_progress_store.upload import config


def _group(tmp_path, *lines):
    path = tmp_path / 'glance-api.conf'
    path.write_text('[glance_store]\n' + '\n'.join(lines) + '\n')
    conf = cfg.ConfigOpts()
    conf.register_opts(options.OPTIONS, group='glance_store')
    conf([], project='gps-unit', default_config_files=[str(path)])
    return conf.glance_store


def test_defaults(tmp_path):
    values = config.ProgressConfig(_group(tmp_path), 'progress_rbd')
    assert values.servers == ('127.0.0.1:11211',)
    assert (values.ttl, values.key_prefix, values.writes_in_flight) == (
        86400, '', 16)
    assert values.process_in_flight == 128 * 1024 * 1024


@pytest.mark.parametrize('line,option', [
    ('progress_ttl = 2592001', 'progress_ttl'),  # > 30 days: absolute time
    ('progress_ttl = 0', 'progress_ttl'),
    ('progress_memcached_servers = 127.0.0.1:11211 127.0.0.1:11212',
     'progress_memcached_servers'),
    ('progress_memcached_servers = [::1]:11211',
     'progress_memcached_servers'),
    ('progress_key_prefix = a b', 'progress_key_prefix'),
    ('progress_rbd_writes_in_flight = 65', 'progress_rbd_writes_in_flight'),
])
def test_bad_values_name_the_option(tmp_path, line, option):
    with pytest.raises(exceptions.BadStoreConfiguration, match=option):
        config.ProgressConfig(_group(tmp_path, line), 'progress_rbd')


def test_longest_ttl_memcached_reads_as_relative(tmp_path):
    values = config.ProgressConfig(
        _group(tmp_path, 'progress_ttl = %d' % _memcache.MAX_TTL), 'x')
    assert values.ttl == 2592000


def test_disabled_store_does_not_check_servers(tmp_path):
    values = config.ProgressConfig(_group(
        tmp_path, 'progress_enabled = false',
        'progress_memcached_servers = not a server'), 'x')
    assert values.servers == () and not values.enabled


def test_list_opts_has_the_stock_rbd_options_and_ours():
    [(group, opts), (filter_group, filter_opts)] = options.list_opts()
    assert filter_group == 'upload_progress'
    assert [o.name for o in filter_opts] == ['stall_after',
                                             'memcached_socket_timeout',
                                             'memcached_dead_retry']
    names = [o.name for o in opts]
    assert group == 'glance_store'
    assert 'rbd_store_pool' in names and 'progress_ttl' in names
    assert len(names) == len(set(names))
