"""YAML with line numbers: every mapping key and sequence item remembers its line, so each
config problem names `file:line: dotted.key`. Also `${VAR}` expansion and `--set` overrides."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.config.checks import Checker
from pipeline.config.model import ConfigError

ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Loader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item."""


def compose(text: str, file: Path) -> tuple[Any, dict[str, int]]:
    lines: dict[str, int] = {}
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    if node is None:
        return None, lines

    def build(n: yaml.Node, path: str) -> Any:
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for k, v in n.value:
                key = _Loader.construct_scalar(loader, k) if isinstance(k, yaml.ScalarNode) else str(k)
                sub = f"{path}.{key}" if path else str(key)
                lines[sub] = k.start_mark.line + 1
                if key in out:
                    raise ConfigError(file, [(sub, k.start_mark.line + 1, "duplicate key")])
                out[key] = build(v, sub)
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(v, f"{path}[{i}]") for i, v in enumerate(n.value)]
        return loader.construct_object(n, deep=True)

    return build(node, ""), lines


def expand_env(value: Any, problems: list[tuple[str, str]], path: str) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                problems.append((path, f"environment variable ${{{name}}} is not set"))
                return ""
            return os.environ[name]
        expanded = ENV_RE.sub(sub, value)
        if "\x00" in expanded:   # no path, URL or name may hold one (the OS refuses such paths)
            problems.append((path, "contains a NUL character"))
            return expanded.replace("\x00", "")
        return expanded
    if isinstance(value, dict):
        return {k: expand_env(v, problems, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, problems, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def line_for(lines: dict[str, int], path: str) -> int | None:
    """The line of the key, or of its nearest enclosing key that exists."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            path = ""
        else:
            path = path[:cut]
    return lines.get("")


def apply_override(raw: dict[str, Any], item: str, chk: Checker) -> None:
    """`--set a.b.c=value`: value parsed as YAML (so numbers and lists work)."""
    if "=" not in item:
        chk.err(item, "--set expects key.path=value")
        return
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    node: Any = raw
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            chk.err(key, f"--set cannot descend into {part!r}")
            return
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = parsed
    elif isinstance(node, dict):
        node[last] = parsed
    else:
        chk.err(key, f"--set cannot set {last!r} here")
