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

"""What progress_rbd relies on in glance_store, one test per name.

store.py subclasses glance_store's RBD Store and calls into it; the
oldest and newest glance_store of setup.cfg's range (glance_store>=4.10.0,
<6) are both run by CI (tools/glance-store-range and the main suite). A
glance_store release that renames, removes or reshapes one of these fails
the test that names it, not an upload in production.
"""

import inspect

from glance_store._drivers import rbd as rbd_driver
from glance_store import capabilities
from glance_store.common import utils
from glance_store import driver
from glance_store import exceptions
from oslo_config import cfg
import pytest

from glance_progress_store import store

Upstream = rbd_driver.Store


def params(function):
    return list(inspect.signature(function).parameters)


def test_store_is_a_subclass_of_the_rbd_store():
    assert issubclass(store.Store, Upstream)


def test_OPTIONS_is_a_list_of_oslo_opts_we_extend():
    assert all(isinstance(o, cfg.Opt) for o in Upstream.OPTIONS)
    names = {o.name for o in Upstream.OPTIONS}
    # read by configure_add (upstream) and by glance-progress orphans
    assert {'rbd_store_pool', 'rbd_store_user', 'rbd_store_ceph_conf',
            'rbd_store_chunk_size', 'rbd_thin_provisioning'} <= names
    assert list(store.Store.OPTIONS[:len(Upstream.OPTIONS)]) == list(
        Upstream.OPTIONS)


def test_StoreLocation_parses_our_locations():
    assert store.StoreLocation is rbd_driver.StoreLocation
    loc = rbd_driver.StoreLocation({}, None)
    loc.parse_uri('rbd://fsid/images/image-id/snap')
    assert (loc.fsid, loc.pool, loc.image, loc.snapshot) == (
        'fsid', 'images', 'image-id', 'snap')


def test_DEFAULT_SNAPNAME_is_snap():
    assert rbd_driver.DEFAULT_SNAPNAME == 'snap'


def test_rbd_and_rados_module_attributes():
    # store.py takes the bindings from the driver module (None without them)
    assert hasattr(rbd_driver, 'rbd') and hasattr(rbd_driver, 'rados')


def test__create_image_signature():
    # store.py calls it positionally with these; anything newer needs a
    # default (4.x: none; 5.x: context=None)
    signature = inspect.signature(Upstream._create_image)
    assert params(Upstream._create_image)[:7] == [
        'self', 'fsid', 'conn', 'ioctx', 'image_name', 'size', 'order']
    assert all(p.default is not p.empty
               for p in list(signature.parameters.values())[7:])


def test_get_connection_signature():
    assert params(Upstream.get_connection)[:3] == [
        'self', 'conffile', 'rados_id']


def test_configure_add_sets_what_add_reads():
    conf = cfg.ConfigOpts()
    conf.register_opts(Upstream.OPTIONS, group='glance_store')
    instance = Upstream(conf)
    Upstream.configure_add(instance)
    for name in ('pool', 'user', 'conf_file', 'WRITE_CHUNKSIZE',
                 'thin_provisioning', 'backend_group', 'conf'):
        assert hasattr(instance, name), name
    assert instance.pool == 'images'
    assert instance.WRITE_CHUNKSIZE == 8 * 2**20


def test_get_schemes_is_overridable():
    assert 'rbd' in Upstream.get_schemes(None)


def test_back_compat_add_and_capabilities_check():
    assert callable(driver.back_compat_add)
    assert callable(capabilities.check)
    for mask in ('RW_ACCESS', 'DRIVER_REUSABLE'):
        assert isinstance(getattr(capabilities.BitMasks, mask), int)


def _undecorated(function):
    # glance_store's decorators do not use functools.wraps: follow the
    # closures down to the function that has a 'self'.
    while 'self' not in params(function):
        inner = [c.cell_contents for c in function.__closure__ or ()
                 if inspect.isfunction(c.cell_contents)]
        assert inner, function
        function = inner[0]
    return function


def test_add_signature_we_override():
    assert params(_undecorated(Upstream.add)) == [
        'self', 'image_id', 'image_file', 'image_size', 'hashing_algo',
        'context', 'verifier']


def test_utils_get_hasher():
    assert utils.get_hasher('md5', False).name == 'md5'
    assert utils.get_hasher('sha512', False).name == 'sha512'


@pytest.mark.parametrize('name', ['Duplicate', 'StorageFull', 'Invalid',
                                  'BackendException',
                                  'BadStoreConfiguration'])
def test_exceptions(name):
    assert issubclass(getattr(exceptions, name), Exception)
