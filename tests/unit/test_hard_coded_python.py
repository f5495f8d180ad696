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

"""No code names an interpreter version: it asks the interpreter.

Each Debian release has its own Python (Debian 12: 3.11, 13: 3.13, forky:
3.14), so a path or a command with a version in it works on one release
and breaks on the others: the test bed's Horizon named python3.11 for its
venv's site-packages and every Horizon test failed on Debian 13 (issue
23).  Code asks instead: ``sysconfig.get_paths()``, ``sys.version_info``,
or ``python3 tools/testbed python`` for the bindings' interpreter.

The rule, defined here only: in the files of the checkout, the words
HARD_CODED matches (python3.NN, py3.NN, cpython-3NN) appear only

* where versions are listed for people: documentation (ALLOWED_TREES,
  DOC_SUFFIXES), setup.cfg's classifiers and the tests that check those
  lists (ALLOWED_FILES);
* in comments (after a ``#`` on its line) and, in Python, docstrings:
  an example of a name, never a value the code uses.
"""

import io
import os
import pathlib
import re
import subprocess
import tokenize

ROOT = pathlib.Path(__file__).resolve().parents[2]
HARD_CODED = re.compile(r'\b(?:python|py)3\.\d\d\b|\bcpython-3\d\d\b', re.I)
ALLOWED_TREES = ('doc/', 'api-ref/', 'releasenotes/')
DOC_SUFFIXES = ('.rst', '.md')
ALLOWED_FILES = ('setup.cfg', 'tests/unit/test_python_versions.py')
# Not the checkout's files: what tools and tests make in it.
MADE_HERE = re.compile(r'(^|/)(\.[^/]+|__pycache__|build|dist|'
                       r'[^/]+\.egg-info)(/|$)')


def checkout_files():
    """The checkout's files, relative: git's tracked files, or, in a copy
    without history (the roots' copy, tools/testbed/roots.py), the files
    found there but those tools and tests made (MADE_HERE)."""
    if (ROOT / '.git').exists():
        out = subprocess.run(['git', '-C', str(ROOT), 'ls-files', '-z'],
                             capture_output=True, text=True, check=True)
        return [name for name in out.stdout.split('\0') if name]
    found = []
    for folder, dirs, files in os.walk(ROOT):
        rel = os.path.relpath(folder, ROOT)
        rel = '' if rel == '.' else rel + '/'
        dirs[:] = [d for d in dirs if not MADE_HERE.search(rel + d)]
        found += [rel + name for name in files
                  if not MADE_HERE.search(rel + name)]
    return found


def _docstring_lines(text):
    """Line numbers inside Python comments and docstrings (a string that
    is a statement of its own)."""
    lines = set()
    tokens = [tok for tok in tokenize.generate_tokens(
        io.StringIO(text).readline) if tok.type != tokenize.NL]
    starts = (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    previous = tokenize.NEWLINE
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.COMMENT:
            lines.add(tok.start[0])
            continue
        following = [t.type for t in tokens[i + 1:i + 3]
                     if t.type != tokenize.COMMENT]
        if (tok.type == tokenize.STRING and previous in starts
                and following[:1] == [tokenize.NEWLINE]):
            lines.update(range(tok.start[0], tok.end[0] + 1))
        previous = tok.type
    return lines


def hard_coded(name, text):
    """(line number, line) of each version the rule forbids in the file
    ``name`` (relative to the checkout) holding ``text``."""
    if (name.startswith(ALLOWED_TREES) or name.endswith(DOC_SUFFIXES)
            or name in ALLOWED_FILES):
        return []
    explained = _docstring_lines(text) if name.endswith('.py') else set()
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in HARD_CODED.finditer(line):
            comment = line.find('#')
            if number in explained or 0 <= comment < match.start():
                continue
            found.append((number, line.strip()))
            break
    return found


def test_no_code_names_an_interpreter_version():
    offenders = []
    for name in checkout_files():
        try:
            text = (ROOT / name).read_text()
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue  # binary files (the screenshot), removed files
        offenders += ['%s:%d: %s' % (name, number, line)
                      for number, line in hard_coded(name, text)]
    assert offenders == [], (
        'an interpreter version written in code (ask the interpreter: '
        'sysconfig, sys.version_info, `python3 tools/testbed python`):\n'
        + '\n'.join(offenders))


def test_the_rule_flags_code_and_spares_comments_and_docs():
    # The versions are made here, not written: this file is exempt anyway,
    # but the rule's own test must not depend on that.
    version = 'python3.' + '13'
    code = ('"""Module %s docstring."""\n'
            'import os  # e.g. %s\n'
            'def f():\n'
            '    """Uses %s."""\n'
            '    return os.path.join("lib", "%s")\n'
            % (version, version, version, version))
    assert hard_coded('tools/x.py', code) == [
        (5, 'return os.path.join("lib", "%s")' % version)]
    shell = '# runs %s\nexec %s -m pytest\n' % (version, version)
    assert hard_coded('tools/run-x', shell) == [
        (2, 'exec %s -m pytest' % version)]
    abi = 'rbd.c' + 'python-313-x86_64-linux-gnu.so'
    assert hard_coded('tools/testbed/x.py', 'P = "%s"\n' % abi) == [
        (1, 'P = "%s"' % abi)]
    assert hard_coded('doc/source/x.rst', version) == []
    assert hard_coded('README.md', version) == []
