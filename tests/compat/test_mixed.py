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

"""The glance node's Ceph client of one release, the cluster of another.

Run by tools/compat-tests (a CI leg) with GPS_CEPH_DAEMON_ROOT naming
the root whose Ceph daemons make the session's cluster: Debian 12's
client (16.2, this host) against Reef (trixie root) and Tentacle (forky
root), and Reef's client (inside the trixie root) against Pacific (the
host's daemons, the root's /host). The same run takes the store's,
quota's and orphans' tests (tools/compat-tests names them); this file
proves the mix is the one claimed. Without GPS_CEPH_DAEMON_ROOT (the
plain suite) it is skipped: client and cluster are one release there.
"""

import io
import os
import subprocess

import pytest

from tests import helpers

pytestmark = pytest.mark.skipif(
    not os.environ.get('GPS_CEPH_DAEMON_ROOT'),
    reason='client and cluster are one release (no GPS_CEPH_DAEMON_ROOT)')


def client_release():
    """This system's Ceph (the client librbd's package), e.g. '16.2.15'."""
    out = subprocess.run(['ceph', '--version'], capture_output=True,
                         text=True, check=True).stdout
    return out.split()[2]


def test_client_and_cluster_are_the_releases_claimed(ceph):
    import rados
    client, cluster = client_release(), ceph.version()
    print('compat: client Ceph %s (librados %s) x cluster Ceph %s'
          % (client, rados.Rados().version(), cluster))
    assert client.split('.')[0] != cluster.split('.')[0], (client, cluster)
    want = os.environ.get('GPS_COMPAT_CLUSTER_MAJOR')
    if want:
        assert cluster.split('.')[0] == want, cluster
    daemons = ceph.ceph_json('versions')['overall']
    assert [v.split()[2] for v in daemons] == [cluster]


def cipher_policy(ceph):
    """The monitors' cephx cipher policy, as `mon dump` has it
    ({"auth_allowed_ciphers": [{"name": "aes", "value": 1}, ...], ...}),
    empty before Ceph 20.2.4 (one cipher, no policy)."""
    return {key: value for key, value in ceph.ceph_json('mon', 'dump').items()
            if key.startswith('auth_') and 'cipher' in key}


def test_glance_user_made_as_the_upgrade_guide_says(
        single_store, ceph, reader, image_id):
    """doc/source/admin/upgrade.rst: on a cluster with a cipher policy
    (20.2.4+), a glance node whose librados is older gets a key of type
    aes, which the monitors allow next to aes256k; the store uploads as
    that user with its own keyring, as /etc/ceph has it."""
    key_type = []
    if cipher_policy(ceph):
        ceph.ceph('mon', 'set', 'auth_allowed_ciphers', 'aes,aes256k')
        policy = cipher_policy(ceph)
        allowed = [c['name'] for c in policy['auth_allowed_ciphers']]
        assert allowed == ['aes', 'aes256k'], policy
        key_type = ['--key_type', 'aes']
    # in the cluster's workdir: the root's `ceph -o` writes it there
    keyring = os.path.join(ceph.workdir, 'ceph.client.glance.keyring')
    ceph.ceph('auth', 'get-or-create', 'client.glance', 'mon', 'profile rbd',
              'osd', 'profile rbd pool=%s' % helpers.POOL, *key_type,
              '-o', keyring)
    conf = os.path.join(ceph.workdir, 'ceph-glance.conf')
    with open(ceph.conf_path) as src, open(conf, 'w') as dst:
        dst.write(src.read() + '\n[client.glance]\nkeyring = %s\n' % keyring)
    try:
        store = single_store(rbd_store_user='glance', rbd_store_ceph_conf=conf)
        data = helpers.payload(2 * helpers.MiB + 3)
        result = helpers.add_single(store, image_id, io.BytesIO(data),
                                    len(data))
        assert helpers.check_stored(ceph, result, image_id, data) == {}
        assert helpers.wait_record(reader, image_id).state == 'stored'
    finally:
        ceph.ceph('auth', 'rm', 'client.glance')


def test_upload_through_the_store(single_store, ceph, reader, image_id):
    store = single_store()
    data = helpers.payload(3 * helpers.MiB + 5)
    result = helpers.add_single(store, image_id, helpers.SlowReader(data),
                                len(data))
    assert helpers.check_stored(ceph, result, image_id, data) == {}
    record = helpers.wait_record(reader, image_id)
    assert (record.state, record.bytes) == ('stored', len(data))
