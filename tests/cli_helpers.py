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

"""What the CLI tests share: records written as the store writes them,
configuration files, and running ``glance-progress`` in-process."""

import json
import time

from glance_progress_store.cmd import cli
from glance_progress_store import records
from glance_progress_store.upload import publisher

MiB = 1024 * 1024
GiB = 1024 * MiB
FIELDS = ['image_id', 'backend', 'state', 'bytes', 'total', 'percent',
          'rate_bytes_per_s', 'eta_s', 'age_s', 'started_at', 'updated_at',
          'reason', 'error']


def record(state='uploading', nbytes=0, total=None, backend=None,
           started_ago=10.0, updated_ago=0.0, reason=None):
    now = time.time()
    return records.ProgressRecord(state, nbytes, total, backend,
                                  now - started_ago, now - updated_ago,
                                  reason)


def publish(address, image_id, rec, backend=None, prefix='', final=True):
    """Write a record the way the store does, and wait until it is sent."""
    pub = publisher.get_publisher([address], 0.5)
    token = publisher.UploadKey(prefix, image_id, backend)
    keys = records.keys_for(image_id, backend, prefix)
    pub.submit(token, records.key_values(keys, rec), 600, final)
    assert pub.flush(token, 10)  # a restarted server: probe, settle


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def show_json(capsys, *argv):
    code, out, err = run(capsys, 'show', '--json', *argv)
    return code, [json.loads(line) for line in out.splitlines()]


def write_conf(path, text):
    path.write_text(text)
    return str(path)


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


ORPHAN_FIELDS = ['pool', 'image', 'state', 'bytes', 'total', 'age_s',
                 'record_state', 'reason', 'error']
