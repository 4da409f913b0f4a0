"""Dead letters for the stages after parse: an exception on one element becomes a record.

Every stage's DoFn catches what its pure logic raises for one element and yields a
`DeadLetter` (stage name, the exception, the element) on the tagged output `dead_letters`
instead of failing the bundle, and with it the job.  Like Beam's `with_exception_handling`,
but with our record type and a per-stage counter (`Metrics.counter(stage, "dead_letters")`).
"""
from __future__ import annotations

import json
from typing import Any

from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from transforms.records import Article, DeadLetter
from transforms.timeutil import now_iso

DEAD = "dead_letters"


def _raw(element: Any) -> str:
    if isinstance(element, Article):
        return json.dumps(element.to_json(), ensure_ascii=False, default=str)
    return repr(element)


def dead_letter(stage: str, element: Any, exc: BaseException) -> TaggedOutput:
    """The tagged dead letter for `element`, which made `stage` raise `exc` (and count it)."""
    Metrics.counter(stage, "dead_letters").inc()
    source = element.source if isinstance(element, Article) else ""
    return TaggedOutput(DEAD, DeadLetter.of(stage, f"{type(exc).__name__}: {exc}", source,
                                            _raw(element), now_iso()))
