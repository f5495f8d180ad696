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

"""Loading and configuring the driver the way glance does, good and bad."""

from oslo_config import cfg
import pytest
from stevedore import driver as stevedore_driver

import glance_store
from glance_store._drivers import rbd as rbd_driver
from glance_store import exceptions
from glance_store import location

from glance_progress_store import options
from glance_progress_store import store as store_mod
from tests import helpers


def test_entry_point_loads_the_store():
    manager = stevedore_driver.DriverManager(
        'glance_store.drivers', 'progress_rbd', invoke_on_load=False)
    assert manager.driver is store_mod.Store
    assert issubclass(store_mod.Store, rbd_driver.Store)


def test_options_reuse_the_rbd_option_objects():
    stock = rbd_driver.Store.OPTIONS
    ours = store_mod.Store.OPTIONS
    assert ours[:len(stock)] == stock
    assert all(a is b for a, b in zip(ours, stock))
    names = {o.name for o in ours}
    for name in ('progress_memcached_servers', 'progress_ttl',
                 'progress_key_prefix', 'progress_socket_timeout',
                 'progress_min_interval', 'progress_enabled'):
        assert name in names


def test_oslo_config_opts_entry_point_lists_every_option():
    manager = stevedore_driver.DriverManager(
        'oslo.config.opts', 'glance_progress_store', invoke_on_load=False)
    listed = manager.driver()
    assert listed == [('glance_store', store_mod.Store.OPTIONS),
                      ('upload_progress', options.FILTER_OPTS)]
    for opt in options.OPTIONS + options.FILTER_OPTS:
        assert len(opt.help) > 100, opt.name  # full help text


def test_schemes_and_location_class(single_store):
    store = single_store()
    assert store.get_schemes() == ('rbd', 'progress_rbd')
    assert store.get_store_location_class() is rbd_driver.StoreLocation
    assert location.SCHEME_TO_CLS_MAP['rbd']['store_entry'] == 'progress_rbd'


def conf_from_file(tmp_path, ceph, memcached, extra=''):
    """A ConfigOpts read from a glance-api.conf, as glance-api reads it."""
    conf_file = tmp_path / 'glance-api.conf'
    conf_file.write_text(
        '[glance_store]\nstores = progress_rbd\ndefault_store = rbd\n'
        'rbd_store_ceph_conf = %s\nrbd_store_pool = %s\n'
        'progress_memcached_servers = %s\n%s\n'
        % (ceph.conf_path, helpers.POOL, memcached.address, extra))
    conf = cfg.ConfigOpts()
    conf([], project='glance-progress-tests',
         default_config_files=[str(conf_file)])
    glance_store.register_opts(conf)
    return conf


@pytest.mark.parametrize('line', [
    'progress_ttl = -5',
    'progress_ttl = one day',
    'progress_socket_timeout = -1',
    'progress_min_interval = -0.5',
    'progress_key_prefix = has space',
    'progress_memcached_servers = 127.0.0.1:11211 127.0.0.1:11212',
    'progress_memcached_servers = [::1]:11211',
    'progress_memcached_servers = inet6:::1:11211',
    'progress_ttl = 2592001',
    'progress_memcached_servers = host:99999',
    'progress_rbd_writes_in_flight = 0',
])
def test_bad_value_is_bad_store_configuration_naming_the_option(
        tmp_path, ceph, memcached, line):
    conf = conf_from_file(tmp_path, ceph, memcached, line)
    store = store_mod.Store(conf)
    name = line.split(' = ')[0]
    with pytest.raises(exceptions.BadStoreConfiguration, match=name):
        store.configure(re_raise_bsc=True)


def test_bad_value_in_config_file_disables_add(tmp_path, ceph, memcached,
                                               caplog):
    conf = conf_from_file(tmp_path, ceph, memcached, 'progress_ttl = -1')
    with caplog.at_level('WARNING'):
        glance_store.create_stores(conf)
    assert any('progress_ttl' in r.getMessage() for r in caplog.records)
    with pytest.raises(exceptions.StoreAddDisabled):
        glance_store.add_to_backend_with_multihash(
            conf, 'x', helpers.SlowReader(b'abc'), 3, 'sha512', scheme='rbd')
