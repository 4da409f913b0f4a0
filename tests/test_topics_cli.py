"""`mediamon topics test --labelled` and `mediamon topics suggest`, and the pack's F1 floor on
the real labelled dev set (../shared/corpus/topics-dev, skipped when absent)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "configs" / "topics" / "syria-2017.yaml"
DEV = ROOT.parent / "shared" / "corpus" / "topics-dev" / "labelled.jsonl"

CONFIG = """
name: t
topics:
  - id: raqqa
    query: 'الرقة OR Raqqa'
  - id: siege
    query: 'siege OR حصار'
"""


def write(tmp_path: Path, rows: list[object]) -> tuple[Path, Path]:
    cfg = tmp_path / "t.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    labelled = tmp_path / "l.jsonl"
    labelled.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False))
                                + "\n" for r in rows), encoding="utf-8")
    return cfg, labelled


ROWS = [
    {"title": "معارك في الرقة", "summary": "", "topics": ["raqqa"], "language": "ar"},
    {"title": "Raqqa sieges", "summary": "", "topics": ["raqqa", "siege"], "language": "en"},
    {"title": "ورقة بحثية", "summary": "", "topics": [], "language": "ar"},
    {"title": "Qatar siege", "summary": "", "topics": [], "language": "en"},      # false hit
    {"title": "Rakka'da çatışma", "summary": "", "topics": ["raqqa"], "language": "tr"},  # miss
]


def test_scores_per_topic_and_language_and_lists_errors(tmp_path: Path, capsys) -> None:
    cfg, labelled = write(tmp_path, ROWS)
    assert main(["topics", "test", str(cfg), "--labelled", str(labelled)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["raqqa"] == ["2", "0", "1", "1.00", "0.67", "0.80"]
    assert rows["siege"] == ["1", "1", "0", "0.50", "1.00", "0.67"]
    assert rows["tr"] == ["0", "0", "1", "-", "0.00", "0.00"]
    assert f"MISS raqqa {labelled}:5 [tr]" in out and "Rakka'da çatışma" in out
    assert f"FALSE HIT siege {labelled}:4 [en] labels=- matched: siege -> siege" in out


def test_min_f1_and_json(tmp_path: Path, capsys) -> None:
    cfg, labelled = write(tmp_path, ROWS)
    assert main(["topics", "test", str(cfg), "--labelled", str(labelled), "--min-f1", "0.9"]) == 1
    assert "lowest F1 0.000 < --min-f1 0.9" in capsys.readouterr().out
    assert main(["topics", "test", str(cfg), "--labelled", str(labelled), "--json",
                 "--min-f1", "0.5"]) == 1       # the Turkish column has F1 0
    record = json.loads(capsys.readouterr().out)
    assert record["ok"] is False and record["items"] == 5
    assert record["topics"]["raqqa"]["recall"] == pytest.approx(2 / 3)
    assert record["languages"]["ar"] == {"tp": 1, "fp": 0, "fn": 0, "precision": 1.0,
                                         "recall": 1.0, "f1": 1.0}
    (miss,) = [e for e in record["errors"] if e["kind"] == "miss"]
    assert miss["where"].endswith("l.jsonl:5") and miss["topic"] == "raqqa"


@pytest.mark.parametrize("bad,message", [
    ("{not json", "l.jsonl:2: not JSON"),
    ('{"title": "x", "topics": ["nope"]}', "l.jsonl:2: unknown topic id(s) nope"),
    ('{"title": "x"}', "l.jsonl:2: no labels"),
    ('{"title": "x", "topics": "raqqa"}', "l.jsonl:2: \"topics\" must be a list"),
])
def test_bad_labelled_file_exits_2_naming_the_line(tmp_path: Path, capsys, bad: str,
                                                  message: str) -> None:
    cfg, labelled = write(tmp_path, [ROWS[0], bad])
    for command in ("test", "suggest"):
        assert main(["topics", command, str(cfg), "--labelled", str(labelled)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_empty_labelled_file_exits_2(tmp_path: Path, capsys) -> None:
    cfg, labelled = write(tmp_path, [])
    assert main(["topics", "test", str(cfg), "--labelled", str(labelled)]) == 2
    assert "no labelled items" in capsys.readouterr().err


def test_suggest_names_missing_words_and_noisy_terms(tmp_path: Path, capsys) -> None:
    rows = ROWS + [
        {"title": "Rakka'da çatışmalar sürüyor", "summary": "", "topics": ["raqqa"],
         "language": "tr"},
        {"title": "Qatar siege deepens", "summary": "", "topics": [], "language": "en"},
    ]
    cfg, labelled = write(tmp_path, rows)
    assert main(["topics", "suggest", str(cfg), "--labelled", str(labelled), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    raqqa = found["raqqa"]
    assert raqqa["misses"] == 2
    tr_terms = {r["term"]: r["in"] for r in raqqa["add"]["tr"]}
    assert tr_terms["rakka"] == 2                  # in both misses, in no other Turkish item
    siege = found["siege"]
    assert siege["false_hits"] == 2
    assert siege["noisy_terms"] == [{"term": "siege", "false_hits": 2, "true_hits": 1}]
    assert any(r["term"] == "qatar" for r in siege["exclude"])
    assert main(["topics", "suggest", str(cfg), "--labelled", str(labelled),
                 "--topic", "siege"]) == 0
    text = capsys.readouterr().out
    assert "== siege: 0 missed, 2 false hits" in text and "== raqqa" not in text
    assert main(["topics", "suggest", str(cfg), "--labelled", str(labelled),
                 "--topic", "nope"]) == 2


def test_pack_holds_on_the_real_dev_set(capsys) -> None:
    """The floor the issue asks for: micro F1 >= 0.90, every topic and language >= 0.85."""
    if not DEV.exists():
        pytest.skip(f"corpus absent: {DEV}")
    assert main(["topics", "test", str(PACK), "--labelled", str(DEV), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["items"] >= 450
    assert record["overall"]["f1"] >= 0.90, record["overall"]
    for group in ("topics", "languages"):
        for name, score in record[group].items():
            assert score["f1"] >= 0.85, (group, name, score)
