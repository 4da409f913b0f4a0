"""Config loading and validation (pipeline/config.py) and the `validate` command."""
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import ConfigError, load_config
from transforms.timeutil import parse_duration

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_config_validates(path: Path) -> None:
    load_config(path)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value.problems


def test_unknown_keys_name_dotted_path_and_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "name: x\nsources:\n  jsonl: a.jsonl\n  feedz: []\nwindows:\n  sise: 1h\n")
    assert ("sources.feedz", 4) in [(k, line) for k, line, _ in found]
    assert ("windows.sise", 6) in [(k, line) for k, line, _ in found]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, """
sources: {jsonl: a.jsonl}
windows: {size: 5 minutes}
sinks:
  - {type: parquet, path: x, what: articles}
  - {type: jsonl, what: counts}
  - {type: pubsub, what: counts, topic: not-a-topic}
""")
    keys = {k for k, _, _ in found}
    assert {"windows.size", "sinks[0].type", "sinks[1].path", "sinks[2].topic"} <= keys


def test_malformed_query_names_topic_and_position(tmp_path: Path) -> None:
    found = problems(tmp_path, "topics:\n  - id: t1\n    query: '(Raqqa AND'\n")
    key, line, message = found[0]
    assert key.startswith("topics[0]") and line == 3
    assert "t1" in message and "position" in message


def test_env_vars_durations_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MM_OUT", "results")
    config = load_config(write(tmp_path, """
sources:
  jsonl: data/items.jsonl
windows: {size: 15m, period: 5m, allowed_lateness: 2d}
sinks:
  - {type: jsonl, path: "${MM_OUT}/a.jsonl", what: articles}
"""))
    assert config.sources.jsonl == ((tmp_path / "data" / "items.jsonl").resolve(),)
    assert config.sinks[0].path == (tmp_path / "results" / "a.jsonl").resolve()
    assert (config.windows.size, config.windows.period, config.windows.allowed_lateness) == (900, 300, 172800)


def test_missing_env_var_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MM_NOPE", raising=False)
    found = problems(tmp_path, "sinks:\n  - {type: jsonl, path: '${MM_NOPE}/a', what: articles}\n")
    assert any("MM_NOPE" in m for _, _, m in found)


def test_pubsub_needs_exactly_one_of_subscription_or_topic(tmp_path: Path) -> None:
    found = problems(tmp_path, "sources:\n  pubsub: {}\n")
    assert any(k == "sources.pubsub" for k, _, _ in found)


def test_set_overrides_values(tmp_path: Path) -> None:
    path = write(tmp_path, "windows: {size: 1h}\n")
    assert load_config(path, overrides=["windows.size=15m"]).windows.size == 900


def test_durations() -> None:
    assert parse_duration("90s") == 90 and parse_duration("2d") == 172800 and parse_duration(30) == 30
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_validate_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(CONFIGS / "demo.yaml")]) == 0
    assert capsys.readouterr().out.strip() == "ok"
    bad = write(tmp_path, "name: x\nbogus: 1\n")
    assert main(["validate", str(bad)]) == 2
    assert "c.yaml:2: bogus: unknown key" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert main(["run"]) == 2  # usage error


def test_pubsub_names_need_a_real_project_id(tmp_path: Path) -> None:
    found = problems(tmp_path, "sources:\n  pubsub: {subscription: projects/e2e/subscriptions/items}\n")
    assert any(k == "sources.pubsub.subscription" and "project id" in m for k, _, m in found)
    ok = write(tmp_path, "sources:\n  pubsub: {subscription: projects/mediamon-demo/subscriptions/items}\n")
    assert load_config(ok).sources.pubsub is not None


def test_file_sink_urls_are_refused_not_written_locally(tmp_path: Path) -> None:
    found = problems(tmp_path, "sinks:\n  - {type: jsonl, path: 'gs://bucket/a.jsonl', what: articles}\n")
    assert any(k == "sinks[0].path" and "URL" in m for k, _, m in found)
