"""Issue 14: every config mistake is exit 2 naming the line and the key; never a traceback,
never silently accepted."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import ConfigError, load_config

BASE = """name: x
sources:
  jsonl: items.jsonl
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def exits_2_naming(path: Path, key: str, line: int | None, capsys: pytest.CaptureFixture[str],
                   words: str) -> None:
    """`mediamon validate` exits 2 and prints `file:line: key: ...words...`."""
    assert main(["validate", str(path)]) == 2
    out = capsys.readouterr().out
    where = f"{path.name}:{line}: {key}:" if line else f"{path.name}: "
    assert where in out, out
    assert words in out, out
    assert main(["run", str(path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("key, value, words", [
    ("fetch.timeout", "-5s", "duration"),
    ("fetch.timeout", ".nan", "duration"),
    ("fetch.timeout", ".inf", "duration"),
    ("fetch.timeout", "-3", "duration"),
    ("fetch.timeout", "0s", "must be more than 0"),
    ("fetch.deadline", "-1m", "duration"),
    ("fetch.deadline", "0s", "must be more than 0"),
    ("fetch.backoff_base", ".nan", "duration"),
    ("state.wait_timeout", "-10m", "duration"),
    ("windows.size", "0s", "must be more than 0"),
    ("windows.size", ".inf", "duration"),
    ("windows.allowed_lateness", "-1h", "duration"),
    ("windows.period", "0s", "must be more than 0"),
    ("dedup.ttl", "0s", "must be more than 0"),
])
def test_negative_nan_infinite_and_zero_durations(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  key: str, value: str, words: str) -> None:
    section, field = key.split(".")
    extra = "  size: 1h\n" if section == "windows" and field == "period" else ""
    path = write(tmp_path, BASE + f"{section}:\n{extra}  {field}: {value}\n")
    line = 6 if extra else 5
    exits_2_naming(path, key, line, capsys, words)


def test_a_config_that_includes_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE + "include: [c.yaml]\n")
    exits_2_naming(path, "include[0]", 4, capsys, "includes itself")
    other = write(tmp_path, "include: [c.yaml]\n", "other.yaml")
    write(tmp_path, BASE + "include: [other.yaml]\n")       # a cycle through another file
    assert any("includes itself" in m for _, _, m in problems(other))


def test_include_given_a_string_or_a_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "topics: [{id: t, query: Raqqa}]\n", "pack.yaml")
    path = write(tmp_path, BASE + "include: pack.yaml\n")
    exits_2_naming(path, "include", 4, capsys, "expected a list of file paths")
    assert any(k == "include" for k, _, _ in problems(write(tmp_path, BASE + "include: 1\n")))


def test_a_config_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(BASE.encode() + "name2: caf\u00e9\n".encode("latin-1"))
    assert main(["validate", str(path)]) == 2
    out = capsys.readouterr().out
    assert "c.yaml:4:" in out and "not UTF-8" in out, out
    pack = tmp_path / "pack.yaml"
    pack.write_bytes("topics: [{id: t, query: caf\u00e9}]\n".encode("latin-1"))
    inc = write(tmp_path, BASE + "include: [pack.yaml]\n", "inc.yaml")
    assert any(k == "include[0]" and "not UTF-8" in m for k, _, m in problems(inc))


@pytest.mark.parametrize("section", ["state", "sink"])
def test_a_state_or_sink_path_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  section: str) -> None:
    (tmp_path / "out").mkdir()
    if section == "state":
        path = write(tmp_path, BASE + "state: {path: out}\n")
        exits_2_naming(path, "state.path", 4, capsys, "is a directory")
    else:
        path = write(tmp_path, BASE + "sinks:\n  - {type: jsonl, path: out, what: articles}\n")
        exits_2_naming(path, "sinks[0].path", 5, capsys, "is a directory")


def test_an_unknown_beam_runner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE + "beam_options: {runner: TurboRunner}\n")
    exits_2_naming(path, "beam_options.runner", 4, capsys, "unknown Beam runner")
    for ok in ("DirectRunner", "FnApiRunner", "PrismRunner", "DataflowRunner", "direct",
               "mypackage.runners.MyRunner"):
        load_config(write(tmp_path, BASE + f"beam_options: {{runner: {ok}}}\n", "ok.yaml"))


def test_known_runner_names_match_beam() -> None:
    from apache_beam.runners import runner as beam_runner
    from pipeline.config.sections import KNOWN_RUNNERS
    assert KNOWN_RUNNERS == frozenset(beam_runner._RUNNER_MAP)


def test_two_sinks_with_one_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE + "sinks:\n  - {type: jsonl, path: a.jsonl, what: articles, name: out}\n"
                 "  - {type: csv, path: b.csv, what: counts, name: out}\n")
    exits_2_naming(path, "sinks[1].name", 6, capsys, "same name as sinks[0]")
