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

"""The progress publisher against a real memcached, across a fork."""

import os
import uuid

from glance_progress_store import records
from glance_progress_store.upload import publisher


def test_publisher_survives_fork(live_memcached, reader):
    # uWSGI forks workers after the master imported (and maybe used) the
    # store: the child must publish through its own thread and client.
    pub = publisher.get_publisher([live_memcached.address], 0.5)
    parent_id = str(uuid.uuid4())
    record = records.ProgressRecord('stored', 1, 1, None, 1.0, 1.0)
    keys = records.keys_for(parent_id)
    pub.submit(('', parent_id, None), records.key_values(keys, record),
               60, final=True)
    assert pub.flush(('', parent_id, None), 10)
    child_id = str(uuid.uuid4())
    pid = os.fork()
    if pid == 0:  # child: whatever happens, it never returns into pytest
        ok = False
        try:
            child = publisher.get_publisher([live_memcached.address], 0.5)
            ok = child is not pub
            child.submit(('', child_id, None),
                         records.key_values(records.keys_for(child_id),
                                            record), 60, final=True)
            ok = ok and child.flush(('', child_id, None), 5)
        except BaseException:
            ok = False
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert reader.get(child_id) == record
    assert reader.get(parent_id) == record
