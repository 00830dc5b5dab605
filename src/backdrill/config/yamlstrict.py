"""The config file's YAML dialect: PyYAML's safe loader, closer to YAML 1.2.

- Only ``true`` and ``false`` (any of YAML 1.2's three spellings) are booleans: ``on``,
  ``off``, ``yes``, ``no``, ``y`` and ``n`` stay the strings they are, as keys and as
  values (YAML 1.1 would turn ``notify: {on: [failure]}`` into the key ``True``).
- A key repeated in one mapping is an error naming its key path and both lines, where
  PyYAML silently keeps the last.

Every problem is a :class:`YamlProblem` with a one-line message; the caller adds the
file name.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_YAML12_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class YamlProblem(Exception):
    """The text is not a valid config document; the message is one line."""


class StrictLoader(yaml.SafeLoader):
    """SafeLoader whose only booleans are true/false (see the module docstring)."""


StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver(_BOOL_TAG, _YAML12_BOOL, list("tTfF"))


def _key_label(node: Node) -> str:
    if isinstance(node, ScalarNode):
        return str(node.value)
    return f"<{type(node).__name__.removesuffix('Node').lower()} key>"


def _path_text(path: tuple[str, ...]) -> str:
    return " -> ".join(path) if path else "(top level)"


def _check_repeated_keys(root: Node) -> None:
    """Walk the composed document; raise YamlProblem at the first repeated key."""
    seen_nodes: set[int] = set()
    stack: list[tuple[Node, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:  # an alias: already checked (and maybe recursive)
            continue
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            first_line: dict[tuple[str, str], int] = {}
            children: list[tuple[Node, tuple[str, ...]]] = []
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    children.append((value_node, path))
                    continue
                label = _key_label(key_node)
                line = key_node.start_mark.line + 1
                if isinstance(key_node, ScalarNode):
                    ident = (key_node.tag, str(key_node.value))
                    if ident in first_line:
                        raise YamlProblem(
                            f"{_path_text((*path, label))}: key repeated at line {line} "
                            f"(first at line {first_line[ident]})"
                        )
                    first_line[ident] = line
                children.append((value_node, (*path, label)))
            stack.extend(reversed(children))
        elif isinstance(node, SequenceNode):
            stack.extend(
                (item, (*path, str(index))) for index, item in reversed(list(enumerate(node.value)))
            )


def load(text: str) -> Any:
    """Parse one YAML document with :class:`StrictLoader`; YamlProblem on any error."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_repeated_keys(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise YamlProblem(yaml_error_text(exc)) from None
    finally:
        loader.dispose()


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """Pure: ``invalid YAML at line L, column C: <problem>`` (where PyYAML knows it)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or "syntax error"
    return f"invalid YAML{where}: {problem}"
