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

"""The Progress column of the patched Skyline console in a real browser:
Skyline 9.0.0 (testbed.Skyline: skyline-apiserver from PyPI, Debian's
nginx as Skyline's generator writes it) serving skyline-console 9.0.0
built from its sdist with contrib/skyline/*.patch
(testbed.skyline_console) and installed from its wheel, against the
test bed's real Keystone 30 and glance-api 33 with the progress filter.

Chromium (Debian's, headless, every name but 127.0.0.1 unresolvable)
logs in through Skyline's form and lands on Compute -> Images.  Uploads
go through glanceclient with a body the test releases a few MiB at a
time (``helpers.Valve``): Skyline refreshes rows in transition every
10 s, so each step waits for the page, never for this machine's speed.
"""

import json
import os
import re
import sys
import time

import pytest
import requests

import testbed

from tests.e2e.helpers import browser
from tests.e2e.helpers import Uploader
# Horizon's image helper.
from tests.e2e.test_horizon import new_image
from tests import helpers
from tests.helpers import MiB
from tests.helpers import wait_for as until

pytestmark = [pytest.mark.e2e, pytest.mark.skyline,
              pytest.mark.usefixtures('dashboard_leg_cost')]

SIZE = 64 * MiB  # eight of glance's 8 MiB chunks (testbed.GlanceAPI)
SCREENSHOT = 'skyline-images-progress.png'
# The console's glance calls go through nginx's location of the
# catalog's image service (skyline-nginx-generator).
PROGRESS_URL = re.compile(r'/glance/v2/images/[0-9a-f-]+/progress')
# The list's own request (each fetch of the Images list).
LIST_URL = re.compile(r'/glance/v2/images(\?|$)')
# What the page shows is waited for up to 90 s: a row in transition is
# refreshed every 10 s, and the other services share two busy cores.
PAGE = 90


# -- fixtures ------------------------------------------------------------

# The module's own Keystone and glance-api, so that swapping the
# catalog's image endpoint (test_without_the_filter_*) disturbs no other
# module.

@pytest.fixture(scope='module')
def keystone(workdir):
    with testbed.Keystone(os.path.join(workdir, 'sky-keystone')) as server:
        yield server


@pytest.fixture(scope='module')
def glance_keystone(ceph, memcached, workdir, keystone):
    """glance-api 33, stock keystone flavor of etc/glance-api-paste.ini
    (authtoken, context, upload_progress): the catalog's image service;
    its progress records in the session's memcached."""
    api = testbed.GlanceAPI(os.path.join(workdir, 'sky-glance'), ceph,
                            memcached.address, mode='single',
                            keystone=keystone)
    keystone.set_image_service(api.url)
    with api:
        yield api


@pytest.fixture(scope='module')
def glance_without_filter(ceph, memcached, workdir, keystone,
                          glance_keystone):
    """A second node of the same glance (same database) with glance's
    own paste file: no progress filter.  Two workers: one holds the
    test's upload, the other answers the console meanwhile."""
    stock = os.path.join(sys.prefix, 'etc', 'glance', 'glance-api-paste.ini')
    with testbed.GlanceAPI(
            os.path.join(workdir, 'sky-glance-plain'), ceph,
            memcached.address, mode='single', keystone=keystone, workers=2,
            shared_with=glance_keystone,
            conf_text='[paste_deploy]\nconfig_file = %s\n' % stock) as api:
        yield api


@pytest.fixture(scope='module')
def console():
    """The wheel of skyline-console 9.0.0 built with the patches (cached
    across runs by testbed.skyline_console), which testbed.Skyline
    installs as the install guide does."""
    from testbed import skyline_console
    started = time.monotonic()
    built = skyline_console.build(say=print)
    print('patched skyline-console ready in %.0f s: %s' % (
        time.monotonic() - started, built.wheel))
    return built.wheel


@pytest.fixture(scope='module')
def skyline(workdir, keystone, glance_keystone, console):
    server = testbed.Skyline(os.path.join(workdir, 'skyline'), keystone,
                             console, out=sys.stdout)
    started = time.monotonic()
    with server:
        print('Skyline %s up in %.0f s (%s)' % (
            testbed.skyline.VERSION, time.monotonic() - started, ', '.join(
                '%s %.1f s' % item for item in server.timings.items())))
        yield server


class Page:
    """A Skyline page in Chromium."""

    def __init__(self, driver, skyline):
        self.driver, self.skyline = driver, skyline
        self.progress_requests = []
        self.list_requests = 0

    def login(self, user, keystone, landing='compute/image'):
        """Through Skyline's login form, as a person would; it lands on
        ``landing`` (the referer: Compute -> Images), not on the Overview
        (which needs nova and cinder)."""
        from selenium.webdriver.common.by import By
        u = keystone.users[user]
        self.driver.get(self.skyline.url +
                        'auth/login?referer=/' + landing)
        until('the login form', lambda: self.driver.find_elements(
            By.CSS_SELECTOR, '#normal_login_password'), 60)
        self.driver.find_element(
            By.CSS_SELECTOR, '#normal_login_domain').send_keys(u.name)
        self.driver.find_element(
            By.CSS_SELECTOR, '#normal_login_password').send_keys(u.password)
        self.driver.find_element(
            By.CSS_SELECTOR, '#normal_login_submit button').click()
        until(landing, lambda: self.driver.current_url.rstrip(
            '/').endswith('/' + landing), 60)
        self.wait_for_table()

    def open(self):
        """Compute -> Images, loaded anew."""
        self.driver.get(self.skyline.url + 'compute/image')
        self.wait_for_table()

    def wait_for_table(self):
        until('the images table', lambda: self.driver.execute_script(
            'return !!document.querySelector(".ant-table-tbody") && '
            '!document.querySelector(".ant-table .ant-spin-spinning")'),
            PAGE)

    def headers(self):
        return self.driver.execute_script(
            'return Array.from(document.querySelectorAll('
            '".ant-table-thead th"), (th) => th.textContent.trim())'
            '.filter((t) => t);')

    def progress_column(self, timeout=60):
        """The Progress column stands right after Status."""
        headers = until('the Progress column', lambda: (
            lambda h: 'Progress' in h and h)(self.headers()), timeout)
        assert headers[headers.index('Status') + 1] == 'Progress', headers
        return headers

    def row(self, image_id):
        return self.driver.execute_script(ROW_JS, image_id)

    def token(self):
        """The Keystone token the console keeps (localStorage
        ``keystone_token``: its value, with an expiry)."""
        kept = self.driver.execute_script(
            'return localStorage.getItem("keystone_token");')
        try:
            kept = json.loads(kept)
        except ValueError:
            return kept
        return kept['value'] if isinstance(kept, dict) else kept

    def notices(self):
        """The texts of the toasts on the page (antd notifications and
        messages: Skyline's errors stay until closed)."""
        return self.driver.execute_script(
            'return Array.from(document.querySelectorAll('
            '".ant-notification-notice, .ant-message-notice"), '
            '(n) => n.textContent.trim());')

    def network(self):
        """The progress requests sent since the last call (kept in
        ``progress_requests`` as (URL, status)) and the list's fetches
        (counted in ``list_requests``), from Chrome's DevTools events;
        the failed requests of any URL are returned."""
        failed, sent = [], {}
        for entry in self.driver.get_log('performance'):
            message = json.loads(entry['message'])['message']
            params = message.get('params', {})
            if message['method'] == 'Network.requestWillBeSent':
                sent[params['requestId']] = params['request']['url']
                if PROGRESS_URL.search(params['request']['url']):
                    self.progress_requests.append(
                        [params['request']['url'], None])
                elif LIST_URL.search(params['request']['url']):
                    self.list_requests += 1
            elif message['method'] == 'Network.responseReceived':
                url, status = (params['response']['url'],
                               params['response']['status'])
                for request in self.progress_requests:
                    if request[0] == url and request[1] is None:
                        request[1] = status
                        break
                if status >= 400:
                    failed.append('%s %s' % (status, url))
            elif message['method'] == 'Network.loadingFailed':
                failed.append('%s %s' % (params.get('errorText'), sent.get(
                    params['requestId'], '?')))
        return failed


ROW_JS = """
const tr = document.querySelector('tr[data-row-key="' + arguments[0] + '"]');
if (!tr) return null;
const cell = tr.querySelector('.image-upload-progress');
const text = cell && cell.querySelector('.image-upload-progress-text');
const td = cell && cell.closest('td');
const percent = cell ? cell.getAttribute('data-percent') : null;
return {cells: Array.from(tr.cells, (c) => c.textContent.trim()),
        state: cell ? cell.getAttribute('data-state') : null,
        percent: percent ? parseFloat(percent) : null,
        text: text ? text.textContent.trim() : null,
        bars: tr.querySelectorAll('.ant-progress').length,
        spinners: td ? td.querySelectorAll(
          '.ant-spin, .anticon-loading, .anticon-spin').length : 0};
"""


@pytest.fixture
def page(skyline, glance_keystone, tmp_path):
    driver = browser(str(tmp_path / 'chromium'), '1600,900')
    try:
        yield Page(driver, skyline)
    finally:
        # what the page showed last, with the test's artifacts; the logs'
        # ends are shown with a failure
        driver.save_screenshot(str(tmp_path / 'last.png'))
        driver.quit()
        print('--- glance-api log:\n%s--- Skyline logs:\n%s' % (
            glance_keystone.log_tail(30), skyline.log_tail(15)))


def with_bar(page, image_id, above=0.0):
    """The row once its cell shows a bar with a percent above ``above``
    (by default: once Ceph acknowledged data; the record says 0 % from
    the upload's first moment, which a slow refresh may show first)."""
    def look():
        row = page.row(image_id)
        return (row and row['percent'] is not None and row['bars'] and
                row['percent'] > above and row)
    return look


# -- tests ---------------------------------------------------------------

def test_the_bar_rises_during_an_upload_and_the_row_turns_active(
        skyline, keystone, glance_keystone, page, glance_cleanup, tmp_path):
    image = new_image(glance_keystone, 'alice', glance_cleanup)
    gate = helpers.Valve(b'\xa5' * SIZE)
    upload = Uploader(glance_keystone.client('alice'), image['id'], gate, SIZE)
    page.login('alice', keystone)
    page.progress_column()
    # queued and no upload: no bar
    row = until('the new image', lambda: page.row(image['id']), PAGE)
    assert row['bars'] == 0 and row['percent'] is None, row
    seen = []
    with upload:
        gate.open_to(20 * MiB)
        first = until('a bar', with_bar(page, image['id']), PAGE)
        seen.append(first)
        assert first['state'] == 'uploading', first
        assert 0 < first['percent'] < 100, first
        assert '%' in first['text'] and '64.0 MiB' in first['text'], first
        gate.open_to(48 * MiB)
        second = until('the bar to rise', with_bar(
            page, image['id'], above=first['percent']), PAGE)
        seen.append(second)
        assert first['percent'] < second['percent'] < 100, second
        shot = str(tmp_path / SCREENSHOT)
        page.driver.save_screenshot(shot)
        print('the Images list mid-upload: %s' % shot)
        error = upload.finish()
        assert error is None, error
        done = until('the row to turn Active', lambda: (
            lambda r: r and 'Active' in r['cells'] and r)(
                page.row(image['id'])), PAGE)
    print('the cell during the upload: %s' % [
        (r['state'], r['percent'], r['text']) for r in seen])
    # no partial bar on the active row
    assert done['percent'] is None and done['bars'] == 0, done
    assert page.notices() == []
    page.network()
    assert [s for _, s in page.progress_requests if s and s >= 400] == []
    page.driver.save_screenshot(str(tmp_path / 'active.png'))


def test_another_project_gets_404_through_skyline(
        skyline, keystone, glance_keystone, page, glance_cleanup):
    """The console's own path to glance (nginx's location, the token it
    keeps): bob, of another project, gets glance's 404 for alice's image;
    alice gets 200 through the same path."""
    image = new_image(glance_keystone, 'alice', glance_cleanup,
                      visibility='private')
    url = skyline.location('glance') + 'v2/images/%s/progress' % image['id']
    page.login('bob', keystone)
    bob = requests.get(url, headers={'X-Auth-Token': page.token()},
                       timeout=30)
    # glance's own 404 (never 401: the console would log bob out), with
    # the filter's header: the column stays
    assert bob.status_code == 404, bob.text
    assert bob.headers.get('OpenStack-Upload-Progress') == '1', bob.headers
    assert page.row(image['id']) is None  # not in bob's list either
    alice = requests.get(url, headers={
        'X-Auth-Token': keystone.token('alice')}, timeout=30)
    assert alice.status_code == 200, alice.text
    assert alice.headers.get('OpenStack-Upload-Progress') == '1'
    # and the console of alice, through the same location
    page.driver.delete_all_cookies()
    page.driver.execute_script('localStorage.clear();')
    page.login('alice', keystone)
    answer = requests.get(url, headers={'X-Auth-Token': page.token()},
                          timeout=30)
    assert answer.status_code == 200, answer.text


def test_without_the_filter_the_list_is_skylines_own(
        skyline, keystone, glance_keystone, glance_without_filter, page,
        glance_cleanup):
    """A glance without the progress filter (its answers carry no
    OpenStack-Upload-Progress): one progress request per page load, then
    no column, no toast."""
    image = new_image(glance_without_filter, 'alice', glance_cleanup)
    gate = helpers.Valve(b'\xa5' * SIZE)
    upload = Uploader(glance_without_filter.client('alice'), image['id'],
                      gate, SIZE)
    keystone.set_image_service(glance_without_filter.url)
    skyline.regenerate()
    try:
        with upload:
            gate.open_to(16 * MiB)  # in flight: the console would ask
            until('saving', lambda: glance_without_filter.client(
                'alice').images.get(image['id'])['status'] == 'saving', 60)
            page.login('alice', keystone)  # the catalog is read at login
            for load in range(2):
                if load:
                    page.open()
                started = len(page.progress_requests)
                until('the image', lambda: page.row(image['id']), PAGE)
                until('a progress request', lambda: (
                    page.network(),
                    len(page.progress_requests) > started)[1], PAGE)
                # the list fetched twice more (its transition refresh,
                # every 10 s: the row is saving) asks no more
                lists = page.list_requests
                until('two refreshes of the list', lambda: (
                    page.network(), page.list_requests >= lists + 2)[1],
                    PAGE)
                asked = page.progress_requests[started:]
                assert [s for _, s in asked] == [404], asked
                assert 'Progress' not in page.headers(), page.headers()
                row = page.row(image['id'])
                assert row['state'] is None and row['bars'] == 0, row
                assert page.notices() == []
            assert upload.finish() is None
    finally:
        keystone.set_image_service(glance_keystone.url)
        skyline.regenerate()


def test_a_frozen_memcached_shows_progress_unavailable(
        skyline, keystone, glance_keystone, memcached, page, glance_cleanup):
    image = new_image(glance_keystone, 'alice', glance_cleanup)
    gate = helpers.Valve(b'\xa5' * SIZE)
    upload = Uploader(glance_keystone.client('alice'), image['id'], gate, SIZE)
    page.login('alice', keystone)
    with upload:
        gate.open_to(16 * MiB)
        first = until('a bar', with_bar(page, image['id']), PAGE)
        memcached.pause()
        try:
            row = until('"Progress unavailable"', lambda: (
                lambda r: r and r['state'] == 'unavailable' and r)(
                    page.row(image['id'])), PAGE)
            # in words: no bar, no spinner
            assert row['text'] == 'Progress unavailable', row
            assert row['bars'] == 0 and row['spinners'] == 0, row
            assert row['percent'] is None, row
        finally:
            memcached.resume()
        gate.open_to(40 * MiB)
        until('the bar back', with_bar(page, image['id'],
                                       above=first['percent']), PAGE)
        assert upload.finish() is None
    # glance's 503 while memcached was frozen is no error for the
    # console: no toast
    page.network()
    assert 503 in [s for _, s in page.progress_requests], (
        page.progress_requests)
    assert page.notices() == []


SIZE_TEXT = re.compile(r'^([0-9.]+) (B|KiB|MiB|GiB)\b')


def shown_bytes(row):
    """The bytes a cell without a total shows first ("40.0 MiB · ...")."""
    found = SIZE_TEXT.match(row['text'] or '')
    units = {'B': 1, 'KiB': 1024, 'MiB': MiB, 'GiB': 1024 * MiB}
    return float(found.group(1)) * units[found.group(2)] if found else None


def test_an_instance_snapshot_of_unknown_size_shows_rising_bytes(
        skyline, keystone, glance_keystone, page, glance_cleanup):
    """Compute -> Instance Snapshots has the column too; a snapshot sent
    chunked, as Nova sends one (no size: glance knows no total), shows
    its bytes rising and "size not known", never a percent or a bar."""
    image = new_image(glance_keystone, 'alice', glance_cleanup,
                      image_type='snapshot')
    gate = helpers.Valve(b'\xa5' * SIZE)
    upload = Uploader(glance_keystone.client('alice'), image['id'], gate,
                      SIZE, sized=False)
    page.login('alice', keystone, landing='compute/instance-snapshot')
    page.progress_column()
    with upload:
        gate.open_to(16 * MiB)
        first = until('bytes', lambda: (lambda r: r and r['state'] == (
            'uploading') and shown_bytes(r) and r)(page.row(image['id'])),
            PAGE)
        gate.open_to(48 * MiB)
        second = until('more bytes', lambda: (
            lambda r: r and (shown_bytes(r) or 0) > shown_bytes(first) and r)(
                page.row(image['id'])), PAGE)
        for row in (first, second):
            assert 'size not known' in row['text'], row
            assert '%' not in row['text'], row
            assert row['percent'] is None and row['bars'] == 0, row
        assert upload.finish() is None
    assert page.notices() == []
