"""Load a mediamon YAML config into a frozen `Config`, strictly.

Every problem is reported at once, each with its dotted key path and YAML line:
unknown keys, wrong types, bad durations, malformed topic queries, cross-field rules.
`${VAR}` is expanded in string values; relative paths resolve against the config's folder;
`include: [file, ...]` merges topic packs (topics, keywords, variants) from other files.
Each section is read by its own function in sections.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.config import sections
from pipeline.config.checks import Checker, resolve_path
from pipeline.config.model import Config, ConfigError
from pipeline.config.yaml_lines import apply_override, compose, expand_env, line_for

TOP_KEYS = {"name", "sources", "language", "topics", "keywords", "variants", "windows", "state",
            "sinks", "fetch", "dedup", "poll", "alerts", "beam_options", "include", "stories"}
PACK_KEYS = ("topics", "keywords", "variants")


def _read(file: Path) -> tuple[Any, dict[str, int]]:
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(file, [("", None, f"cannot read config: {exc.strerror or exc}")]) from None
    if file.is_dir():
        raise ConfigError(file, [("", None, "cannot read config: it is a directory")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(file, [("", line, f"not UTF-8: byte 0x{data[exc.start]:02x} at column "
                                  f"{column}; save the file as UTF-8")]) from None
    try:
        return compose(text, file)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(file, [("", mark.line + 1 if mark else None, f"invalid YAML: {exc}")]) from None


def _include_packs(chk: Checker, top: dict[str, Any], base: Path, chain: tuple[Path, ...]) -> None:
    """`include:` files: their topics, keywords and variants join this config's (theirs first).
    `chain` is the files being loaded that led here, to refuse a cycle."""
    includes = top.get("include")
    if includes is not None and not isinstance(includes, list):
        chk.err("include", f"expected a list of file paths, e.g. [topics/pack.yaml], got {includes!r}")
        includes = None
    for i, inc in enumerate(includes or []):
        ipath = f"include[{i}]"
        if not isinstance(inc, str) or not inc:
            chk.err(ipath, "expected a file path")
            continue
        target = resolve_path(base, inc)
        if target in chain:
            cycle = " -> ".join(p.name for p in (*chain[chain.index(target):], target))
            chk.err(ipath, f"the config includes itself ({cycle})")
            continue
        try:
            load_config(target, _chain=chain)
        except ConfigError as exc:
            chk.err(ipath, "included file is invalid:\n  " + "\n  ".join(exc.lines()))
            continue
        sub_raw, _ = compose(target.read_text(encoding="utf-8"), target)
        for key in PACK_KEYS:
            extra = (sub_raw or {}).get(key) or []
            if extra:
                top[key] = list(extra) + list(top.get(key) or []) if key != "variants" or isinstance(extra, list) else extra


def load_config(path: str | Path, overrides: list[str] | None = None, *,
                _chain: tuple[Path, ...] = ()) -> Config:
    """Load and validate; raise ConfigError listing every problem with its line."""
    file = Path(path).resolve()
    chain = (*_chain, file)
    raw, lines = _read(file)
    if raw is None:
        raw = {}
    chk = Checker()
    if not isinstance(raw, dict):
        raise ConfigError(file, [("", 1, "a config must be a YAML mapping")])
    for item in overrides or []:
        apply_override(raw, item, chk)
    raw = expand_env(raw, chk.problems, "")
    base = file.parent
    top = chk.mapping(raw, "", TOP_KEYS)
    _include_packs(chk, top, base, chain)

    name = top.get("name") or file.stem
    if not isinstance(name, str):
        chk.err("name", "expected a string")
        name = file.stem
    topics, keywords, variants = sections.topic_pack(chk, top)
    windows = sections.windows(chk, top.get("windows"))
    alerts, webhook = sections.alerts(chk, top.get("alerts"), topics, windows)
    config = Config(
        name=name, file=file,
        sources=sections.sources(chk, top.get("sources"), base),
        language=sections.language(chk, top.get("language")),
        topics=topics, keywords=keywords, variants=variants, windows=windows,
        state=sections.state(chk, top.get("state"), base),
        sinks=sections.sinks(chk, top.get("sinks"), base),
        fetch=sections.fetch(chk, top.get("fetch")),
        dedup=sections.dedup(chk, top.get("dedup")),
        poll=sections.poll(chk, top.get("poll"), base),
        alerts=alerts, webhook=webhook,
        beam_options=sections.beam_options(chk, top.get("beam_options")),
        stories=sections.stories(chk, top.get("stories")))
    if chk.problems:
        raise ConfigError(file, [(p, line_for(lines, p), m) for p, m in chk.problems])
    return config
