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

"""Sphinx configuration of doc/source (tox -e docs).

The option reference, both command references and the exporter's
metrics table are generated from the code at build time, so the built
pages cannot drift from what the package does.
"""

import importlib.metadata
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '_extensions'))

extensions = [
    # The configuration reference: .. show-options:: glance_progress_store
    'oslo_config.sphinxext',
    # glance-progress (argparse): .. argparse::
    'sphinxarg.ext',
    # openstack image progress (cliff): .. autoprogram-cliff::
    'cliff.sphinxext',
    # The exporter's metric families: .. exporter-metrics::
    'exporter_metrics',
    # The commands' help text, escaped for rST (both command references)
    'cli_parsers',
]
try:
    import openstackdocstheme  # noqa: F401
    extensions.append('openstackdocstheme')
    html_theme = 'openstackdocs'
except ImportError:  # the documentation builds with Sphinx's own theme
    html_theme = 'alabaster'

project = 'glance_progress_store'
copyright = 'glance_progress_store maintainers'
release = importlib.metadata.version('glance_progress_store')
version = release
master_doc = 'index'
exclude_patterns = []
pygments_style = 'native'
# Option names (--since) and quotes stay as typed.
smartquotes = False
# Paths in the text (rbd://FSID/POOL/IMAGE/snap) are not links.
linkcheck_ignore = [r'.*']

# openstackdocstheme: no pbr here, and the version is the package's.
openstackdocs_repo_name = 'glance_progress_store'
openstackdocs_auto_name = False
openstackdocs_auto_version = False
openstackdocs_use_storyboard = False
openstackdocs_bug_project = 'glance_progress_store'
openstackdocs_bug_tag = 'doc'

# The OpenStackClient plugin's commands, as osc-placement documents its
# own; the formatter options every command shares are left out.
autoprogram_cliff_application = 'openstack'
autoprogram_cliff_ignored = [
    '--help', '--format', '--column', '--max-width', '--fit-width',
    '--print-empty', '--prefix', '--noindent', '--quote', '--sort-column',
    '--sort-ascending', '--sort-descending']
