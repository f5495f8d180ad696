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

"""Side-by-side upload benchmark on the local test bed.

Compares, on one cluster in one run and with the same source file:

* the stock glance_store ``rbd`` driver's ``add()``,
* ``progress_rbd``'s ``add()`` with progress publishing on and off,
* ``rbd import`` of the file (librbd's own tool; computes no digests),

for known and unknown sizes. Every upload runs in a fresh process so its
peak RSS can be measured; the figure is the median of N runs. Prints one
table and exits non-zero if a target is missed::

    .venv/bin/python tools/bench.py --sizes 512M,4G --runs 3
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import testbed  # noqa: E402
import testbed.figures as figures  # noqa: E402
from testbed.figures import conclude  # noqa: E402
from testbed.figures import make_source  # noqa: E402
from testbed import latency  # noqa: E402
from testbed import procs  # noqa: E402
from testbed.sizes import human  # noqa: E402
from testbed.sizes import parse_size  # noqa: E402

MiB = 1024 * 1024
POOL = 'bench'
CHUNK_MIB = 8  # glance_store's default rbd_store_chunk_size

TARGETS = {
    'vs_stock': 2.0,        # progress_rbd add() >= 2.0 x stock add()
    'vs_import': 0.5,       # progress_rbd add() >= 0.5 x rbd import
    'progress_cost': 0.02,  # progress on costs at most 2 % vs off
    'rss_growth': 0.10,     # peak RSS, largest vs smallest size
}


# -- one upload, in its own process -----------------------------------------

def _rss_mib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _time_the_pipeline():
    """Where progress_rbd's upload thread spends its time: a profile.

    Wraps the pipeline's steps (in this child process only) and returns
    the dict of seconds they add up to: the whole write() (the data, from
    the first read to the last write acknowledged), the waits for the
    hashing threads and for Ceph's acknowledgements, and the reads.
    """
    from glance_progress_store.upload import pipeline

    spent = dict.fromkeys(('data', 'hashing_wait', 'ceph_wait', 'read'), 0.0)

    def timed(name, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started
        return wrapper

    def timed_reads(function):
        def wrapper(*args, **kwargs):
            chunks = function(*args, **kwargs)
            while True:
                started = time.perf_counter()
                chunk = next(chunks, None)
                spent['read'] += time.perf_counter() - started
                if chunk is None:
                    return
                yield chunk
        return wrapper

    writer = pipeline.ImageWriter
    writer.write = timed('data', writer.write)
    writer._reap_oldest = timed('ceph_wait', writer._reap_oldest)
    writer._read_chunks = timed_reads(writer._read_chunks)
    pipeline._Lane.wait = timed('hashing_wait', pipeline._Lane.wait)
    return spent


def run_one(args):
    """Child process: one add() through glance_store, JSON on stdout."""
    from oslo_config import cfg

    import glance_store

    profile = (_time_the_pipeline() if args.driver == 'progress_rbd'
               else None)

    conf = cfg.ConfigOpts()
    conf([], project='glance-progress-bench', default_config_files=[])
    glance_store.register_opts(conf)
    options = {
        'stores': [args.driver], 'default_store': 'rbd',
        'rbd_store_ceph_conf': args.ceph_conf, 'rbd_store_pool': POOL,
        'rbd_store_user': 'admin', 'rbd_store_chunk_size': CHUNK_MIB,
    }
    if args.driver == 'progress_rbd':
        options.update(progress_memcached_servers=[args.memcached],
                       progress_enabled=args.progress == 'on')
        if args.in_flight:
            options['progress_rbd_writes_in_flight'] = args.in_flight
    for name, value in options.items():
        conf.set_override(name, value, group='glance_store')
    glance_store.create_stores(conf)
    store = glance_store.get_store_from_scheme('rbd')
    size = os.path.getsize(args.file)
    baseline = _rss_mib()
    with open(args.file, 'rb', buffering=0) as source:
        cpu_before = _cpu_seconds(resource.RUSAGE_SELF)
        started = time.perf_counter()
        result = store.add(args.image_id, source,
                           size if args.known else 0, 'sha512')
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(resource.RUSAGE_SELF) - cpu_before
    sets = None
    # with progress off there is no publisher (and no servers) to ask
    if args.driver == 'progress_rbd' and args.progress == 'on':
        from glance_progress_store.upload import publisher
        config = store.progress_config
        pub = publisher.get_publisher(config.servers,
                                      config.socket_timeout)
        sets = pub.stats.updates_sent
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    json.dump({'seconds': elapsed, 'bytes': result[1], 'cpu': cpu,
               'checksum': result[2], 'baseline_rss_mib': baseline,
               'peak_rss_mib': peak, 'memcached_sets': sets,
               'profile': profile}, sys.stdout)


def _cpu_seconds(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# -- the benchmark -----------------------------------------------------------

def measure_add(args, ceph, memcached, source, driver, known, progress,
                conf=None, in_flight=None):
    image_id = str(uuid.uuid4())
    cmd = [sys.executable, os.path.abspath(__file__), '_one',
           '--driver', driver, '--file', source, '--image-id', image_id,
           '--ceph-conf', conf or ceph.conf_path,
           '--memcached', memcached.address, '--progress', progress]
    if known:
        cmd.append('--known')
    in_flight = in_flight or args.in_flight
    if in_flight:
        cmd += ['--in-flight', str(in_flight)]
    osd_before = procs.cpu_seconds(ceph.osd_pid)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=3600)
        if done.returncode:
            raise RuntimeError('%s %s upload failed (rc=%d):\n%s' % (
                driver, progress, done.returncode, done.stderr[-4000:]))
        out = done.stdout
        osd = procs.cpu_seconds(ceph.osd_pid) - osd_before
    finally:
        remove_image(ceph, image_id)
    return dict(json.loads(out), osd_cpu=osd)


def measure_import(ceph, source, conf=None):
    image_id = str(uuid.uuid4())
    osd_before = procs.cpu_seconds(ceph.osd_pid)
    cpu_before = _cpu_seconds(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    ceph.rbd('import', '--image-format', '2', '--object-size',
             '%dM' % CHUNK_MIB, source, '%s/%s' % (POOL, image_id),
             timeout=3600, conf=conf)
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_before
    osd = procs.cpu_seconds(ceph.osd_pid) - osd_before
    remove_image(ceph, image_id)
    return {'seconds': elapsed, 'cpu': cpu, 'osd_cpu': osd}


def measure_hashing(source):
    """CPU cost of md5 + sha512, the work rbd import does not do."""
    import hashlib
    costs = {}
    for name in ('md5', 'sha512'):
        digest = hashlib.new(name)
        with open(source, 'rb', buffering=0) as f:
            started = time.perf_counter()
            for block in iter(lambda: f.read(CHUNK_MIB * MiB), b''):
                digest.update(block)
            costs[name] = time.perf_counter() - started
    return costs


def remove_image(ceph, image_id):
    if image_id in ceph.images(POOL):
        ceph.rbd('snap', 'unprotect', '%s/%s@snap' % (POOL, image_id),
                 check=False)
        ceph.rbd('snap', 'purge', '%s/%s' % (POOL, image_id), check=False)
        ceph.rbd('rm', '%s/%s' % (POOL, image_id), check=False)


CASES = (
    # label, driver, known size, progress
    ('stock rbd add()', 'rbd', True, 'off'),
    ('progress_rbd add(), progress on', 'progress_rbd', True, 'on'),
    ('progress_rbd add(), progress off', 'progress_rbd', True, 'off'),
    ('stock rbd add(), unknown size', 'rbd', False, 'off'),
    ('progress_rbd add(), unknown size, on', 'progress_rbd', False, 'on'),
    ('progress_rbd add(), unknown size, off', 'progress_rbd', False, 'off'),
    ('rbd import (no digests)', 'import', True, 'off'),
)


def run_bench(args):
    sizes = [parse_size(s) for s in args.sizes.split(',')]
    rows = {}
    with tempfile.TemporaryDirectory(prefix='gps-bench-',
                                     dir=args.workdir) as workdir:
        with testbed.LocalStack(
                workdir, pools=(POOL,),
                memstore_bytes=max(sizes) * 2 + 2 * 1024 * MiB) as local:
            ceph, memcached = local.ceph, local.memcached
            for size in sizes:
                source = os.path.join(workdir, 'source-%d' % size)
                make_source(source, size)
                # Interleave the cases run by run, so that a noisy moment
                # on a shared machine hits all of them alike.
                samples = {label: [] for label, *_ in CASES}
                for run in range(args.runs):
                    for label, driver, known, progress in CASES:
                        if driver == 'import':
                            result = measure_import(ceph, source)
                        else:
                            result = measure_add(args, ceph, memcached,
                                                 source, driver, known,
                                                 progress)
                        samples[label].append(result)
                        print('  %-40s %-8s run %d: %7.1f MiB/s' % (
                            label, human(size), run + 1,
                            size / MiB / result['seconds']),
                            file=sys.stderr)
                samples['hashing'] = [measure_hashing(source)]
                os.unlink(source)
                rows[size] = samples
    return sizes, rows


def summarize(sizes, rows):
    """Print the table; return the list of missed targets."""
    missed = []
    print()
    print('| size | case | MiB/s (median) | x stock | x rbd import '
          '| peak RSS MiB (over baseline) | memcached sets |')
    print('|---|---|---:|---:|---:|---:|---:|')
    medians = {}
    for size in sizes:
        for label, *_ in CASES:
            medians[size, label] = statistics.median(
                size / MiB / s['seconds'] for s in rows[size][label])
        for label, driver, known, progress in CASES:
            samples = rows[size][label]
            mibs = medians[size, label]
            stock_label = ('stock rbd add()' if known
                           else 'stock rbd add(), unknown size')
            vs_stock = mibs / medians[size, stock_label]
            vs_import = mibs / medians[size, 'rbd import (no digests)']
            if 'peak_rss_mib' in samples[0]:
                peak = max(s['peak_rss_mib'] for s in samples)
                over = max(s['peak_rss_mib'] - s['baseline_rss_mib']
                           for s in samples)
                rss = '%.0f (+%.0f)' % (peak, over)
            else:
                rss = '-'
            sets = samples[0].get('memcached_sets')
            print('| %s | %s | %.1f | %.2f | %.2f | %s | %s |' % (
                human(size), label, mibs, vs_stock, vs_import, rss,
                '-' if sets is None else sets))
            if driver == 'progress_rbd' and progress == 'on':
                if vs_stock < TARGETS['vs_stock']:
                    missed.append('%s %s: %.2fx stock < %.1fx' % (
                        human(size), label, vs_stock, TARGETS['vs_stock']))
                if vs_import < TARGETS['vs_import']:
                    missed.append('%s %s: %.2fx rbd import < %.1fx' % (
                        human(size), label, vs_import,
                        TARGETS['vs_import']))
                chunks = -(-size // (CHUNK_MIB * MiB))
                if sets is not None and sets > chunks + 3:
                    missed.append('%s %s: %d memcached sets for %d chunks'
                                  % (human(size), label, sets, chunks))
        print_cpu_limit(size, rows[size], medians)
        for on, off in (('progress_rbd add(), progress on',
                         'progress_rbd add(), progress off'),
                        ('progress_rbd add(), unknown size, on',
                         'progress_rbd add(), unknown size, off')):
            cost = 1 - medians[size, on] / medians[size, off]
            print('\nprogress publishing cost, %s, %s: %+.1f %%' % (
                human(size), on, 100 * cost))
            if cost > TARGETS['progress_cost']:
                missed.append('%s %s: progress costs %.1f %% > %.0f %%' % (
                    human(size), on, 100 * cost,
                    100 * TARGETS['progress_cost']))
    if len(sizes) > 1:
        label = 'progress_rbd add(), progress on'
        small, large = min(sizes), max(sizes)
        peak_small = max(s['peak_rss_mib'] for s in rows[small][label])
        peak_large = max(s['peak_rss_mib'] for s in rows[large][label])
        growth = peak_large / peak_small - 1
        print('peak RSS %s vs %s: %+.1f %%' % (
            human(large), human(small), 100 * growth))
        if growth > TARGETS['rss_growth']:
            missed.append('peak RSS grows %.1f %% from %s to %s' % (
                100 * growth, human(small), human(large)))
    return missed


def print_cpu_limit(size, samples, medians):
    """Where the physical limit is: the CPU that hashing plus I/O needs.

    rbd import's CPU per MiB (client and OSD) is what storing the bytes
    costs; md5 and sha512 add theirs. With every core busy the upload
    cannot go faster than the cores divided by the sum.
    """
    mib = size / MiB
    per_mib = {}
    for label, *_ in CASES:
        runs = samples[label]
        per_mib[label] = statistics.median(
            1000 * (s['cpu'] + s['osd_cpu']) / mib for s in runs)
    hashing = sum(samples['hashing'][0].values()) * 1000 / mib
    storing = per_mib['rbd import (no digests)']
    limit = os.cpu_count() * 1000 / (hashing + storing)
    print('\nCPU ms per MiB (client + OSD), %s: %s' % (human(size), ', '.join(
        '%s %.2f' % (label, cost) for label, cost in per_mib.items())))
    print('estimated CPU limit with digests, %s: %.0f MiB/s (hashing %.2f '
          '+ storing %.2f ms/MiB on %d cores); progress_rbd reached %.0f %%'
          % (human(size), limit, hashing, storing, os.cpu_count(),
             100 * medians[size, 'progress_rbd add(), progress on'] / limit))


# -- against write latency (testbed.latency) --------------------------------

LATENCY_TARGETS = {
    # mean added latency in ms: progress_rbd (default writes in flight)
    # at least this many times the stock driver's add()
    0: 1.7, 5: 2.2, 20: 4.0,
}
LATENCY_VS_IMPORT = (20, 0.8)  # at 20 ms, >= 0.8 x rbd import


def latency_cases(in_flight_list):
    """(label, driver, known size, writes in flight) of one latency."""
    cases = [('stock add()', 'rbd', True, None),
             ('stock add(), unknown size', 'rbd', False, None)]
    cases += [('progress_rbd, %d in flight' % n, 'progress_rbd', True, n)
              for n in in_flight_list]
    cases += [('progress_rbd (default), unknown size', 'progress_rbd',
               False, None),
              ('progress_rbd (default)', 'progress_rbd', True, None),
              (NO_CACHE, 'progress_rbd', True, None),
              ('rbd import of the file', 'import', True, None)]
    return cases


# The same upload with librbd's cache off (rbd_cache = false in the
# client's configuration): is the cache what limits the writes in flight?
NO_CACHE = 'progress_rbd (default), rbd cache off'


def run_latency_bench(args):
    """Every case at every latency, the cases and latencies taking turns."""
    size = parse_size(args.sizes.split(',')[0])
    latencies = [float(ms) for ms in args.latency.split(',')]
    cases = latency_cases([int(n) for n in args.in_flight_list.split(',')])
    samples = {}
    models = {}
    with tempfile.TemporaryDirectory(prefix='gps-bench-latency-',
                                     dir=args.workdir) as workdir:
        with testbed.LocalStack(
                workdir, pools=(POOL,),
                memstore_bytes=4 * size + 2 * 1024 * MiB) as local:
            ceph, memcached = local.ceph, local.memcached
            confs = {ms: latency.client_conf(ceph, workdir, ms)
                     for ms in latencies}
            no_cache = {ms: latency.client_conf(ceph, workdir, ms,
                                                rbd_cache='false')
                        for ms in latencies}
            for ms in latencies:
                models[ms] = latency.probe(confs[ms], POOL, CHUNK_MIB)
                print('  model, %g ms: one write %.1f ms; %s' % (
                    ms, models[ms]['write_ms'], ', '.join(
                        '%d in flight %.0f MiB/s' % item
                        for item in models[ms]['mibs'].items())),
                      file=sys.stderr)
            source = os.path.join(workdir, 'source')
            make_source(source, size)
            for run in range(args.runs):
                for ms in latencies:
                    for label, driver, known, in_flight in cases:
                        if driver == 'import':
                            result = measure_import(ceph, source, confs[ms])
                        else:
                            result = measure_add(
                                args, ceph, memcached, source, driver,
                                known, 'on', in_flight=in_flight,
                                conf=(no_cache if label == NO_CACHE
                                      else confs)[ms])
                        samples.setdefault((ms, label), []).append(result)
                        print('  %5g ms  %-40s run %d: %7.1f MiB/s' % (
                            ms, label, run + 1,
                            size / MiB / result['seconds']),
                            file=sys.stderr)
    return size, latencies, cases, samples, models


def summarize_latency(size, latencies, cases, samples, models, plot=None):
    """Print the model check and the table; return the missed targets."""
    print('\nThe latency model (librbd alone, %d MiB writes, no hashing):'
          % CHUNK_MIB)
    print('\n| mean added latency | one write (object exists) | first write '
          'of an object | added delays per write (exists, first) | fixed '
          'cost of an upload | MiB/s at N in flight (new objects) |')
    print('|---:|---:|---:|---:|---:|---|')
    base = models[latencies[0]] if latencies[0] == 0 else None
    for ms in latencies:
        model = models[ms]
        rounds = '-'
        if base is not None and ms:
            rounds = '%.2f, %.2f' % (
                (model['write_ms'] - base['write_ms']) / ms,
                (model['first_write_ms'] - base['first_write_ms']) / ms)
        print('| %g ms | %.1f ms | %.1f ms | %s | %.0f ms | %s |' % (
            ms, model['write_ms'], model['first_write_ms'], rounds,
            model['fixed_ms'], ', '.join(
                '%d: %.0f' % item for item in model['mibs'].items())))
    mibs = {key: statistics.median(size / MiB / s['seconds'] for s in runs)
            for key, runs in samples.items()}
    cpu = {key: statistics.median(
        1000 * (s['cpu'] + s['osd_cpu']) / (size / MiB) for s in runs)
        for key, runs in samples.items()}
    print('\nUploads of %s (MiB/s, median of %d; CPU ms per MiB, client '
          '+ OSD, in brackets):\n' % (human(size), len(next(iter(
              samples.values())))))
    labels = [label for label, *_ in cases]
    print('| case | ' + ' | '.join('%g ms' % ms for ms in latencies) + ' |')
    print('|---|' + '---:|' * len(latencies))
    for label in labels:
        print('| %s | %s |' % (label, ' | '.join(
            '%.0f (%.1f)' % (mibs[ms, label], cpu[ms, label])
            for ms in latencies)))
    for name, stock in (('x stock add()', 'stock add()'),
                        ('x rbd import', 'rbd import of the file')):
        print('| progress_rbd (default), %s | %s |' % (name, ' | '.join(
            '%.2f' % (mibs[ms, 'progress_rbd (default)'] / mibs[ms, stock])
            for ms in latencies)))
    print('| unknown size, x stock unknown size | %s |' % ' | '.join(
        '%.2f' % (mibs[ms, 'progress_rbd (default), unknown size'] /
                  mibs[ms, 'stock add(), unknown size'])
        for ms in latencies))
    print('\nThe data alone (MiB/s: the upload less the fixed cost above):'
          '\n')
    print('| case | ' + ' | '.join('%g ms' % ms for ms in latencies) + ' |')
    print('|---|' + '---:|' * len(latencies))
    for label in ('stock add()', 'progress_rbd (default)'):
        print('| %s | %s |' % (label, ' | '.join(
            '%.0f' % (size / MiB / max(
                size / MiB / mibs[ms, label] - models[ms]['fixed_ms'] / 1000,
                1e-3)) for ms in latencies)))
    print('\nWhere progress_rbd (default) spends an upload (seconds, '
          'median):\n')
    print('| mean added latency | whole add() | fixed: create, open, '
          'snapshot, close | data | of which waiting for the hashing | '
          'waiting for Ceph | reading | peak RSS over the baseline, MiB '
          '(stock) |')
    print('|---:|---:|---:|---:|---:|---:|---:|---:|')
    for ms in latencies:
        runs = samples[ms, 'progress_rbd (default)']
        whole = statistics.median(s['seconds'] for s in runs)
        part = {name: statistics.median(s['profile'][name] for s in runs)
                for name in runs[0]['profile']}
        over = {label: max(s['peak_rss_mib'] - s['baseline_rss_mib']
                           for s in samples[ms, label])
                for label in ('progress_rbd (default)', 'stock add()')}
        print('| %g ms | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f '
              '(%.0f) |' % (
                  ms, whole, whole - part['data'], part['data'],
                  part['hashing_wait'], part['ceph_wait'], part['read'],
                  over['progress_rbd (default)'], over['stock add()']))
    missed = []
    for ms, target in LATENCY_TARGETS.items():
        if ms not in latencies:
            continue
        ratio = mibs[ms, 'progress_rbd (default)'] / mibs[ms, 'stock add()']
        if ratio < target:
            missed.append('%g ms: progress_rbd %.2f x stock < %.1f x' % (
                ms, ratio, target))
    ms, target = LATENCY_VS_IMPORT
    if ms in latencies:
        ratio = (mibs[ms, 'progress_rbd (default)'] /
                 mibs[ms, 'rbd import of the file'])
        if ratio < target:
            missed.append('%g ms: progress_rbd %.2f x rbd import < %.1f x'
                          % (ms, ratio, target))
    for ms in latencies:
        if cpu[ms, 'progress_rbd (default)'] > 1.05 * cpu[ms, 'stock add()']:
            missed.append('%g ms: CPU per MiB %.2f ms > stock %.2f ms' % (
                ms, cpu[ms, 'progress_rbd (default)'],
                cpu[ms, 'stock add()']))
    if plot:
        figures.plot_lines(
            plot, latencies, {label: [mibs[ms, label] for ms in latencies]
                              for label in labels},
            xlabel='mean added write latency (ms)',
            ylabel='MiB/s',
            title='Upload of %s into one memstore OSD, 2 cores' % human(size))
        print('\nplot: %s' % plot)
    return missed


# -- many uploads at once through one glance-api process --------------------

def run_concurrency_bench(args):
    """N uploads at once into one glance-api process (uWSGI threads):
    aggregate MiB/s and the worker's peak RSS, stock vs progress_rbd."""
    size = parse_size(args.sizes.split(',')[0])
    counts = [int(n) for n in args.concurrency.split(',')]
    ms = float(args.latency.split(',')[0]) if args.latency else 0
    results = {}
    with tempfile.TemporaryDirectory(prefix='gps-bench-many-',
                                     dir=args.workdir) as workdir:
        # glance's own database takes concurrent writers as production's
        # do (sqlite refuses them: "database is locked"); each stack has
        # its own.
        with testbed.LocalStack(
                workdir, memstore_bytes=(2 * max(counts) * size +
                                         2 * 1024 * MiB)) as local, \
                testbed.PostgreSQL(os.path.join(workdir, 'pg-rbd')) as pg1, \
                testbed.PostgreSQL(os.path.join(workdir, 'pg-ours')) as pg2:
            conf = latency.client_conf(local.ceph, workdir, ms)
            stacks = {driver: local.add_glance(
                driver, driver=driver, workers=1, threads=max(counts),
                database=database,
                extra_conf={'glance_store': {'rbd_store_ceph_conf': conf}})
                for driver, database in (('rbd', pg1),
                                         ('progress_rbd', pg2))}
            source = os.path.join(workdir, 'source')
            make_source(source, size)
            # One upload each first: a worker's first request imports and
            # connects what the others reuse.
            for api in stacks.values():
                _glance_upload(api, source, size)
            for run in range(args.runs):
                for count in counts:
                    for driver, api in stacks.items():
                        result = _many_uploads(api, source, size, count)
                        results.setdefault((count, driver), []).append(
                            result)
                        print('  %2d at once, %-13s run %d: %7.1f MiB/s, '
                              'peak RSS %.0f MiB' % (
                                  count, driver, run + 1, result['mibs'],
                                  result['peak_rss_mib']), file=sys.stderr)
    print('\n%s uploads at once into one glance-api process (%g ms added '
          'latency):\n' % (human(size), ms))
    print('| uploads at once | stock MiB/s | progress_rbd MiB/s | x stock '
          '| stock peak RSS MiB | progress_rbd peak RSS MiB | '
          'slowest / fastest upload |')
    print('|---:|---:|---:|---:|---:|---:|---:|')
    missed = []
    budget_mib = _default('progress_rbd_process_in_flight_mib')
    for count in counts:
        row = {driver: results[count, driver] for driver in stacks}
        stock = statistics.median(r['mibs'] for r in row['rbd'])
        ours = statistics.median(r['mibs'] for r in row['progress_rbd'])
        peaks = {d: max(r['peak_rss_mib'] for r in row[d]) for d in row}
        spread = max(r['spread'] for r in row['progress_rbd'])
        print('| %d | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f |' % (
            count, stock, ours, ours / stock, peaks['rbd'],
            peaks['progress_rbd'], spread))
        if ours < stock:
            missed.append('%d uploads at once: %.0f MiB/s < stock %.0f' % (
                count, ours, stock))
        # The budget (twice: Python's and librbd's buffers) and a chunk
        # per upload (the one being read while one is in flight) on top
        # of what the stock driver's process holds for the same uploads.
        if peaks['progress_rbd'] > peaks['rbd'] + 2 * budget_mib + (
                CHUNK_MIB * count):
            missed.append('%d uploads at once: peak RSS %.0f MiB over the '
                          'budget' % (count, peaks['progress_rbd']))
    return missed


def _default(option):
    from glance_progress_store import options
    return next(opt.default for opt in options.OPTIONS if opt.name == option)


def _many_uploads(api, source, size, count):
    """``count`` uploads at once; the images are created before and
    deleted after, untimed (at 20 ms a deletion alone takes seconds)."""
    import concurrent.futures
    worker, = api.worker_pids()
    client = api.client()
    ids = [_new_image(client) for _ in range(count)]
    try:
        procs.reset_peak_rss(worker)
        with concurrent.futures.ThreadPoolExecutor(count) as pool:
            spans = list(pool.map(
                lambda image_id: _upload_into(api, image_id, source, size),
                ids))
        peak = procs.peak_rss_mib(worker)
    finally:
        for image_id in ids:
            client.images.delete(image_id)
    seconds = [ended - started for started, ended in spans]
    elapsed = max(e for _, e in spans) - min(s for s, _ in spans)
    return {'mibs': count * size / MiB / elapsed, 'peak_rss_mib': peak,
            'spread': max(seconds) / min(seconds)}


def run_glance_bench(args):
    """Uploads through real glance-api stacks, stock rbd vs progress_rbd.

    Both stacks run side by side on one cluster (one uWSGI worker each) and
    take turns uploading the same file with python-glanceclient.
    """
    sizes = [parse_size(s) for s in args.sizes.split(',')]
    results = {}
    with tempfile.TemporaryDirectory(prefix='gps-bench-glance-',
                                     dir=args.workdir) as workdir:
        with testbed.LocalStack(
                workdir,
                memstore_bytes=max(sizes) * 2 + 2 * 1024 * MiB) as local:
            ms = float(args.latency.split(',')[0]) if args.latency else 0
            conf = latency.client_conf(local.ceph, workdir, ms)
            stacks = {driver: local.add_glance(
                driver, driver=driver, workers=1,
                extra_conf={'glance_store': {'rbd_store_ceph_conf': conf}})
                for driver in ('rbd', 'progress_rbd')}
            for size in sizes:
                source = os.path.join(workdir, 'source')
                make_source(source, size)
                for run in range(args.runs):
                    for driver, api in stacks.items():
                        seconds = _glance_upload(api, source, size)
                        results.setdefault((size, driver), []).append(
                            size / MiB / seconds)
                        print('  glance-api + %-13s %-8s run %d: %7.1f '
                              'MiB/s' % (driver, human(size), run + 1,
                                         results[size, driver][-1]),
                              file=sys.stderr)
                os.unlink(source)
    missed = []
    print('\n| size | through glance-api | MiB/s (median) | x stock |')
    print('|---|---|---:|---:|')
    for size in sizes:
        stock = statistics.median(results[size, 'rbd'])
        for driver in ('rbd', 'progress_rbd'):
            mibs = statistics.median(results[size, driver])
            print('| %s | %s | %.1f | %.2f |' % (
                human(size), driver, mibs, mibs / stock))
        if statistics.median(results[size, 'progress_rbd']) < stock:
            missed.append('%s through glance-api: progress_rbd slower than '
                          'stock rbd' % human(size))
    return missed


def _glance_upload(api, source, size):
    """Seconds of one upload of ``source`` into a new image."""
    client = api.client()
    image_id = _new_image(client)
    try:
        started, ended = _upload_into(api, image_id, source, size)
        return ended - started
    finally:
        client.images.delete(image_id)


def _new_image(client):
    return client.images.create(name='bench', disk_format='raw',
                                container_format='bare')['id']


def _upload_into(api, image_id, source, size):
    """(start, end) of the upload, as python-glanceclient sends it."""
    client = api.client()
    with open(source, 'rb') as f:
        started = time.perf_counter()
        client.images.upload(image_id, f, image_size=size)
        ended = time.perf_counter()
    if client.images.get(image_id)['status'] != 'active':
        raise RuntimeError('upload through %s failed' % api.driver)
    return started, ended


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command')
    one = sub.add_parser('_one', help=argparse.SUPPRESS)
    one.add_argument('--driver', required=True)
    one.add_argument('--file', required=True)
    one.add_argument('--image-id', required=True)
    one.add_argument('--ceph-conf', required=True)
    one.add_argument('--memcached', required=True)
    one.add_argument('--progress', choices=('on', 'off'), default='on')
    one.add_argument('--known', action='store_true')
    one.add_argument('--in-flight', type=int)
    parser.add_argument('--sizes', default='512M,4G',
                        help='comma separated sizes (default 512M,4G)')
    parser.add_argument('--runs', type=int, default=3,
                        help='runs per case; the median is reported')
    parser.add_argument('--in-flight', type=int,
                        help='progress_rbd_writes_in_flight (default: the '
                             "option's default)")
    parser.add_argument('--workdir', default=None,
                        help='where the cluster and the source file live')
    parser.add_argument('--glance', action='store_true',
                        help='upload through real glance-api stacks (stock '
                             'rbd vs progress_rbd) instead of calling add()')
    parser.add_argument('--latency',
                        help='comma separated mean added write latencies in '
                             'ms (testbed.latency): every case at each; '
                             'with --glance or --concurrency, the latency '
                             'of the glance-apis (the first one)')
    parser.add_argument('--in-flight-list', default='1,2,4,8,16',
                        help='with --latency: the progress_rbd_writes_in_'
                             'flight values compared (default 1,2,4,8,16)')
    parser.add_argument('--plot',
                        help='with --latency: write a PNG of MiB/s against '
                             'latency, one line per case, there')
    parser.add_argument('--concurrency',
                        help='comma separated numbers of uploads at once '
                             'into one glance-api process (uWSGI threads), '
                             'stock vs progress_rbd: aggregate MiB/s and '
                             'peak RSS')
    args = parser.parse_args(argv)
    if args.command == '_one':
        return run_one(args)
    print('machine: %d cores, %s; %s' % (
        os.cpu_count(), _meminfo(), ' '.join(os.uname()[2:3])),
        file=sys.stderr)
    if args.concurrency:
        missed = run_concurrency_bench(args)
    elif args.glance:
        missed = run_glance_bench(args)
    elif args.latency:
        missed = summarize_latency(*run_latency_bench(args), plot=args.plot)
    else:
        missed = summarize(*run_bench(args))
    return conclude(missed)


def _meminfo():
    with open('/proc/meminfo') as f:
        total = int(f.readline().split()[1]) // 1024 // 1024
    return '%d GiB RAM' % total


if __name__ == '__main__':
    sys.exit(main())
