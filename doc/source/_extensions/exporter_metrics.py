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

"""``.. exporter-metrics::``: the exporter's metrics table, generated.

The table is built by calling
:func:`glance_progress_store.cmd.exporter.metrics.metric_families` on a
sample status in which every family has samples (an upload of each
state, a failure, a refresh), so each row is a family the exporter
serves, with the name a scrape shows (counters with ``_total``), its
type, its labels and its HELP text.
"""

from docutils import nodes
from docutils.parsers.rst import Directive

NOW = 1_800_000_000.0


def sample_status():
    from glance_progress_store.cmd.exporter import refresher
    from glance_progress_store.read import discovery
    from glance_progress_store.read import views

    def view(image_id, state, reason=None):
        return views.View(image_id, None, state, 10, 100, 10.0, 5.0, 18.0,
                          1.0, NOW - 100.0, NOW - 1.0, reason)

    snapshot = discovery.Snapshot(
        taken_at=NOW, views=(view('a', 'uploading'),
                             view('b', 'failed', reason='storage_full')),
        unreadable={})
    return refresher.Status(('127.0.0.1:11211',), ('',), snapshot,
                            failures={('', 'storage_full'): 1},
                            refreshes=1, refresh_duration_s=0.1)


def rows():
    """(name as scraped, type, labels, help) of every metric family."""
    from glance_progress_store.cmd.exporter import metrics
    found = []
    for family in metrics.metric_families(sample_status(), NOW):
        labels = sorted({label for sample in family.samples
                         for label in sample.labels})
        name = family.name + ('_total' if family.type == 'counter' else '')
        found.append((name, family.type, labels, family.documentation))
    return found


def _cell(*children):
    entry = nodes.entry()
    entry += nodes.paragraph('', '', *children)
    return entry


class ExporterMetrics(Directive):
    has_content = False

    def run(self):
        table = nodes.table(classes=['exporter-metrics'])
        group = nodes.tgroup(cols=4)
        table += group
        for width in (30, 8, 16, 46):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        row = nodes.row()
        for title in ('metric', 'type', 'labels', 'meaning (its HELP)'):
            row += _cell(nodes.Text(title))
        head += row
        body = nodes.tbody()
        group += body
        for name, kind, labels, help_text in rows():
            row = nodes.row(ids=[nodes.make_id('metric-' + name)])
            row += _cell(nodes.literal(name, name))
            row += _cell(nodes.Text(kind))
            labels_cell = []
            for n, label in enumerate(labels):
                if n:
                    labels_cell.append(nodes.Text(', '))
                labels_cell.append(nodes.literal(label, label))
            row += _cell(*labels_cell)
            row += _cell(nodes.Text(help_text))
            body += row
        return [table]


def setup(app):
    app.add_directive('exporter-metrics', ExporterMetrics)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
