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

"""Every place the code's text points a reader to exists.

Operators follow the package's help texts and comments, and maintainers
follow the tools' and tests'; files and sections move. Read here: the
package's strings and comments, the tools', and the tests' comments and
docstrings (their other strings are test data), with every JS, HTML and
shell file of those trees. Checked:

* repository paths (``doc/...``, ``etc/...``, ``tests/...``, ...) exist,
  a glob matches at least one file;
* dotted names ``glance_progress_store.x.y`` are a module, or a name
  defined in one (a class's too);
* a quoted section after a README, ``.rst`` or ``.md`` path is a title
  of that file;
* the package never sends a reader to README: it is not installed with
  the package (the documentation pages are published).
"""

import ast
import io
import pathlib
import re
import tokenize

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = 'glance_progress_store'
TREES = (PACKAGE, 'tools', 'tests')
TEXT_SUFFIXES = ('.js', '.html', '.scss', '.sh')

_PATH = re.compile(r'(?<![\w./~$-])((?:doc|etc|tools|tests|api-ref|'
                   r'releasenotes|%s|\.ci)/[\w./*-]*[\w*/])' % PACKAGE)
_DOTTED = re.compile(r'(?<![\w./-])(%s(?:\.\w+)+)' % PACKAGE)
# a document, then (in the same sentence) the quoted title of a section
_SECTION = re.compile(
    r'(README(?:\.md)?|(?<![\w./-])(?:doc|api-ref)/[\w./-]+\.(?:rst|md))'
    r'''[^."“'\n]{0,40}\n?[#*/ ]*[^."“'\n]{0,40}'''
    r'''["“']([A-Z][^"”'\n]*(?:\n[#*/ ]*[^"”'\n]+)?)["”']''')
# a line break inside a comment or docstring: one space
_BREAK = re.compile(r'\s*\n[#*/ ]*')
_README = re.compile(r'\bREADME\b')
_THIS = pathlib.Path(__file__).resolve()


def _python_text(path, everything):
    """Comments and docstrings of a module, and its other strings too
    with ``everything``."""
    source = path.read_text()
    parts = [token.string for token in
             tokenize.generate_tokens(io.StringIO(source).readline)
             if token.type == tokenize.COMMENT or (
                 everything and token.type == tokenize.STRING)]
    if not everything:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
                parts.append(ast.get_docstring(node, clean=False) or '')
    return '\n'.join(parts)


def _is_script(path):
    with open(path, 'rb') as f:
        return f.read(2) == b'#!'


def texts():
    """{repository path: the text read from it}."""
    found = {}
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob('*')):
            if not path.is_file() or '__pycache__' in path.parts or (
                    path == _THIS):
                continue
            name = path.relative_to(ROOT).as_posix()
            if path.suffix == '.py':
                found[name] = _python_text(path, tree != 'tests')
            elif path.suffix in TEXT_SUFFIXES or (
                    not path.suffix and _is_script(path)):
                found[name] = path.read_text()
    return found


def _titles(path):
    """The section titles of a Markdown or reStructuredText file."""
    lines = path.read_text().splitlines()
    titles = {m.group(1).strip() for m in
              (re.match(r'#+ (.+)', line) for line in lines) if m}
    for title, under in zip(lines, lines[1:]):
        if title.strip() and re.fullmatch(r'([=\-~^"#*+])\1{2,}', under):
            titles.add(title.strip())
    return titles


def _defines(tree, name):
    """The node that defines ``name`` at the top of ``tree``'s body."""
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef,
                             ast.AsyncFunctionDef)) and node.name == name:
            return node
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return node
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (alias.asname or alias.name) == name
                for alias in node.names):
            return node
    return None


def _resolves(dotted):
    """Whether ``a.b.c`` is a module of the checkout or a name in one."""
    parts = dotted.split('.')
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        module = next((p for p in (base.with_suffix('.py'),
                                   base / '__init__.py') if p.is_file()),
                      None)
        if module is None:
            continue
        node = ast.parse(module.read_text())
        for name in parts[cut:]:
            node = _defines(node, name) if hasattr(node, 'body') else None
            if node is None:
                return False
        return True
    return False


def _path_exists(path):
    path = path.rstrip('/')
    if '*' in path:
        return any(ROOT.glob(path))
    return (ROOT / path).exists()


def broken_pointers(found):
    """['file: what is wrong'] for the texts ``found`` (see texts())."""
    broken = []
    for name, text in sorted(found.items()):
        for path in sorted(set(_PATH.findall(text))):
            if not _path_exists(path):
                broken.append('%s: no %s' % (name, path))
        for dotted in sorted(set(_DOTTED.findall(text))):
            if not _resolves(dotted.rstrip('.')):
                broken.append('%s: no module or name %s' % (name, dotted))
        for document, title in _SECTION.findall(text):
            title = _BREAK.sub(' ', title).strip()
            path = ROOT / ('README.md' if document.startswith('README')
                           else document)
            if path.is_file() and title not in _titles(path):
                broken.append('%s: %s has no section %r'
                              % (name, document, title))
        if name.startswith(PACKAGE + '/') and _README.search(text):
            broken.append('%s: names README, which is not installed with '
                          'the package: point to the documentation'
                          % name)
    return broken


def test_every_pointer_of_the_code_exists():
    found = texts()
    assert len(found) > 150  # the three trees were read
    assert broken_pointers(found) == []


def test_the_checks_catch_what_moved():
    """Each kind of pointer, as it was before it was fixed."""
    assert broken_pointers({
        'tests/horizon/karma.conf.js':
            '// Run by tests/e2e/test_horizon_karma.py\n',
        'tools/testbed/horizon.py':
            'Installed as README tells operators ("The progress bar in\n'
            'Horizon"):\n',
        'glance_progress_store/read/discovery.py':
            ':mod:`glance_progress_store.upload.index` says who writes',
        'glance_progress_store/cmd/exporter/__init__.py':
            '/metrics   Prometheus text format (metric names: README)',
    }) == [
        'glance_progress_store/cmd/exporter/__init__.py: names README, '
        'which is not installed with the package: point to the '
        'documentation',
        'glance_progress_store/read/discovery.py: no module or name '
        'glance_progress_store.upload.index',
        'tests/horizon/karma.conf.js: no tests/e2e/test_horizon_karma.py',
        "tools/testbed/horizon.py: README has no section 'The progress "
        "bar in Horizon'",
    ]
    assert broken_pointers({
        'tools/x.py': 'see doc/source/install/horizon.rst, "Installing"; '
                      'glance_progress_store.osc.http.ProgressClient.'
                      'find_image, tests/e2e/test_horizon*.py',
    }) == []
