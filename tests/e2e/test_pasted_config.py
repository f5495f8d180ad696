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

"""The configuration an operator pastes, pasted into a real glance-api.

The glance-api.conf files of etc/ that the install guide includes
(single and multi store; README shows the same two, which
tests/unit/test_docs.py checks) and the commented snippet are merged as
they are into glance-api.conf; only what differs on this
machine is replaced: the memcached address, ceph.conf, the pools and the
Ceph user (the test bed has client.admin only).  glance-api is otherwise
configured for the stock ``rbd`` driver, so everything that makes it use
``progress_rbd`` and publish progress must come from the pasted text.
Then an image is uploaded with python-glanceclient into every store the
text declares: it must go active in Ceph with a ``stored`` record.
"""

import configparser
import hashlib
import os
import pathlib
import re
import sys
import uuid

import pytest

import testbed

from tests import helpers

pytestmark = pytest.mark.e2e

ROOT = pathlib.Path(__file__).resolve().parents[2]
SNIPPET = ROOT / 'etc' / 'glance-api.conf.snippet'
SNIPPET_MULTI = '# --- Multiple stores'
PASTE = ROOT / 'etc' / 'glance-api-paste.ini'
# What the install guide includes and README shows.
INCLUDED = [ROOT / 'etc' / 'glance-api.conf.single-store',
            ROOT / 'etc' / 'glance-api.conf.multi-store']


def included_blocks():
    """(id, text) of the glance-api.conf files the install guide
    includes."""
    return [(path.name, path.read_text()) for path in INCLUDED]


def test_install_guide_includes_the_paste_file():
    """The filter section and the flavors' pipelines the guide shows are
    included from the paste file the Keystone-backed tests boot
    glance-api with (a marker it does not find fails the docs build)."""
    guide = (ROOT / 'doc' / 'source' / 'install' / 'index.rst').read_text()
    included = re.findall(r'literalinclude:: \S+/etc/glance-api-paste.ini\n'
                          r'(?:   :.*\n)*', guide)
    assert len(included) == 2
    assert ':start-at: [filter:upload_progress]' in included[0]
    assert ':start-at: [composite:api]' in included[1]


def _pipelines(text):
    parser = configparser.RawConfigParser(default_section='\0')
    parser.read_string(text)
    return {flavor: value for flavor, value in parser['composite:api'].items()
            if flavor != 'paste.composite_factory'}


def test_shipped_paste_file_is_glances_own_plus_the_filter():
    import glance
    installed = pathlib.Path(glance.__file__).parents[3] / 'etc' / 'glance'
    candidates = [installed / 'glance-api-paste.ini',
                  pathlib.Path(sys.prefix) / 'etc' / 'glance' /
                  'glance-api-paste.ini']
    own = next(p for p in candidates if p.exists()).read_text()
    shipped = PASTE.read_text()
    for flavor, pipeline in _pipelines(shipped).items():
        words = pipeline.split()
        anchor = words.index('upload_progress') - 1
        assert words[anchor] in ('context', 'unauthenticated-context')
        assert _pipelines(own)[flavor] == ' '.join(
            w for w in words if w != 'upload_progress')
    parser = configparser.RawConfigParser(default_section='\0')
    parser.read_string(shipped)
    theirs = configparser.RawConfigParser(default_section='\0')
    theirs.read_string(own)
    assert set(parser.sections()) - set(theirs.sections()) == {
        'filter:upload_progress'}
    for section in theirs.sections():
        if section != 'composite:api':
            assert dict(parser[section]) == dict(theirs[section]), section


def snippet_blocks():
    """The snippet as is (single store), and its commented multi-store
    part with one level of "# " removed, as an operator uncomments it."""
    text = SNIPPET.read_text()
    multi = text[text.index(SNIPPET_MULTI):].splitlines()[1:]
    uncommented = '\n'.join(re.sub(r'^# ?', '', line) for line in multi)
    return [('snippet-single', text), ('snippet-multi', uncommented)]


BLOCKS = included_blocks() + snippet_blocks()


def localize(text, ceph, memcached):
    """Replace only this machine's addresses, paths, pools and user; the
    rest of each line (an inline comment, say) stays."""
    pools = {}

    def pool(match):
        name = match.group(2)
        if name not in pools:
            assert len(pools) < 2, 'more pools than the test bed has'
            pools[name] = (helpers.POOL, helpers.POOL2)[len(pools)]
        return match.group(1) + pools[name]

    values = {'progress_memcached_servers': memcached.address,
              'rbd_store_ceph_conf': ceph.conf_path,
              'rbd_store_user': 'admin'}
    for key, value in values.items():
        text = re.sub(r'(?m)^(%s\s*=\s*)[^\s#]+' % key,
                      lambda m: m.group(1) + value, text)
    return re.sub(r'(?m)^(rbd_store_pool\s*=\s*)([^\s#]+)', pool, text)


def stores(text):
    """[(backend or None, pool)] that the text configures."""
    parser = configparser.RawConfigParser(default_section='\0')
    parser.read_string(text)
    if parser.has_option('DEFAULT', 'enabled_backends'):
        backends = [item.split(':')[0].strip() for item in
                    parser.get('DEFAULT', 'enabled_backends').split(',')]
        default = parser.get('glance_store', 'default_backend')
        backends.sort(key=lambda name: name != default)  # default first
        return [(name, parser.get(name, 'rbd_store_pool'))
                for name in backends]
    return [(None, parser.get('glance_store', 'rbd_store_pool'))]


def test_single_and_multi_store_are_included():
    texts = [text for _, text in included_blocks()]
    assert any('stores = progress_rbd' in t for t in texts), texts
    assert any('enabled_backends' in t for t in texts), texts


@pytest.mark.parametrize('text', [t for _, t in BLOCKS],
                         ids=[name for name, _ in BLOCKS])
def test_pasted_configuration_uploads(text, ceph, memcached, reader,
                                      workdir, cleanup):
    conf_text = localize(text, ceph, memcached)
    targets = stores(conf_text)
    mode = 'single' if targets == [(None, targets[0][1])] else 'multi'
    api = testbed.GlanceAPI(
        os.path.join(workdir, 'glance-paste-%s' % uuid.uuid4().hex[:8]),
        ceph, memcached.address, mode=mode, driver='rbd', workers=1,
        conf_text=conf_text)
    with api:
        client = api.client()
        for n, (backend, pool) in enumerate(targets):
            data = helpers.payload(9 * helpers.MiB + 7, seed=n)
            image = client.images.create(
                name='pasted-%d' % n, disk_format='raw',
                container_format='bare')
            cleanup.append(image['id'])
            extra = {'backend': backend} if n else {}
            client.images.upload(image['id'], helpers.SlowReader(data),
                                 image_size=len(data), **extra)
            image = client.images.get(image['id'])
            assert image['status'] == 'active', (image, api.log_tail())
            assert image['checksum'] == hashlib.md5(data).hexdigest()
            assert image['direct_url'] == 'rbd://%s/%s/%s/snap' % (
                ceph.fsid, pool, image['id'])
            record = helpers.wait_record(reader, image['id'], backend)
            assert (record.state, record.bytes, record.backend) == (
                'stored', len(data), backend)
