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

"""``glance-progress exporter`` during real uploads through glance-api:
scraped by a real Prometheus, its page shown by a real Chromium.

The exporter runs as operators run it, its own process reading the
session glance-api's configuration; Prometheus (Debian's package, on
loopback, scraping every second) and Chromium (Debian's, headless, every
name but 127.0.0.1 unresolvable) are started by the test and stopped
with it.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from glanceclient import exc as glance_exc
import pytest

import testbed

from glance_progress_store.read import reader as reader_mod
from tests.e2e.helpers import browser
from tests.e2e.helpers import new_image
from tests.e2e.helpers import Upload
from tests.e2e.helpers import wait_image
from tests import helpers
from tests.helpers import MiB
from tests.helpers import wait_for as until

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SCREENSHOT = os.path.join(ROOT, 'doc', 'source', 'admin', 'live-page.png')
STALL_AFTER = 4.0
# glance's rbd_store_chunk_size in the test bed: the record moves by 8 MiB.
# The uploads here are held by a helpers.Valve: they move when the test
# lets more data through, once it has seen what it waits for.
CHUNK = 8 * MiB

# Every metric family and its type (what text_string_to_metric_families
# reports: a counter's name has no _total).
FAMILIES = {
    'glance_progress_uploads_in_flight': 'gauge',
    'glance_progress_uploads_stalled': 'gauge',
    'glance_progress_upload_state': 'gauge',
    'glance_progress_upload_stored_bytes': 'gauge',
    'glance_progress_upload_total_bytes': 'gauge',
    'glance_progress_upload_last_update_age_seconds': 'gauge',
    'glance_progress_upload_failures': 'counter',
    'glance_progress_memcached_up': 'gauge',
    'glance_progress_refreshes': 'counter',
    'glance_progress_refresh_errors': 'counter',
    'glance_progress_refresh_duration_seconds': 'gauge',
    'glance_progress_refresh_age_seconds': 'gauge',
}


class ExporterProcess:
    """``glance-progress exporter`` on a free loopback port."""

    def __init__(self, api, *args):
        self.port = testbed.free_port()
        self.url = 'http://127.0.0.1:%d/' % self.port
        self.proc = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), 'glance-progress'),
             'exporter', '--config-file', api.conf_path,
             '--listen', '127.0.0.1:%d' % self.port] + list(args),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.banner = self.proc.stderr.readline()
        assert 'serving %s' % self.url in self.banner, (
            self.banner + self.proc.stderr.read() if self.proc.poll()
            is not None else self.banner)

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.read().decode()

    def uploads(self):
        return json.loads(self.get('uploads.json'))

    def view(self, image_id):
        for view in self.uploads()['views']:
            if view['image_id'] == image_id:
                return view
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, err


@pytest.fixture
def exporter(glance_single):
    proc = ExporterProcess(glance_single, '--refresh', '0.5',
                           '--stall-after', str(STALL_AFTER), '--since', '5m')
    yield proc
    if proc.proc.poll() is None:
        rc, err = proc.stop()
        assert rc == 0, err
        assert 'Traceback' not in err, err


def _families(text):
    from prometheus_client import parser
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def test_prometheus_scrapes_an_upload_in_flight(glance_single, exporter,
                                                memcached, cleanup, tmp_path):
    prom = testbed.Prometheus(str(tmp_path / 'prometheus'),
                              ['127.0.0.1:%d' % exporter.port])
    prom.start()
    upload = body = None
    try:
        until('prometheus to scrape the exporter', lambda: any(
            health == 'up' for health, _ in prom.targets_health().values()),
            30, interval=0.5)
        client = glance_single.client()
        image_id = new_image(client, cleanup)
        data = helpers.payload(48 * MiB + 5)
        body = helpers.Valve(data, limit=1)
        upload = Upload(client, image_id, data, body=body)
        upload.start()
        stored = 'glance_progress_upload_stored_bytes{image_id="%s"}' % (
            image_id)
        in_flight = 'sum(glance_progress_uploads_in_flight{state="uploading"})'

        def scraped(above):
            got = prom.query(stored)
            return got and got[0][1] > above and got[0][1]
        until('prometheus to see the upload', lambda: prom.query(stored), 60)
        first = body.step_until('prometheus to see bytes stored',
                                lambda: scraped(0), CHUNK, patience=4)
        assert prom.query(in_flight)[0][1] == 1
        total = prom.query('glance_progress_upload_total_bytes{image_id="%s"}'
                           % image_id)
        assert total[0][1] == len(data)
        second = body.step_until('stored bytes to rise',
                                 lambda: scraped(first), CHUNK, patience=4)
        assert first < second < len(data)

        # held: the age of the upload is that of its record at the scrape
        # (Prometheus stamps a sample with the scrape's start)
        source = reader_mod.ProgressReader([memcached.address])
        age_of = ('glance_progress_upload_last_update_age_seconds'
                  '{image_id="%s"}' % image_id)

        def at(instant, expr):
            [result] = prom.api('query', query=expr, time=instant)['result']
            return float(result['value'][1])

        def same_record():
            instant = time.time()
            record = source.get(image_id)
            return record.bytes == at(instant, stored) and (instant, record)
        instant, record = until('a scrape of the record in memcached',
                                same_record, 30)
        age, scraped_at = at(instant, age_of), at(
            instant, 'timestamp(%s)' % age_of)
        took = at(instant, 'scrape_duration_seconds')
        assert record.state == 'uploading'
        assert (scraped_at - record.updated_at - 0.002 <= age <=
                scraped_at + took - record.updated_at + 0.002), (
            age, scraped_at, took, record)
        up = prom.query('glance_progress_memcached_up')
        assert [v for _, v in up] == [1.0]

        # the same names and types on /metrics, by Prometheus' own parser
        text = exporter.get('metrics')
        (tmp_path / 'metrics.txt').write_text(text)  # the test's artifact
        families = _families(text)
        for name, kind in FAMILIES.items():
            assert families[name].type == kind, name

        body.open()
        assert upload.result(timeout=120) is None
        wait_image(client, image_id, lambda i: i['status'] == 'active')
        # stored: no longer in flight, still listed within --since
        until('the upload to leave the in-flight gauge', lambda: prom.query(
            in_flight)[0][1] == 0, 30, interval=0.5)
        assert prom.query('glance_progress_upload_state{image_id="%s"}'
                          % image_id)[0][0]['state'] == 'stored'
        assert prom.query(stored)[0][1] == len(data)
        scrapes = prom.query('glance_progress_refreshes_total')[0][1]
        assert scrapes >= 2
    finally:
        if body is not None:
            body.open()
        if upload is not None:
            upload.join(120)
        prom.stop()


_ROW_JS = """
for (const tr of document.querySelectorAll('#uploads tr')) {
  if (tr.dataset.image !== arguments[0]) continue;
  const bar = tr.querySelector('progress');
  return {class: tr.className,
          cells: Array.from(tr.cells, (td) => td.textContent),
          value: bar.hasAttribute('value') ? bar.value : null,
          valuenow: bar.getAttribute('aria-valuenow'),
          width: bar.getBoundingClientRect().width};
}
return null;
"""


def _row(driver, image_id):
    """What the page shows of an upload, read in one go (the page replaces
    its rows at each refresh), or None while it is not listed."""
    return driver.execute_script(_ROW_JS, image_id)


def _network_failures(driver, origin):
    """The page's requests that failed or answered >= 400, from Chrome's
    DevTools events (the performance log).

    Chromium also makes requests of its own (component and account
    services), which --host-resolver-rules makes fail: those are not the
    page's (their document is not the page's origin) and are only
    printed.
    """
    failed, sent = [], {}
    for entry in driver.get_log('performance'):
        message = json.loads(entry['message'])['message']
        params = message.get('params', {})
        if message['method'] == 'Network.requestWillBeSent':
            sent[params['requestId']] = params
        elif message['method'] == 'Network.loadingFailed':
            request = sent.get(params['requestId'], {})
            url = request.get('request', {}).get('url', '?')
            if (request.get('documentURL', '').startswith(origin) or
                    url.startswith(origin)):
                failed.append('%s %s' % (params.get('errorText'), url))
            else:
                print('(Chromium\'s own request failed, as it should '
                      'here: %s %s)' % (params.get('errorText'), url))
        elif message['method'] == 'Network.responseReceived':
            response = params['response']
            if response['status'] >= 400:
                failed.append('%s %s' % (response['status'],
                                         response['url']))
    return failed


def test_live_page_follows_an_upload_and_marks_it_stalled(
        glance_single, exporter, cleanup, tmp_path):
    client = glance_single.client()
    image_id = new_image(client, cleanup)
    data = helpers.payload(56 * MiB + 3)
    driver = browser(str(tmp_path / 'chromium'))
    body = helpers.Valve(data, limit=1)
    upload = Upload(client, image_id, data, body=body)
    stopped = []
    try:
        driver.get(exporter.url)
        assert driver.title == 'Glance image uploads'
        upload.start()

        def row_above(value):
            row = _row(driver, image_id)
            return row and row['value'] is not None and (
                row['value'] > value) and row
        until('the page to show the upload', lambda: _row(
            driver, image_id), 60, interval=0.2)
        first = body.step_until('the page to show bytes stored',
                                lambda: row_above(0), CHUNK, patience=3)
        assert first['class'] == 'uploading'
        assert first['cells'][2] == 'uploading'
        second = body.step_until('the bar to move', lambda: row_above(
            first['value']), CHUNK, patience=3)
        assert second['value'] > first['value']
        assert float(second['valuenow']) == second['value']
        assert second['width'] > 50  # a bar, not a dot
        assert second['cells'][4] != first['cells'][4]  # "x MiB / 56.0 MiB"
        assert second['cells'][4].endswith('/ 56.0 MiB')

        # the worker stops (SIGSTOP): no update for --stall-after seconds
        stopped.extend(glance_single.worker_pids())
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        stalled = until('the page to mark the upload stalled', lambda: (
            lambda r: r and r['class'] == 'stalled' and r)(
                _row(driver, image_id)), STALL_AFTER + 15, interval=0.3)
        assert stalled['cells'][2] == '\u26a0 stalled'  # text, not colour
        # stalled uploads come first
        assert driver.execute_script(
            "return document.querySelector('#uploads tr').dataset.image"
        ) == image_id
        status = driver.find_element('id', 'status')
        assert status.get_attribute('aria-live') == 'polite'
        assert 'memcached answered' in status.text
        assert 'Last refreshed' in status.text
        driver.save_screenshot(str(tmp_path / 'live-page.png'))
        if os.environ.get('GPS_UPDATE_SCREENSHOT'):
            os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
            shutil.copy(str(tmp_path / 'live-page.png'), SCREENSHOT)
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        stopped.clear()

        body.open()
        assert upload.result(timeout=120) is None
        wait_image(client, image_id, lambda i: i['status'] == 'active')
        done = until('the page to show it stored', lambda: (
            lambda r: r and r['class'] == 'stored' and r)(
                _row(driver, image_id)), 20, interval=0.3)
        assert done['value'] == 100
        assert done['cells'][4] == '56.0 MiB / 56.0 MiB'

        # a phone: the rows stack, nothing wider than the screen
        driver.set_window_size(390, 844)
        assert driver.execute_script(
            'return document.documentElement.scrollWidth <= innerWidth')
        caption = driver.find_element('id', 'caption').text
        assert caption.startswith('Uploads: 0 in flight'), caption
        # the stored upload is counted apart from those in flight
        assert re.search(r'[1-9]\d* stored and \d+ failed in the last '
                         r'5m00s', caption), caption

        assert _network_failures(driver, exporter.url) == []
        errors = [e for e in driver.get_log('browser')
                  if e['level'] in ('SEVERE', 'WARNING')]
        assert errors == []
        assert os.path.getsize(str(tmp_path / 'live-page.png')) > 10000
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        body.open()
        driver.quit()
        upload.join(120)


def _failures(exporter):
    families = _families(exporter.get('metrics'))
    return {s.labels['reason']: s.value
            for s in families['glance_progress_upload_failures'].samples
            if s.name.endswith('_total')}


def _refreshes(exporter):
    families = _families(exporter.get('metrics'))
    return families['glance_progress_refreshes'].samples[0].value


def test_a_failed_upload_is_counted_once(glance_single, exporter, cleanup):
    from tests.e2e.conftest import IMAGE_SIZE_CAP
    before = _failures(exporter).get('source_error', 0)
    client = glance_single.client()
    image_id = new_image(client, cleanup)
    data = helpers.payload(IMAGE_SIZE_CAP + MiB)  # glance refuses it
    with pytest.raises(glance_exc.HTTPOverLimit):
        client.images.upload(image_id, helpers.SlowReader(data))
    until('the failure to be counted', lambda: _failures(exporter).get(
        'source_error', 0) == before + 1, 30)
    view = exporter.view(image_id)
    assert (view['state'], view['reason']) == ('failed', 'source_error')
    # three more refreshes list the same failed record
    counted_at = _refreshes(exporter)
    until('three more refreshes', lambda: _refreshes(
        exporter) >= counted_at + 3, 30)
    assert exporter.view(image_id)['state'] == 'failed'
    assert _failures(exporter)['source_error'] == before + 1


def test_multi_store_labels_every_backend(glance_multi):
    proc = ExporterProcess(glance_multi, '--refresh', '0.5')
    try:
        families = _families(proc.get('metrics'))
    finally:
        rc, err = proc.stop()
    assert rc == 0, err
    in_flight = families['glance_progress_uploads_in_flight']
    assert {(s.labels['backend'], s.labels['state'])
            for s in in_flight.samples} == {
        (backend, state) for backend in helpers.BACKENDS
        for state in ('uploading', 'finalizing', 'stalled')}
    assert [s.value for s in families[
        'glance_progress_memcached_up'].samples] == [1.0]


def test_a_dead_memcached_is_down_on_metrics_and_page(glance_single):
    dead = '127.0.0.1:%d' % testbed.free_port()
    proc = ExporterProcess(glance_single, '--servers', dead,
                           '--refresh', '0.5')
    try:
        families = _families(proc.get('metrics'))
        document = proc.uploads()
    finally:
        rc, err = proc.stop()
    assert rc == 0, err
    assert [(s.labels, s.value) for s in families[
        'glance_progress_memcached_up'].samples] == [({'server': dead}, 0)]
    assert list(document['unreadable']) == [dead]
    assert document['views'] == []


def test_page_is_served_with_a_strict_policy(exporter):
    with urllib.request.urlopen(exporter.url, timeout=10) as response:
        policy = response.headers['Content-Security-Policy']
        assert response.headers['Content-Type'] == 'text/html; charset=utf-8'
        assert response.headers['X-Content-Type-Options'] == 'nosniff'
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(exporter.url + 'nothing', timeout=10)
    assert e.value.code == 404
    request = urllib.request.Request(exporter.url + 'metrics', data=b'x')
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=10)
    assert e.value.code == 405


def test_twenty_concurrent_scrapers_cost_memcached_nothing(exporter):
    """The refresh thread alone reads memcached: 20 scrapers in a loop do
    not add refreshes, and each scrape answers from the cache."""
    before = _families(exporter.get('metrics'))
    refreshes = before['glance_progress_refreshes'].samples[0].value
    latencies = []
    lock = threading.Lock()

    def scrape():
        for _ in range(25):
            started = time.monotonic()
            exporter.get('metrics')
            with lock:
                latencies.append(time.monotonic() - started)

    threads = [threading.Thread(target=scrape) for _ in range(20)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started
    after = _families(exporter.get('metrics'))
    done = after['glance_progress_refreshes'].samples[0].value - refreshes
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    sys.stderr.write('\n500 scrapes by 20 threads in %.2f s: p50 %.1f ms, '
                     'p99 %.1f ms; %d refreshes meanwhile\n'
                     % (elapsed, p50 * 1000, p99 * 1000, done))
    assert len(latencies) == 500
    # 0.5 s refresh: the refreshes follow the clock, not the scrapes
    assert done <= elapsed / 0.5 + 2
    assert p99 < 1.0


def test_address_in_use_is_one_line_and_exit_4(glance_single, exporter):
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), 'glance-progress'),
         'exporter', '--config-file', glance_single.conf_path,
         '--listen', '127.0.0.1:%d' % exporter.port],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    assert proc.stderr.startswith('glance-progress: error: cannot listen on '
                                  '127.0.0.1:%d: ' % exporter.port)
    assert proc.stderr.count('\n') == 1, proc.stderr


def test_shipped_scrape_config_is_valid_for_prometheus(tmp_path):
    """etc/prometheus-scrape.yml, which the admin guide includes, pasted
    into a prometheus.yml, passes Prometheus' own promtool."""
    with open(os.path.join(ROOT, 'etc', 'prometheus-scrape.yml')) as f:
        block = f.read()
    path = tmp_path / 'prometheus.yml'
    path.write_text('global:\n  scrape_interval: 15s\n' + block)
    proc = subprocess.run(['/usr/bin/promtool', 'check', 'config',
                           str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'SUCCESS' in proc.stdout + proc.stderr


def test_exporter_stops_on_sigterm_with_exit_0(glance_single):
    proc = ExporterProcess(glance_single)
    assert 'Glance image uploads' in proc.get('')
    rc, err = proc.stop()
    assert rc == 0
    assert 'Traceback' not in err
