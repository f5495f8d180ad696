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

"""What the progress endpoint costs: throughput and latency, side by side.

Two glance-api stacks on one Ceph and memcached, identical but for the
upload_progress filter in the pipeline, take turns uploading the same
file (the ratio: with the filter / without). Then, while one large upload
runs through the filter's stack, N pollers each call
``GET /v2/images/{id}/progress`` once a second, as portals do: their
latency (p50, p99), their errors, and the upload's rate against the same
upload with no pollers, measured in the same run::

    .venv/bin/python tools/bench_progress_api.py --size 4G --runs 3 \\
        --pollers 50

``--frozen`` measures instead what a frozen memcached (SIGSTOP) does to
a glance-api run with glance's own uWSGI settings (4 processes of one
thread): the image list's latency without pollers, then with N pollers
on the endpoint (each asks again 0.25 s after an answer), and how long
the progress answers took::

    .venv/bin/python tools/bench_progress_api.py --frozen --pollers 6
"""

import argparse
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # tests.e2e.helpers

import testbed  # noqa: E402
from testbed.figures import conclude  # noqa: E402
from testbed.figures import make_source  # noqa: E402
from testbed.figures import percentile  # noqa: E402
from testbed import procs  # noqa: E402
from testbed.sizes import human  # noqa: E402
from testbed.sizes import parse_size  # noqa: E402

MiB = 1024 * 1024
TARGETS = {'filter_ratio': 0.98, 'p99_s': 0.100, 'pollers_ratio': 0.9,
           'frozen_list_p90_ratio': 3}


class Upload:
    """One upload with python-glanceclient, in a process of its own.

    Not a thread: glanceclient's send loop holds the GIL for most of an
    upload, which would make the pollers' latencies the client's.
    """

    def __init__(self, api, source, size):
        self.api, self.source, self.size = api, source, size
        self.client = api.client()
        self.image_id = self.client.images.create(
            name='bench', disk_format='raw', container_format='bare')['id']
        context = multiprocessing.get_context('fork')
        self._go = context.Event()
        self._result, child_end = context.Pipe(duplex=False)
        self._process = context.Process(target=self._upload,
                                        args=(child_end,), daemon=True)
        self._process.start()  # forked now, before any poller thread

    def _upload(self, result):
        self._go.wait()
        try:
            client = self.api.client()
            with open(self.source, 'rb') as f:
                started = time.perf_counter()
                client.images.upload(self.image_id, f, image_size=self.size)
                seconds = time.perf_counter() - started
            status = client.images.get(self.image_id)['status']
            result.send(('ok', seconds) if status == 'active'
                        else ('error', 'upload ended %s' % status))
        except Exception as e:
            result.send(('error', str(e)))

    def start(self):
        self._go.set()

    def finish(self, keep=False):
        """The upload's MiB/s, once it ended; the image is deleted unless
        ``keep`` (then :meth:`remove` it)."""
        outcome, value = self._result.recv()
        self._process.join()
        if not keep:
            self.remove()
        if outcome != 'ok':
            raise RuntimeError('upload failed: %s' % value)
        return self.size / MiB / value

    def remove(self):
        self.client.images.delete(self.image_id)


class Poller(threading.Thread):
    """GET .../progress once a second until told to stop."""

    def __init__(self, api, image_id, stop, period=1.0):
        super().__init__(daemon=True)
        import requests
        self.session = requests.Session()
        self.url = '%s/v2/images/%s/progress' % (api.url, image_id)
        self.headers = api.headers()
        self.stop, self.period = stop, period
        self.latencies, self.errors = [], []

    def run(self):
        # Independent clients: each at its own phase within the second,
        # not all fifty at the same instant.
        next_at = time.monotonic() + random.uniform(0, self.period)
        self.stop.wait(max(0.0, next_at - time.monotonic()))
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                response = self.session.get(self.url, headers=self.headers,
                                            timeout=10)
                if response.status_code != 200:
                    self.errors.append(response.status_code)
            except Exception as e:
                self.errors.append(type(e).__name__)
            self.latencies.append(time.perf_counter() - started)
            next_at += self.period
            self.stop.wait(max(0.0, next_at - time.monotonic()))


def run(args):
    size = parse_size(args.size)
    rates, cpu = {}, {}
    polled = []
    with tempfile.TemporaryDirectory(prefix='gps-bench-api-',
                                     dir=args.workdir) as workdir:
        with testbed.LocalStack(
                workdir, memstore_bytes=size * 2 + 2048 * MiB) as local:
            stacks = {
                'without': local.add_glance('without', workers=args.workers),
                'with': local.add_glance('with', workers=args.workers,
                                         progress_filter=True),
            }
            source = os.path.join(workdir, 'source')
            make_source(source, size)
            for n in range(args.runs):
                # each round in the other order: no stack always goes first
                for name in sorted(stacks, reverse=n % 2 == 1):
                    upload = Upload(stacks[name], source, size)
                    glance_cpu = _glance_cpu(stacks[name])
                    upload.start()
                    rates.setdefault(name, []).append(upload.finish())
                    cpu.setdefault(name, []).append(
                        _glance_cpu(stacks[name]) - glance_cpu)
                    _say('filter %-7s run %d: %7.1f MiB/s'
                         % (name, n + 1, rates[name][-1]))
                # the same upload with pollers, in the same round
                upload = Upload(stacks['with'], source, size)
                stop = threading.Event()
                pollers = [Poller(stacks['with'], upload.image_id, stop)
                           for _ in range(args.pollers)]
                glance_cpu = _glance_cpu(stacks['with'])
                own_cpu = time.process_time()
                for poller in pollers:
                    poller.start()
                upload.start()
                rates.setdefault('pollers', []).append(
                    upload.finish(keep=True))
                stop.set()
                for poller in pollers:
                    poller.join()
                upload.remove()  # after the pollers: else they get 404s
                cpu.setdefault('pollers', []).append(
                    _glance_cpu(stacks['with']) - glance_cpu)
                cpu.setdefault('clients', []).append(
                    time.process_time() - own_cpu)
                polled += pollers
                _say('%d pollers      run %d: %7.1f MiB/s, %d requests'
                     % (args.pollers, n + 1, rates['pollers'][-1],
                        sum(len(p.latencies) for p in pollers)))
    return size, rates, cpu, polled


def run_frozen(args):
    """The image list and the endpoint with memcached frozen, on glance's
    own uWSGI settings (tests/e2e/test_glance_uwsgi.py's scenario)."""
    from tests.e2e.helpers import frozen_memcached_load
    with tempfile.TemporaryDirectory(prefix='gps-bench-frozen-',
                                     dir=args.workdir) as workdir:
        with testbed.LocalStack(workdir) as local:
            api = local.add_glance(
                'glance', uwsgi='glance', progress_filter=True,
                extra_conf={'upload_progress': {
                    'memcached_socket_timeout': args.socket_timeout}})
            client = api.client()
            image_id = client.images.create(
                name='bench', disk_format='raw',
                container_format='bare')['id']
            _say('glance-api with glance\'s uWSGI settings up; %d pollers '
                 'for %.0f s with memcached frozen ...'
                 % (args.pollers, args.seconds))
            return frozen_memcached_load(
                api, local.memcached, image_id, api.headers(),
                pollers=args.pollers, seconds=args.seconds)


def report_frozen(baseline, loaded, answers, args):
    def p(values, fraction):
        return percentile(values, fraction) if values else float('nan')
    seconds = [s for s, _, _ in answers]
    waited = [s for s in seconds if s >= args.socket_timeout]
    statuses = sorted({status for _, status, _ in answers})
    retry = sorted({r for _, _, r in answers if r})
    print('\n| GET /v2/images, glance\'s uWSGI settings | p50 s | p90 s '
          '| requests |')
    print('|---|---:|---:|---:|')
    print('| no pollers | %.3f | %.3f | %d |' % (
        p(baseline, 0.5), p(baseline, 0.9), len(baseline)))
    print('| %d pollers, memcached frozen | %.3f | %.3f | %d |' % (
        args.pollers, p(loaded, 0.5), p(loaded, 0.9), len(loaded)))
    print('\nprogress answers: %d in %.0f s, statuses %s, Retry-After %s; '
          'p50 %.3f s, p90 %.3f s, max %.3f s; %d waited >= the socket '
          'timeout (%.1f s)' % (
              len(answers), args.seconds, statuses, retry or 'none',
              p(seconds, 0.5), p(seconds, 0.9), max(seconds, default=0),
              len(waited), args.socket_timeout))
    missed = []
    ratio = p(loaded, 0.9) / p(baseline, 0.9)
    if ratio > TARGETS['frozen_list_p90_ratio']:
        missed.append('image list p90 with pollers %.1f x without (target '
                      '<= %.0f)' % (ratio, TARGETS['frozen_list_p90_ratio']))
    if len(waited) > len(answers) / 10:
        missed.append('%d of %d progress answers waited for the socket '
                      'timeout (target: the probes only)'
                      % (len(waited), len(answers)))
    return missed


def _glance_cpu(api):
    """CPU seconds used so far by a glance-api's uWSGI processes."""
    return sum(procs.cpu_seconds(pid)
               for pid in [api.pid] + api.worker_pids())


def report(size, rates, cpu, polled, pollers):
    median = {name: statistics.median(v) for name, v in rates.items()}
    cpu = {name: statistics.median(v) for name, v in cpu.items()}
    latencies = [s for p in polled for s in p.latencies]
    errors = [e for p in polled for e in p.errors]
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    filter_ratio = median['with'] / median['without']
    pollers_ratio = median['pollers'] / median['with']
    print('\n| %s upload through glance-api | MiB/s (median) | ratio |'
          % human(size))
    print('|---|---:|---:|')
    print('| without the filter | %.1f | 1.00 |' % median['without'])
    print('| with the filter | %.1f | %.3f |' % (median['with'],
                                                 filter_ratio))
    print('| with the filter, %d pollers at 1/s | %.1f | %.3f (vs with) |'
          % (pollers, median['pollers'], pollers_ratio))
    print('\nprogress requests: %d, errors: %d, latency p50 %.1f ms, '
          'p99 %.1f ms, max %.1f ms' % (
              len(latencies), len(errors), p50 * 1000, p99 * 1000,
              max(latencies) * 1000))
    per_round = len(latencies) / len(rates['pollers'])
    print('glance-api CPU per upload (median): %.1f s without the filter, '
          '%.1f s with, %.1f s with the pollers: %.2f ms per progress '
          'request; the pollers\' own client CPU %.2f ms per request'
          % (cpu['without'], cpu['with'], cpu['pollers'],
             (cpu['pollers'] - cpu['with']) / per_round * 1000,
             cpu['clients'] / per_round * 1000))
    missed = []
    if filter_ratio < TARGETS['filter_ratio']:
        missed.append('throughput with the filter %.3f x without (target '
                      '>= %.2f)' % (filter_ratio, TARGETS['filter_ratio']))
    if p99 > TARGETS['p99_s']:
        missed.append('progress p99 %.1f ms (target < %.0f ms)'
                      % (p99 * 1000, TARGETS['p99_s'] * 1000))
    if errors:
        missed.append('%d progress requests failed: %s'
                      % (len(errors), sorted(set(map(str, errors)))))
    if pollers_ratio < TARGETS['pollers_ratio']:
        missed.append('throughput with pollers %.3f x without (target '
                      '>= %.1f)' % (pollers_ratio, TARGETS['pollers_ratio']))
    return missed


def _say(text):
    print(text, file=sys.stderr, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', default='4G',
                        help='upload size (default 4G)')
    parser.add_argument('--runs', type=int, default=3,
                        help='rounds; medians are reported (default 3)')
    parser.add_argument('--pollers', type=int, default=50,
                        help='concurrent pollers, one request a second each')
    parser.add_argument('--workers', type=int, default=4,
                        help='uWSGI processes of each glance-api (default 4)')
    parser.add_argument('--workdir', default=None,
                        help='where the cluster and the source file live')
    parser.add_argument('--frozen', action='store_true',
                        help='instead: the image list and the endpoint '
                        'with memcached frozen, on glance\'s own uWSGI '
                        'settings (use --pollers 6)')
    parser.add_argument('--seconds', type=float, default=20.0,
                        help='--frozen: how long the pollers run')
    parser.add_argument('--socket-timeout', type=float, default=1.0,
                        help='--frozen: [upload_progress] '
                        'memcached_socket_timeout (default 1, as shipped)')
    args = parser.parse_args(argv)
    if args.frozen:
        print('machine: %d cores; memcached frozen, %d pollers, %.0f s'
              % (os.cpu_count(), args.pollers, args.seconds),
              file=sys.stderr)
        return conclude(report_frozen(*run_frozen(args), args))
    print('machine: %d cores; %s, %d runs, %d pollers, %d glance-api '
          'workers' % (os.cpu_count(), args.size, args.runs, args.pollers,
                       args.workers), file=sys.stderr)
    return conclude(report(*run(args), args.pollers))


if __name__ == '__main__':
    sys.exit(main())
