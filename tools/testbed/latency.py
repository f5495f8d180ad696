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

"""A cluster whose writes take as long as a real one's, seen by one client.

Ceph's messenger can hold each message it receives from a peer of a
given type for a random time (``ms_inject_delay_type``, ``_max``,
``_probability``). Set in a client's configuration with ``type = osd``
and probability 1, every reply of the OSD waits uniformly in [0, max]
(mean max / 2) on a timer of its own, so replies to writes in flight
overlap as they would over a network, and only that client is slowed.
(``osd_debug_inject_dispatch_delay_*`` sleeps inside the OSD while it
holds the PG lock, which serialises writes: a slow OSD, not latency.)
This kernel has no netem qdisc, so this is the latency model here;
:func:`probe` checks it before a benchmark relies on it.
"""

import contextlib
import os
import statistics
import time

MiB = 1024 * 1024


def client_conf(ceph, workdir, mean_ms, **client):
    """A copy of ``ceph``'s configuration whose clients see ``mean_ms``
    of added latency on every reply of the OSD, and have the options
    ``client`` (``rbd_cache='false'``); its path."""
    path = os.path.join(workdir, 'ceph-latency-%gms%s.conf' % (
        mean_ms, ''.join('-%s-%s' % item for item in sorted(client.items()))))
    with open(ceph.conf_path) as f:
        text = f.read()
    lines = ''.join('%s = %s\n' % item for item in client.items())
    if mean_ms:
        lines += ('ms inject delay type = osd\n'
                  'ms inject delay max = %g\n'
                  'ms inject delay probability = 1\n' % (2 * mean_ms / 1000))
    text = text.replace('[client]\n', '[client]\n' + lines, 1)
    with open(path, 'w') as f:
        f.write(text)
    return path


def probe(conf_path, pool, chunk_mib=8, writes=64, samples=16,
          depths=(1, 2, 4, 8, 16)):
    """Time librbd's writes at each number in flight, on a fresh image.

    Returns {'write_ms': median time of one write with one in flight,
    'first_write_ms': the same for the first write of each object (it
    also creates the object, and updates the object map if the image has
    one), 'mibs': {depth: MiB/s} writing objects anew, 'fixed_ms': what
    an upload costs besides its writes}. No hashing, no reading: the
    cluster alone.
    """
    import rados

    chunk = chunk_mib * MiB
    data = os.urandom(chunk)
    name = 'latency-probe-%d' % os.getpid()
    cluster = rados.Rados(conffile=conf_path, rados_id='admin')
    cluster.connect()
    try:
        with cluster.open_ioctx(pool) as ioctx:
            result = {'fixed_ms': _fixed_cost(ioctx, name, data)}
            result['mibs'] = {}
            for depth in depths:
                image_name = '%s-%d' % (name, depth)
                with _new_image(ioctx, image_name, data, writes) as image:
                    started = time.perf_counter()
                    _write_all(image, data, writes, depth)
                    result['mibs'][depth] = writes * len(data) / MiB / (
                        time.perf_counter() - started)
            with _new_image(ioctx, name, data, samples) as image:
                result['first_write_ms'] = _median_write_ms(
                    image, data, samples)
                result['write_ms'] = _median_write_ms(image, data, samples)
            return result
    finally:
        cluster.shutdown()


@contextlib.contextmanager
def _new_image(ioctx, name, data, writes):
    import rbd
    rbd.RBD().create(ioctx, name, (writes + 1) * len(data),
                     order=len(data).bit_length() - 1, old_format=False)
    try:
        with rbd.Image(ioctx, name) as image:
            # The first write also takes the image's exclusive lock: made
            # past the objects the probe times.
            image.aio_write(data, writes * len(data),
                            _ignore).wait_for_complete_and_cb()
            yield image
    finally:
        rbd.RBD().remove(ioctx, name)


def _fixed_cost(ioctx, name, data):
    """Milliseconds of an upload that are not its writes' own.

    The calls glance_store's RBD driver (and progress_rbd) make around the
    data: create, open, the first write (which takes the exclusive lock),
    snapshot, protect, close; then less one ordinary write. Each is a
    sequence of round trips to the OSD, each paying the added latency.
    """
    import rbd
    image_name = name + '-fixed'
    started = time.perf_counter()
    rbd.RBD().create(ioctx, image_name, len(data),
                     order=len(data).bit_length() - 1, old_format=False)
    with rbd.Image(ioctx, image_name) as image:
        image.aio_write(data, 0, _ignore).wait_for_complete_and_cb()
        image.create_snap('snap')
        image.protect_snap('snap')
        elapsed = time.perf_counter() - started
        write_ms = _median_write_ms(image, data, 1)
        image.unprotect_snap('snap')
        image.remove_snap('snap')
    rbd.RBD().remove(ioctx, image_name)
    return 1000 * elapsed - write_ms


def _median_write_ms(image, data, writes):
    times = []
    for number in range(writes):
        started = time.perf_counter()
        image.aio_write(data, number * len(data),
                        _ignore).wait_for_complete_and_cb()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def _ignore(completion):
    pass


def _write_all(image, data, writes, depth):
    in_flight = []
    for number in range(writes):
        if len(in_flight) >= depth:
            in_flight.pop(0).wait_for_complete_and_cb()
        in_flight.append(image.aio_write(data, number * len(data),
                                         _ignore))
    for completion in in_flight:
        completion.wait_for_complete_and_cb()
