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

"""The exporter's metric families, page document and parsing, from
hand-made snapshots: pure data, no daemon."""

import json

from prometheus_client import exposition
from prometheus_client import parser as prom_parser
from prometheus_client import registry as prom_registry
import pytest

from glance_progress_store.cmd import cli
from glance_progress_store.cmd import exporter
from glance_progress_store.cmd.exporter import metrics
from glance_progress_store.cmd.exporter import page
from glance_progress_store.cmd.exporter import refresher
from glance_progress_store.read import discovery
from glance_progress_store.read import views

NOW = 1_800_000_000.0
SERVERS = ('127.0.0.1:11211', '127.0.0.1:11212')


def view(image_id, state, backend=None, bytes=10, total=100, age=1.0,
         reason=None, started=100.0):
    return views.View(image_id, backend, state, bytes, total,
                      None if not total else 100.0 * bytes / total,
                      5.0, 18.0, age, NOW - started, NOW - age, reason)


def snapshot(*views_, unreadable=None, taken_at=NOW):
    return discovery.Snapshot(taken_at=taken_at, views=tuple(views_),
                              unreadable=dict(unreadable or {}))


def scrape(status, now=NOW):
    """The text a scrape returns, parsed back by prometheus_client."""
    reg = prom_registry.CollectorRegistry(auto_describe=False)
    reg.register(metrics.SnapshotCollector(
        type('R', (), {'status': status})(), clock=lambda: now))
    text = exposition.generate_latest(reg).decode()
    return text, {f.name: f for f in
                  prom_parser.text_string_to_metric_families(text)}


def samples(family, name=None):
    return {tuple(sorted(s.labels.items())): s.value
            for s in family.samples if name is None or s.name == name}


def test_in_flight_stalled_and_per_upload_families():
    status = refresher.Status(SERVERS, ('',), snapshot(
        view('a', 'uploading', bytes=40, total=100, age=0.5),
        view('b', 'stalled', bytes=7, total=0, age=90.0),
        view('c', 'finalizing', bytes=100, total=100),
        view('d', 'stored', bytes=100, total=100, age=30.0),
    ), refreshes=3, refresh_duration_s=0.01)
    text, families = scrape(status, now=NOW + 2)
    assert families['glance_progress_uploads_in_flight'].type == 'gauge'
    assert samples(families['glance_progress_uploads_in_flight']) == {
        (('backend', ''), ('state', 'uploading')): 1,
        (('backend', ''), ('state', 'finalizing')): 1,
        (('backend', ''), ('state', 'stalled')): 1}
    assert samples(families['glance_progress_uploads_stalled']) == {
        (('backend', ''),): 1}
    assert samples(families['glance_progress_upload_stored_bytes']) == {
        (('backend', ''), ('image_id', i)): v
        for i, v in (('a', 40), ('b', 7), ('c', 100), ('d', 100))}
    # b's size is not known: no total sample rather than a 0
    assert set(samples(families['glance_progress_upload_total_bytes'])) == {
        (('backend', ''), ('image_id', i)) for i in 'acd'}
    ages = samples(families['glance_progress_upload_last_update_age_seconds'])
    assert ages[(('backend', ''), ('image_id', 'a'))] == pytest.approx(2.5)
    assert ages[(('backend', ''), ('image_id', 'b'))] == pytest.approx(92.0)
    assert samples(families['glance_progress_upload_state'])[
        (('backend', ''), ('image_id', 'b'), ('state', 'stalled'))] == 1
    assert families['glance_progress_refreshes'].type == 'counter'
    assert 'glance_progress_refreshes_total 3.0' in text
    assert samples(families['glance_progress_refresh_age_seconds']) == {
        (): pytest.approx(2.0)}
    assert samples(families['glance_progress_memcached_up']) == {
        (('server', s),): 1 for s in SERVERS}


def test_every_backend_has_its_zeros_and_labels_are_backend_names():
    status = refresher.Status(SERVERS, ('fast', 'slow'), snapshot(
        view('a', 'uploading', backend='fast')))
    _, families = scrape(status)
    in_flight = samples(families['glance_progress_uploads_in_flight'])
    assert len(in_flight) == 6  # 2 backends x 3 states
    assert in_flight[(('backend', 'fast'), ('state', 'uploading'))] == 1
    assert in_flight[(('backend', 'slow'), ('state', 'uploading'))] == 0
    assert samples(families['glance_progress_uploads_stalled']) == {
        (('backend', 'fast'),): 0, (('backend', 'slow'),): 0}


def test_no_upload_no_per_image_series():
    _, families = scrape(refresher.Status(SERVERS, ('',), snapshot()))
    for name in ('glance_progress_upload_stored_bytes',
                 'glance_progress_upload_total_bytes',
                 'glance_progress_upload_last_update_age_seconds',
                 'glance_progress_upload_state'):
        assert families[name].samples == []
    assert sum(samples(
        families['glance_progress_uploads_in_flight']).values()) == 0


def test_one_series_per_upload_the_latest_record_wins():
    status = refresher.Status(SERVERS, ('',), snapshot(
        view('a', 'uploading', bytes=10, age=5.0),
        view('a', 'uploading', bytes=20, age=1.0)))
    _, families = scrape(status)
    assert samples(families['glance_progress_upload_stored_bytes']) == {
        (('backend', ''), ('image_id', 'a')): 20}


def test_unreadable_server_is_down_and_still_listed():
    status = refresher.Status(SERVERS, ('',), snapshot(
        unreadable={SERVERS[1]: 'timed out'}))
    _, families = scrape(status)
    assert samples(families['glance_progress_memcached_up']) == {
        (('server', SERVERS[0]),): 1, (('server', SERVERS[1]),): 0}


def test_before_the_first_read_every_server_is_down():
    _, families = scrape(refresher.Status(SERVERS, ('',)))
    assert set(samples(families['glance_progress_memcached_up']).values()) \
        == {0}
    assert 'glance_progress_refresh_age_seconds' not in families


def test_labels_from_memcached_are_escaped():
    hostile = 'x"} 1\nglance_progress_fake 2 #'
    status = refresher.Status(SERVERS, ('',), snapshot(
        view(hostile, 'uploading')))
    _, families = scrape(status)
    assert 'glance_progress_fake' not in families
    assert (('backend', ''), ('image_id', hostile)) in samples(
        families['glance_progress_upload_stored_bytes'])


def test_failures_counted_once_when_first_seen():
    reads = [
        snapshot(view('a', 'failed', reason='storage_full')),
        snapshot(view('a', 'failed', reason='storage_full'),
                 view('b', 'failed', reason='made up', backend='x')),
        snapshot(view('a', 'failed', reason='storage_full'),
                 view('a', 'failed', reason='storage_full', started=50.0)),
    ]
    reader = refresher.Refresher(lambda: reads.pop(0), SERVERS, ('',),
                                 interval=1, since=300)
    reader.refresh()
    assert reader.status.failures == {('', 'storage_full'): 1}
    reader.refresh()
    reader.refresh()  # a's retry failed too: a new record
    assert reader.status.failures == {('', 'storage_full'): 2,
                                      ('x', 'other'): 1}
    _, families = scrape(reader.status)
    assert families['glance_progress_upload_failures'].type == 'counter'
    assert samples(families['glance_progress_upload_failures'],
                   'glance_progress_upload_failures_total') == {
        (('backend', ''), ('reason', 'storage_full')): 2,
        (('backend', 'x'), ('reason', 'other')): 1}


def test_a_failed_read_keeps_the_last_snapshot_and_is_counted():
    def read():
        raise OSError('boom')

    reader = refresher.Refresher(read, SERVERS, ('',), 1, None)
    reader.status = refresher.Status(SERVERS, ('',), snapshot(
        view('a', 'uploading')), refreshes=1)
    reader.refresh()
    status = reader.status
    assert (status.refreshes, status.refresh_errors) == (1, 1)
    assert status.refresh_error == 'OSError: boom'
    assert len(status.snapshot.views) == 1
    _, families = scrape(status)
    assert set(samples(families['glance_progress_memcached_up']).values()) \
        == {0}


def test_list_and_the_page_show_one_order_what_needs_an_operator_first():
    # list prints discovery's snapshot as it is; so does the page: before,
    # the page sorted failed first and list stalled first.
    found = [view('u', 'uploading'), view('s', 'stored'),
             view('t', 'stalled'), view('f', 'failed', reason='source_error'),
             view('b', 'bad', bytes=None, total=None),
             view('o', 'uploading', started=500.0)]
    ordered = views.operator_order(found)
    assert [v.image_id for v in ordered] == ['t', 'f', 'b', 'o', 'u', 's']
    status = refresher.Status(SERVERS, ('',), snapshot(
        *ordered, unreadable={SERVERS[1]: 'refused'}))
    doc = json.loads(json.dumps(page.uploads_document(status, NOW + 1,
                                                      since=300)))
    assert [v['image_id'] for v in doc['views']] == [
        v.image_id for v in ordered]
    assert views.table(ordered).splitlines()[1].startswith('t ')
    assert doc['since_s'] == 300
    assert list(doc['views'][0]) == list(views.View.__dataclass_fields__)
    assert (doc['taken_at'], doc['now']) == (NOW, NOW + 1)
    assert doc['unreadable'] == {SERVERS[1]: 'refused'}


@pytest.mark.parametrize('text, expected', [
    ('127.0.0.1:9478', ('127.0.0.1', 9478)),
    ('[::1]:80', ('::1', 80)),
    ('localhost:0', ('localhost', 0)),
])
def test_parse_listen(text, expected):
    assert exporter.parse_listen(text) == expected


@pytest.mark.parametrize('text', ['', '9478', '127.0.0.1', ':9478',
                                  '1.2.3.4:70000', '::1:80', 'h:p'])
def test_parse_listen_refuses(text):
    with pytest.raises(ValueError):
        exporter.parse_listen(text)


DURATIONS = [('300', 300), ('45s', 45), ('10m', 600), ('2h', 7200),
             ('2H', 7200), ('1d', 86400), ('0', 0), ('1.5m', 90),
             ('.5h', 1800), (' 90S ', 90), ('3.', 3)]
NOT_DURATIONS = ['', 'soon', '1e3', '-1', 'nan', 'inf', '5 m m', '2w',
                 '1,5h', '٣', '²']


@pytest.mark.parametrize('text, seconds', DURATIONS)
def test_parse_duration(text, seconds):
    assert cli.parse_duration(text) == seconds


@pytest.mark.parametrize('text', NOT_DURATIONS)
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError):
        cli.parse_duration(text)


@pytest.mark.parametrize('text, seconds', DURATIONS)
def test_list_and_exporter_take_the_same_durations(text, seconds):
    # before, list took 2H and .5h and exporter refused them
    parser = cli.build_parser()
    listed = parser.parse_args(['list', '--since', text])
    served = parser.parse_args(['exporter', '--since', text])
    assert listed.since == served.since == seconds


def test_page_html_parses_without_an_error():
    # the page is package data of its own so that it lints as HTML
    import html5lib
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(page.PAGE)  # strict: the first parse error raises
    assert parser.errors == []
    assert page.STYLE.strip() and page.SCRIPT.strip()


def test_page_is_self_contained_and_never_uses_inner_html():
    html = page.PAGE.decode()
    for needle in ('<caption', 'scope="col"', 'aria-live="polite"',
                   'name="viewport"', 'progress'):
        assert needle in html
    for forbidden in ('innerHTML', 'outerHTML', 'insertAdjacentHTML',
                      'document.write', 'src="http', 'href="http', '//cdn'):
        assert forbidden not in html
    assert "default-src 'none'" in page.CSP
    assert page.CSP.count("'sha256-") == 2


def test_the_docs_metrics_table_is_every_family_with_its_type():
    """The admin guide's table is generated (doc/source/_extensions/
    exporter_metrics.py): it has every family a scrape serves, with the
    type and labels the scrape shows."""
    import pathlib
    import sys
    extensions = (pathlib.Path(__file__).resolve().parents[2] / 'doc' /
                  'source' / '_extensions')
    sys.path.insert(0, str(extensions))
    try:
        import exporter_metrics
    finally:
        sys.path.remove(str(extensions))
    documented = {name: (kind, labels)
                  for name, kind, labels, _ in exporter_metrics.rows()}
    status = exporter_metrics.sample_status()
    text, families = scrape(status, now=exporter_metrics.NOW)
    exposed = {}
    for family in families.values():
        suffix = '_total' if family.type == 'counter' else ''
        labels = sorted({label for sample in family.samples
                         for label in sample.labels})
        exposed[family.name + suffix] = (family.type, labels)
    assert documented == exposed


@pytest.mark.parametrize('argv', [
    ['--listen', 'nowhere'], ['--listen', '1.2.3.4:99999'],
    ['--refresh', '0'], ['--since', 'soon']])
def test_bad_options_are_one_line_and_exit_64(argv, capsys):
    from glance_progress_store.cmd import cli
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args(['exporter'] + argv)
    assert e.value.code == 64
    err = capsys.readouterr().err
    assert 'glance-progress exporter: error: argument' in err
    assert 'Traceback' not in err


def test_defaults_listen_on_loopback():
    from glance_progress_store.cmd import cli
    args = cli.build_parser().parse_args(['exporter'])
    assert args.listen == ('127.0.0.1', 9478)
    assert (args.refresh, args.since, args.stall_after) == (2.0, 300.0, 60.0)
