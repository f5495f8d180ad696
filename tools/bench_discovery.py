#!/usr/bin/env python3
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

"""What discovery costs, measured side by side in one run.

1. Uploads through the progress_rbd store's add() with
   progress_discovery on and off, taking turns: memcached commands and
   bytes per upload (memcached's own counters, ``stats``, which vary with
   how many chunk updates the publisher coalesced), the publisher's exact
   record and index writes, and the upload rate (ratio on / off).
2. ``discover()`` (what ``glance-progress list`` and the exporter run)
   and the ``glance-progress list`` command (a new process each time)
   with 0, 10 and 100 uploads in flight on a memcached that also holds
   200,000 foreign keys: latency p50 and p99::

    .venv/bin/python tools/bench_discovery.py --size 256M --runs 5
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import testbed  # noqa: E402
from testbed.figures import conclude  # noqa: E402
from testbed.figures import make_source  # noqa: E402
from testbed.figures import percentile  # noqa: E402
from testbed.sizes import human  # noqa: E402
from testbed.sizes import parse_size  # noqa: E402

MiB = 1024 * 1024
TARGETS = {'extra_ops': 2, 'ratio': 0.98}
COUNTERS = ('cmd_get', 'cmd_set', 'cmd_touch', 'bytes_read',
            'bytes_written')


def _stats(address):
    from glance_progress_store import _memcache
    connection = _memcache.Connection(address, 5)
    host = connection._client.servers[0]
    stats = dict(connection._client.get_stats()[0][1])
    host.close_socket()
    return {k: int(stats[k]) for k in COUNTERS}


def _store(local, discovery):
    from oslo_config import cfg

    import glance_store
    conf = cfg.ConfigOpts()
    conf([], project='glance-progress-bench', default_config_files=[])
    glance_store.register_opts(conf)
    for name, value in {
            'stores': ['progress_rbd'], 'default_store': 'rbd',
            'rbd_store_ceph_conf': local.ceph.conf_path,
            'rbd_store_pool': 'images', 'rbd_store_user': 'admin',
            'progress_memcached_servers': [local.memcached.address],
            'progress_discovery': discovery}.items():
        conf.set_override(name, value, group='glance_store')
    glance_store.create_stores(conf)
    return glance_store.get_store_from_scheme('rbd')


def _publisher(store):
    from glance_progress_store.upload import publisher
    config = store.progress_config
    return publisher.get_publisher(config.servers, config.socket_timeout)


def upload_costs(local, size, runs):
    source = os.path.join(local.workdir, 'source')
    make_source(source, size)
    results = {True: [], False: []}
    for run in range(runs):
        for discovery in (False, True):
            store = _store(local, discovery)
            image_id = str(uuid.uuid4())
            pub = _publisher(store)
            sent = (pub.stats.updates_sent,
                    pub.stats.index_writes)
            before = _stats(local.memcached.address)
            with open(source, 'rb', buffering=0) as data:
                started = time.perf_counter()
                store.add(image_id, data, size, 'sha512')
                seconds = time.perf_counter() - started
            time.sleep(0.3)  # the publisher's last writes
            after = _stats(local.memcached.address)
            counts = {k: after[k] - before[k] for k in COUNTERS}
            counts['record_writes'] = pub.stats.updates_sent - sent[0]
            counts['index_writes'] = pub.stats.index_writes - sent[1]
            results[discovery].append((size / MiB / seconds, counts))
            local.ceph.rbd('snap', 'unprotect', 'images/%s@snap' % image_id)
            local.ceph.rbd('snap', 'purge', 'images/%s' % image_id)
            local.ceph.rbd('rm', 'images/%s' % image_id)
            print('  discovery %-3s run %d: %7.1f MiB/s, %s' % (
                'on' if discovery else 'off', run + 1,
                results[discovery][-1][0], results[discovery][-1][1]),
                file=sys.stderr)
    return results


def list_latency(counts, repeats, cli_repeats):
    from glance_progress_store import _memcache
    from glance_progress_store.read import discovery
    from glance_progress_store.read import sources
    from glance_progress_store import records
    from glance_progress_store.upload import publisher
    figures = {}
    with testbed.Memcached(memory_mb=512) as server:
        connection = _memcache.Connection(server.address, 5)
        for start in range(0, 200000, 5000):
            connection.set_many({'keystone.token.%d' % n: b'x' * 80
                                 for n in range(start, start + 5000)}, 0)
        for count in counts:
            prefix = 'bench%d:' % count
            pub = publisher.Publisher([server.address], 1.0)
            now = time.time()
            for n in range(count):
                image_id = str(uuid.uuid4())
                token = (prefix, image_id, None)
                record = records.ProgressRecord('uploading', n, 10 ** 9,
                                                None, now, now)
                values = records.key_values(
                    records.keys_for(image_id, None, prefix), record)
                pub.submit(token, values, 600, index=(120, 600))
            time.sleep(1.5)  # indexes written and registered
            settings = sources.Settings(
                [sources.Source((server.address,), prefix)], {})
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                snapshot = discovery.discover(settings)
                seconds.append(time.perf_counter() - started)
            assert len(snapshot.views) == count, len(snapshot.views)
            cli = []
            command = [os.path.join(os.path.dirname(sys.executable),
                                    'glance-progress'), 'list', '--servers',
                       server.address, '--prefix', prefix]
            for _ in range(cli_repeats):
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True)
                cli.append(time.perf_counter() - started)
                assert done.returncode == 0, done
            figures[count] = (seconds, cli)
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', default='256M')
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--repeats', type=int, default=200,
                        help='discover() calls per upload count')
    parser.add_argument('--cli-repeats', type=int, default=20,
                        help='glance-progress list runs per upload count')
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix='gps-bench-disc-') as workdir:
        with testbed.LocalStack(workdir, memstore_bytes=size * 2 +
                                2048 * MiB) as local:
            costs = upload_costs(local, size, args.runs)
    latency = list_latency((0, 10, 100), args.repeats, args.cli_repeats)

    missed = []
    print('\n| %s upload, add() | discovery off | discovery on | extra '
          'per upload |' % human(size))
    print('|---|---:|---:|---:|')
    rate = {d: statistics.median(r for r, _ in costs[d]) for d in costs}
    print('| MiB/s (median) | %.1f | %.1f | ratio %.3f |' % (
        rate[False], rate[True], rate[True] / rate[False]))
    for counter in COUNTERS + ('record_writes', 'index_writes'):
        off = statistics.median(c[counter] for _, c in costs[False])
        on = statistics.median(c[counter] for _, c in costs[True])
        where = ('memcached %s' % counter if counter in COUNTERS
                 else 'publisher %s' % counter)
        print('| %s | %g | %g | %+g |' % (where, off, on, on - off))
    # Exact, unlike memcached's counters (the publisher coalesces chunk
    # updates, so their number varies from run to run): the index
    # writes of each upload, its registration in the first run aside.
    worst = max(c['index_writes'] for _, c in costs[True][1:] or
                costs[True])
    if worst > TARGETS['extra_ops']:
        missed.append('%d index writes in an upload (target <= %d)'
                      % (worst, TARGETS['extra_ops']))
    if rate[True] / rate[False] < TARGETS['ratio']:
        missed.append('rate with discovery %.3f x without (target >= %.2f)'
                      % (rate[True] / rate[False], TARGETS['ratio']))
    print('\n| uploads in flight (200,000 foreign keys) | discover() p50 '
          '| p99 | `glance-progress list` p50 | p99 |')
    print('|---:|---:|---:|---:|---:|')
    for count, (seconds, cli) in latency.items():
        print('| %d | %.2f ms | %.2f ms | %.0f ms | %.0f ms |' % (
            count, percentile(seconds, 0.5) * 1000,
            percentile(seconds, 0.99) * 1000, percentile(cli, 0.5) * 1000,
            percentile(cli, 0.99) * 1000))
    return conclude(missed)


if __name__ == '__main__':
    sys.exit(main())
