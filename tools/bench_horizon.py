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

"""What the Horizon plugin costs: one Images page with 20 uploads in flight.

Boots Ceph, memcached, Keystone, glance-api (keystone flavor, with the
progress filter) and Horizon 27 with the plugin (tools/testbed), starts
20 uploads in alice's project that the benchmark paces at 1 MiB/s each
(so they stay in flight whatever the machine), then opens Project ->
Compute -> Images in one headless Chromium page as alice and measures,
over ``--seconds``, from the page's own DevTools events:

- the plugin's requests per second (target <= 10: a row polls
  Horizon's ajax_poll_interval, 2.5 s by default, after its previous
  answer);
- the REST view's latency as the browser sees it, p50 and p99;
- glance-api's CPU per poll: its CPU with the page open minus its CPU in
  a window as long without the page (the uploads run in both), divided
  by the polls (the page's own 2.5 s re-list of the table is in it);
- Horizon's CPU per poll (the same way; all of the page's requests).

    .venv/bin/python tools/bench_horizon.py --seconds 30
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]

import testbed  # noqa: E402
from testbed.figures import conclude  # noqa: E402
from testbed.figures import percentile  # noqa: E402
from testbed import procs  # noqa: E402
from tests.e2e import test_horizon as ui  # noqa: E402

MiB = 1024 * 1024
TARGETS = {'requests_per_s': 10.0, 'p99_s': 0.5}


def _say(text):
    print(text, file=sys.stderr, flush=True)


def _cpu(*pids):
    total = 0.0
    for pid in pids:
        try:
            total += procs.cpu_seconds(pid)
        except OSError:
            pass
    return total


def _glance_pids(api):
    return [api.pid] + api.worker_pids()


class Pacer(threading.Thread):
    """Opens every gate 1 MiB further each second."""

    def __init__(self, gates):
        super().__init__(daemon=True)
        self.gates, self.done = gates, threading.Event()

    def run(self):
        opened = 2 * MiB
        while not self.done.wait(1.0):
            opened += MiB
            for gate in self.gates:
                gate.open_to(opened)


def _timings(driver):
    """{requestId: (url, sent, finished)} of the plugin's requests."""
    seen = {}
    for entry in driver.get_log('performance'):
        message = json.loads(entry['message'])['message']
        params = message.get('params', {})
        if message['method'] == 'Network.requestWillBeSent':
            url = params['request']['url']
            if ui.PLUGIN_API + 'images/' in url:
                seen[params['requestId']] = [url, params['timestamp'], None]
        elif (message['method'] == 'Network.loadingFinished' and
                params['requestId'] in seen):
            seen[params['requestId']][2] = params['timestamp']
    return seen


def run(args):
    with tempfile.TemporaryDirectory(prefix='gps-bench-horizon-',
                                     dir=args.workdir) as workdir:
        with testbed.LocalStack(workdir) as local, testbed.Keystone(
                os.path.join(workdir, 'keystone')) as keystone:
            api = local.add_glance('glance', keystone=keystone,
                                   workers=args.workers)
            keystone.set_image_service(api.url)
            horizon = testbed.Horizon(os.path.join(workdir, 'horizon'),
                                      keystone)
            with horizon:
                return measure(args, workdir, keystone, api, horizon)


def measure(args, workdir, keystone, api, horizon):
    client = api.client('alice')
    gates, uploads = [], []
    for n in range(args.uploads):
        image = client.images.create(
            name='bench-%02d-%s' % (n, uuid.uuid4().hex[:4]),
            disk_format='raw', container_format='bare')
        gate = ui.Gate(args.upload_mib * MiB)
        gate.open_to(2 * MiB)
        upload = ui.Uploader(api.client('alice'), image['id'], gate)
        upload.start()
        gates.append(gate)
        uploads.append(upload)
    pacer = Pacer(gates)
    pacer.start()
    try:
        time.sleep(3)
        _say('%d uploads in flight; a window of %d s without the page ...'
             % (len(uploads), args.seconds))
        glance0, horizon0 = _cpu(*_glance_pids(api)), _cpu(horizon.pid)
        time.sleep(args.seconds)
        base_glance = _cpu(*_glance_pids(api)) - glance0
        base_horizon = _cpu(horizon.pid) - horizon0
        driver = ui.browser(os.path.join(workdir, 'chromium'))
        try:
            page = ui.Page(driver, horizon)
            page.login('alice', keystone)
            page.open('project/images/')

            def bars():
                return driver.execute_script(
                    'return document.querySelectorAll('
                    '"[role=progressbar]").length')

            def saving():
                return sum(1 for image in api.client('alice').images.list()
                           if image['status'] == 'saving')

            try:
                # a bar for every upload glance is taking
                ui.until('a bar per upload', lambda: bars() >= max(
                    1, saving()), 120, interval=1)
            except BaseException:
                shot = os.path.join(tempfile.gettempdir(),
                                    'bench-horizon-failed.png')
                driver.save_screenshot(shot)
                _say('the page, when it failed: %s' % shot)
                raise
            _timings(driver)  # from here on
            in_flight = bars()
            _say('the page shows %d bars (%d uploads failed to start: %s); '
                 'measuring %d s ...' % (
                     in_flight, sum(1 for u in uploads if u.error),
                     [str(u.error)[:80] for u in uploads if u.error],
                     args.seconds))
            glance0, horizon0 = _cpu(*_glance_pids(api)), _cpu(horizon.pid)
            started = time.monotonic()
            time.sleep(args.seconds)
            elapsed = time.monotonic() - started
            page_glance = _cpu(*_glance_pids(api)) - glance0
            page_horizon = _cpu(horizon.pid) - horizon0
            timings = _timings(driver)
        finally:
            driver.quit()
    finally:
        pacer.done.set()
        for gate in gates:
            gate.fail()
        for upload in uploads:
            upload.join(60)
    polls = len(timings)
    latencies = [end - sent for _, sent, end in timings.values()
                 if end is not None]
    rate = polls / elapsed
    p50 = percentile(latencies, 0.5) if latencies else float('nan')
    p99 = percentile(latencies, 0.99) if latencies else float('nan')
    glance_per = (page_glance - base_glance) / max(polls, 1)
    horizon_per = (page_horizon - base_horizon) / max(polls, 1)
    print('Horizon plugin, one Images page, %d uploads in flight (%d bars), '
          '%d glance workers, %.0f s:' % (args.uploads, in_flight,
                                          args.workers, elapsed))
    print('| figure | value |')
    print('|---|---|')
    print('| plugin requests/s | %.2f (%d in %.0f s; target <= %.0f) |'
          % (rate, polls, elapsed, TARGETS['requests_per_s']))
    print('| REST view latency p50 / p99 (browser) | %.0f ms / %.0f ms |'
          % (p50 * 1000, p99 * 1000))
    print('| glance-api CPU per poll | %.1f ms (%.2f s with the page, %.2f s '
          'without) |' % (glance_per * 1000, page_glance, base_glance))
    print('| Horizon CPU per poll | %.1f ms (%.2f s with the page, %.2f s '
          'without) |' % (horizon_per * 1000, page_horizon, base_horizon))
    missed = []
    if rate > TARGETS['requests_per_s']:
        missed.append('requests/s %.2f > %.0f' % (
            rate, TARGETS['requests_per_s']))
    if not latencies or p99 > TARGETS['p99_s']:
        missed.append('p99 %.3f s > %.1f s' % (p99, TARGETS['p99_s']))
    return conclude(missed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--uploads', type=int, default=20)
    parser.add_argument('--seconds', type=float, default=30)
    parser.add_argument('--workers', type=int, default=None,
                        help="glance-api's uWSGI workers (default: one per "
                        "upload, each holds one for its whole length, and "
                        "4 for the page's requests)")
    parser.add_argument('--upload-mib', type=int, default=256,
                        help='size of each upload; paced at 1 MiB/s')
    parser.add_argument('--workdir', help='where the stack lives '
                        '(default: a temporary directory)')
    args = parser.parse_args(argv)
    if args.workers is None:
        args.workers = args.uploads + 4
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
