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

"""The commands' own parsers, with their help text made safe for rST.

argparse help is plain text laid out for a terminal (the exit codes are
an indented table, file patterns have ``*``); sphinx-argparse and cliff's
``autoprogram-cliff`` read it as reStructuredText. Each help text is
escaped here, and one with several lines becomes a line block, so that
the built pages show it as ``--help`` does, without warnings.
"""

import argparse
import re

_SPECIAL = re.compile(r'([\\*`|])')
_TRAILING_UNDERSCORE = re.compile(r'(\w)_(?=\W|$)')


def rst_text(text):
    """Plain text as reStructuredText that renders the same."""
    if not text or text == argparse.SUPPRESS:
        return text
    lines = []
    for line in text.strip('\n').split('\n'):
        line = _SPECIAL.sub(r'\\\1', line)
        lines.append(_TRAILING_UNDERSCORE.sub(r'\1\\_', line))
    if len(lines) == 1:
        return lines[0]
    return '\n'.join(('| ' + line) if line.strip() else '|'
                     for line in lines)


def _escape_parser(parser, seen):
    if id(parser) in seen:
        return
    seen.add(id(parser))
    parser.description = rst_text(parser.description)
    parser.epilog = rst_text(parser.epilog)
    for action in parser._actions:
        action.help = rst_text(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = rst_text(choice.help)
            for sub in action.choices.values():
                _escape_parser(sub, seen)


def glance_progress():
    """``glance-progress``'s parser (for ``.. argparse::``)."""
    from glance_progress_store.cmd import cli
    parser = cli.build_parser()
    _escape_parser(parser, set())
    return parser


def _escaping(format_action):
    def wrapper(action, *args, **kwargs):
        action.help = rst_text(action.help)
        return format_action(action, *args, **kwargs)
    return wrapper


def setup(app):
    # autoprogram-cliff builds each command's parser itself: escape the
    # help of every argument as it is formatted.
    from cliff import sphinxext
    for name in ('_format_optional_action', '_format_positional_action'):
        if hasattr(sphinxext, name):
            setattr(sphinxext, name, _escaping(getattr(sphinxext, name)))
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
