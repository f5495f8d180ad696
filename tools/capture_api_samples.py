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

"""Capture the API reference's samples from a real glance-api.

Boots the test bed (Ceph, memcached, glance-api under uWSGI with the
upload_progress filter, no Keystone) in single and multi-store mode,
uploads an image slowly with a declared size, and saves the answers of
``GET /v2/images/{image_id}/progress`` as JSON into
``api-ref/source/samples/``::

    .venv/bin/python tools/capture_api_samples.py --workdir /tmp/samples

The 401 needs Keystone and is not captured (keystonemiddleware's own
answer); everything else is.
"""

import argparse
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from testbed import stack  # noqa: E402

SAMPLES = os.path.join(os.path.dirname(HERE), 'api-ref', 'source', 'samples')
MiB = 2**20
SIZE = 40 * MiB
RATE = 4 * MiB  # bytes per second


def call(url, method='GET', data=None, headers=None):
    request = urllib.request.Request(url, method=method, data=data,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def create(api, name):
    status, _, body = call(
        api.url + '/v2/images', 'POST',
        json.dumps({'name': name, 'disk_format': 'raw',
                    'container_format': 'bare'}).encode(),
        {'Content-Type': 'application/json'})
    assert status == 201, (status, body)
    return json.loads(body)['id']


def slow_body():
    sent = 0
    while sent < SIZE:
        time.sleep(MiB / RATE)
        sent += MiB
        yield bytes(MiB)


def upload(api, image_id, done):
    status, _, body = call(
        api.url + '/v2/images/%s/file' % image_id, 'PUT', slow_body(),
        {'Content-Type': 'application/octet-stream',
         'Content-Length': str(SIZE)})
    done.append((status, body))


def save(name, status, headers, body):
    assert headers.get('OpenStack-Upload-Progress') == '1', headers
    path = os.path.join(SAMPLES, name)
    with open(path, 'w') as f:
        if name.endswith('.json'):
            json.dump(json.loads(body), f, indent=4)
        else:  # glance's own answer, as it is
            f.write('HTTP/1.1 %d\nContent-Type: %s\n%s: 1\n\n%s'
                    % (status, headers['Content-Type'],
                       'OpenStack-Upload-Progress', body.decode().strip()))
        f.write('\n')
    print('%s: HTTP %d' % (path, status))


def capture(workdir, mode):
    local = stack.LocalStack(
        os.path.join(workdir, mode), pools=(),
        glance=dict(mode=mode, progress_filter=True, workers=2))
    with local:
        api = local.api
        progress = api.url + '/v2/images/%s/progress'
        suffix = '' if mode == 'single' else '-multi'
        image_id = create(api, 'cirros-0.6.2')
        if mode == 'single':
            save('progress-unknown-response.json',
                 *call(progress % image_id))
        done = []
        thread = threading.Thread(target=upload, args=(api, image_id, done))
        thread.start()
        time.sleep(SIZE / RATE / 2)
        save('progress-uploading-response%s.json' % suffix,
             *call(progress % image_id))
        thread.join()
        assert done and done[0][0] == 204, done
        save('progress-stored-response%s.json' % suffix,
             *call(progress % image_id))
        if mode == 'multi':
            save('progress-backend-response.json',
                 *call(progress % image_id + '?backend=ceph1'))
            save('progress-bad-backend-response.json',
                 *call(progress % image_id + '?backend=nowhere'))
            return
        status, headers, _ = call(progress % image_id, 'HEAD')
        print('HEAD: %d %s' % (status, sorted(headers.items())))
        save('progress-not-found-response.txt',
             *call(progress % uuid.uuid4()))
        local.memcached.pause()
        try:
            save('progress-unavailable-response.json',
                 *call(progress % image_id))
        finally:
            local.memcached.resume()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--workdir', required=True)
    args = parser.parse_args()
    os.makedirs(SAMPLES, exist_ok=True)
    for mode in ('single', 'multi'):
        capture(args.workdir, mode)


if __name__ == '__main__':
    main()
