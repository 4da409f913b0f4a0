"""The stages pipeline of a stream worker: one Beam graph per process, run once per micro-batch.

Reusing the graph must not leak anything from one batch into the next: each run's outputs and
counters equal those of a graph built for that batch alone, the options are the same after
every run, a failed run leaves nothing behind for the next one, and a batch written to another
folder gets a graph of its own."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Config, load_config
from pipeline.graph.microbatch import StagesPipeline, stages_pipeline
from pipeline.io.spool import read_outputs, write_spool
from transforms.records import RawItem
from transforms.timeutil import now_iso

CONFIG = """name: microbatch
sources: {pubsub: {subscription: projects/mediamon-test/subscriptions/items}}
state: {path: state.db}
language: {allowed: [en, fr, ar]}
keywords: [{id: raqqa, forms: [Raqqa, الرقة]}]
topics: [{id: battle, name: Battle, query: 'Raqqa AND (battle OR bataille)'}]
windows: {size: 1h, allowed_lateness: 1d}
"""

TITLES = ["Raqqa battle goes on", "La bataille de Raqqa continue", "استمرار المعارك في الرقة",
          "Markets were calm on Tuesday"]


def raw(i: int) -> RawItem:
    item = {"id": f"g{i}", "url": f"https://e.example/story/{i}", "title": f"{TITLES[i % 4]} {i}",
            "published": now_iso()}
    return RawItem(source="sub", data=json.dumps(item).encode(), fetched=now_iso())


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "c.yaml").write_text(CONFIG, encoding="utf-8")
    return load_config(tmp_path / "c.yaml")


def batch(folder: Path, name: str, raws: list[RawItem]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spool = folder / f"{name}.bin"
    write_spool(spool, raws)
    return spool


def test_each_run_of_the_reused_graph_equals_a_graph_built_for_that_batch(config: Config, tmp_path: Path) -> None:
    stages = StagesPipeline(config, [])
    spool = tmp_path / "spool"
    batches = [[raw(i) for i in range(6)] + [raw(0)],                         # one duplicate
               [raw(i) for i in range(6, 9)] + [RawItem(source="sub", data=b"{oops", fetched=now_iso())],
               [raw(i) for i in range(9, 20)]]
    options = None
    for n, raws in enumerate(batches):
        path = batch(spool, f"b{n}", raws)
        counters = stages.run(path, spool / f"b{n}.out")
        fresh = stages_pipeline(config, [], path, spool / f"b{n}.fresh")
        assert counters == fresh                                  # per run: nothing carried over
        assert counters["mediamon/items_read"] == len(raws)
        assert read_outputs(spool / f"b{n}.out") == read_outputs(spool / f"b{n}.fresh")
        assert stages._pipeline is not None
        now = stages._pipeline.options.get_all_options()
        assert options is None or now == options                  # Beam leaves the options as they were
        options = now
    assert stages.reused == len(batches) - 1       # runs after the first reuse the runner-API form
    articles, dead = read_outputs(spool / "b1.out")
    assert len(articles) == 3 and len(dead) == 1
    assert {a.language for a in read_outputs(spool / "b2.out")[0]} == {"en", "fr", "ar"}
    # only the batches' own files are left: no inbox, no outbox
    assert sorted(p.name for p in spool.iterdir()) == sorted(
        f"b{n}.{ext}" for n in range(3) for ext in ("bin", "out", "fresh"))


def test_a_failed_run_leaves_nothing_for_the_next_batch(config: Config, tmp_path: Path) -> None:
    stages = StagesPipeline(config, [])
    spool = tmp_path / "spool"
    first = batch(spool, "b1", [raw(i) for i in range(4)])
    stages.run(first, spool / "b1.out")
    with pytest.raises(Exception):
        stages.run(spool / "missing.bin", spool / "b2.out")       # the source fails
    assert not (spool / "b2.out").exists()
    third = batch(spool, "b3", [raw(i) for i in range(4, 6)])
    assert stages.run(third, spool / "b3.out")["mediamon/items_read"] == 2
    stages_pipeline(config, [], third, spool / "b3.fresh")
    assert read_outputs(spool / "b3.out") == read_outputs(spool / "b3.fresh")
    empty = batch(spool, "b4", [])
    assert stages.run(empty, spool / "b4.out").get("mediamon/items_read", 0) == 0
    assert not (spool / "b4.out").exists()                        # no records, no file


def test_a_batch_in_another_folder_gets_its_own_graph(config: Config, tmp_path: Path) -> None:
    stages = StagesPipeline(config, [])
    one, two = tmp_path / "one", tmp_path / "two"
    stages.run(batch(one, "b1", [raw(1)]), one / "b1.out")
    stages.run(batch(two, "b2", [raw(2), raw(3)]), two / "b2.out")
    assert [a.id for a in read_outputs(one / "b1.out")[0]] != []
    assert len(read_outputs(two / "b2.out")[0]) == 2
    assert sorted(p.name for p in two.iterdir()) == ["b2.bin", "b2.out"]


def test_a_worker_warms_its_stages_up_in_the_batch_folder_and_leaves_nothing_there(
        config: Config, tmp_path: Path) -> None:
    """Before the first batch, one made-up message runs through the stages (in this process
    with processes=0, in the child otherwise): the graph is built, the folder stays empty, and
    the first real batch's counters are its own."""
    from pipeline.graph.microbatch import StageWorker
    folder = tmp_path / "spool"
    for processes in (0, 1):
        worker = StageWorker(config, [], processes, folder=folder)
        try:
            if processes == 0:
                assert worker.stages._pipeline is not None        # built by the warm-up
            assert list(folder.iterdir()) == []
            spool = batch(folder, f"b{processes}", [raw(i) for i in range(4)])
            counters = worker.submit(spool, folder / f"b{processes}.out").result(timeout=120)
            articles, dead = read_outputs(folder / f"b{processes}.out")
            assert counters["mediamon/items_read"] == 4 and len(articles) == 4 and not dead
            assert {a.url for a in articles} == {f"https://e.example/story/{i}" for i in range(4)}
        finally:
            worker.close()
        for left in folder.iterdir():
            left.unlink()


def test_settled_heap_is_frozen_with_a_large_young_generation_and_restored() -> None:
    import gc

    from pipeline.graph.microbatch import YOUNG_OBJECTS, restore_heap, settle_heap
    before = gc.get_threshold()
    saved = settle_heap()
    try:
        assert saved == before
        assert gc.get_threshold() == (YOUNG_OBJECTS, *before[1:])
        assert gc.get_freeze_count() > 0          # what was loaded is out of later collections
    finally:
        restore_heap(saved)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_the_reused_runner_api_form_is_the_one_beam_builds_for_a_run(
        config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Later runs hand the runner the form made after the first run: it must be the form
    Beam's own `Pipeline.run` gave the runner (same transforms, coders, environments and
    pickled DoFns), or the later runs would run another graph."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    given: list[Any] = []
    original = FnApiRunner.run_via_runner_api

    def record(self: Any, proto: Any, options: Any) -> Any:
        given.append(proto.SerializeToString(deterministic=True))
        return original(self, proto, options)

    monkeypatch.setattr(FnApiRunner, "run_via_runner_api", record)
    stages = StagesPipeline(config, [])
    spool = tmp_path / "spool"
    stages.run(batch(spool, "b1", [raw(1)]), spool / "b1.out")     # Beam's path
    stages.run(batch(spool, "b2", [raw(2)]), spool / "b2.out")     # the form reused
    assert stages.reused == 1 and len(given) == 2
    assert given[1] == given[0]


def test_articles_reach_the_output_file_without_being_pickled(config: Config, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The outputs cross the runner's flatten as typed bytes: a flatten of Article | DeadLetter
    has the pickle coder, and pickled every article of every micro-batch (about 7% of its CPU).
    Beam still pickles a sample of elements to estimate sizes: a few, never one per article."""
    import pickle

    import apache_beam.coders.coders as beam_coders
    pickled: list[str] = []
    real = pickle.dumps

    def dumps(value: Any, *args: Any, **kwargs: Any) -> bytes:
        pickled.append(type(value).__name__)
        return real(value, *args, **kwargs)

    monkeypatch.setattr(beam_coders.pickle, "dumps", dumps)    # PickleCoder binds it per run
    spool = tmp_path / "spool"
    raws = [raw(i) for i in range(400)] + [RawItem(source="sub", data=b"{oops", fetched=now_iso())]
    StagesPipeline(config, []).run(batch(spool, "b", raws), spool / "b.out")
    articles, dead = read_outputs(spool / "b.out")
    assert len(articles) == 400 and len(dead) == 1
    assert pickled.count("Article") < len(articles) // 4
