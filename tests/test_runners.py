"""Portability: the demo config gives the same records on every runner we can run here.

The default runner (FnApiRunner) is the reference; the portable runner (embedded job server,
LOOPBACK workers, staging `setup.py` with `--setup_file`) and the multi-processing direct runner
must write the same articles (without `fetched`, a read time), counts, topics and dead letters
(without `at`).  Apache Flink runs when the job-server jar is present (see benchmarks/README.md:
Maven Central serves none for our Beam version, so that test is skipped until one can be had).
`setup.py` must build a source distribution holding both packages, as `--setup_file` needs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo.yaml"
FILES = ["articles", "counts", "topics", "dead_letters"]
FLINK_JAR = os.environ.get("MEDIAMON_FLINK_JOB_SERVER_JAR", "")

PORTABLE = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK",
            f"--setup_file={ROOT / 'setup.py'}"]
MULTI_PROCESSING = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]

# `mediamon run` with the driver's read clock pinned: which copy of a syndicated story wins
# depends on when each feed was read (earliest fetched), and concurrent reads of the demo feeds
# can straddle a second boundary, which would make two runs differ whatever the runner.
PINNED_RUN = ("import sys; import pipeline.feeds.fetch, pipeline.feeds.documents, pipeline.io.sources; "
              "pipeline.feeds.fetch._now_iso = pipeline.feeds.documents.now_iso = pipeline.io.sources.now_iso = lambda: '2017-10-20T12:00:00Z'; "
              "from pipeline.cli import main; sys.exit(main(sys.argv[1:]))")


def _canonical(what: str, record: dict[str, Any]) -> str:
    record = dict(record)
    record.pop({"articles": "fetched", "dead_letters": "at"}.get(what, ""), None)
    return json.dumps(record, ensure_ascii=False, sort_keys=True)


def run_demo(out: Path, beam_args: list[str]) -> dict[str, Any]:
    """Run the demo config with its sinks redirected to `out`: records per kind, and the summary."""
    sets = []
    for i, what in enumerate(FILES):
        sets += ["--set", f"sinks.{i}.path={out / (what + '.jsonl')}"]
    sets += ["--set", f"sinks.4.path={out / 'counts.csv'}"]
    for i in range(5, 10):
        sets += ["--set", f"sinks.{i}.path={out / 'mediamon.db'}"]
    sets += ["--set", f"sinks.10.path={out / 'alerts.jsonl'}"]
    summary = out / "summary.json"
    proc = subprocess.run([sys.executable, "-c", PINNED_RUN, "run", str(DEMO), "--quiet",
                           "--summary", str(summary), *sets, "--", *beam_args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = {"summary": json.loads(summary.read_text(encoding="utf-8"))}
    for what in FILES + ["alerts"]:
        lines = (out / f"{what}.jsonl").read_text(encoding="utf-8").splitlines()
        result[what] = sorted(_canonical(what, json.loads(line)) for line in lines if line.strip())
    return result


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = run_demo(tmp_path_factory.mktemp("default"), [])
    assert result["articles"] and result["counts"] and result["topics"] and result["dead_letters"]
    assert result["alerts"]    # the demo's spike (demo/burst.jsonl)
    return result


def assert_same_records(got: dict[str, Any], reference: dict[str, Any]) -> None:
    for what in FILES + ["alerts"]:
        assert got[what] == reference[what], f"{what} differ from the default runner's"
    for key in ("items_read", "articles", "duplicates", "dead_letters", "by_language", "by_topic"):
        assert got["summary"][key] == reference["summary"][key], key


def test_portable_runner_gives_the_same_records(reference: dict[str, Any], tmp_path: Path) -> None:
    assert_same_records(run_demo(tmp_path, PORTABLE), reference)


def test_two_worker_processes_give_the_same_records(reference: dict[str, Any], tmp_path: Path) -> None:
    assert_same_records(run_demo(tmp_path, MULTI_PROCESSING), reference)


@pytest.mark.skipif(not FLINK_JAR or not Path(FLINK_JAR).is_file(),
                    reason="no Beam Flink job-server jar: set MEDIAMON_FLINK_JOB_SERVER_JAR to its path "
                           "(Maven Central serves none for Beam 2.73-2.77, see benchmarks/README.md)")
def test_flink_gives_the_same_records(reference: dict[str, Any], tmp_path: Path) -> None:
    flink = ["--runner=FlinkRunner", "--flink_master=[local]", f"--flink_job_server_jar={FLINK_JAR}",
             "--environment_type=LOOPBACK"]
    assert_same_records(run_demo(tmp_path, flink), reference)


def test_setup_py_builds_a_package_with_pipeline_and_transforms(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (archive,) = tmp_path.glob("mediamon-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert {"setup.py", "pipeline/__init__.py", "pipeline/jobs/batch.py", "pipeline/graph/stages.py", "pipeline/cli.py",
            "transforms/__init__.py", "transforms/records.py", "transforms/langid.py"} <= names


def test_prism_runs_without_dynamic_splits_and_other_runners_are_left_alone() -> None:
    """Prism 2.77's dynamic splits break key-exclusive state (pipeline/graph/runner.py): a job on
    Prism asks Prism to turn them off, keeping the user's own experiments; no other runner gets it."""
    from apache_beam.options.pipeline_options import DebugOptions

    from pipeline.config import load_config
    from pipeline.graph.runner import PRISM_NO_SPLITS, pipeline_options
    config = load_config(DEMO)

    def experiments(args: list[str], streaming: bool = True) -> list[str]:
        return pipeline_options(config, args, streaming=streaming).view_as(DebugOptions).experiments or []
    assert PRISM_NO_SPLITS in experiments(["--runner=PrismRunner"])
    assert PRISM_NO_SPLITS in experiments(["--runner=PrismRunner"], streaming=False)
    assert PRISM_NO_SPLITS in experiments(["--runner=prism"])
    assert PRISM_NO_SPLITS in experiments(["--runner=apache_beam.runners.portability.prism_runner.PrismRunner"])
    mine = experiments(["--runner=PrismRunner", "--experiments=mine", f"--experiments={PRISM_NO_SPLITS}"])
    assert "mine" in mine and mine.count(PRISM_NO_SPLITS) == 1
    assert PRISM_NO_SPLITS not in experiments([])
    assert PRISM_NO_SPLITS not in experiments(["--runner=DataflowRunner"])
    assert PRISM_NO_SPLITS not in experiments(PORTABLE, streaming=False)
