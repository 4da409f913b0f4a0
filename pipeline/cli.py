"""The `mediamon` command (also `python -m pipeline`).

mediamon run CONFIG [--set k.p=v ...] [--summary FILE] [-- BEAM_OPTIONS...]
mediamon stream CONFIG [...]          mediamon poll CONFIG [--once] [--interval S]
mediamon report CONFIG [--out FILE]   mediamon validate CONFIG
mediamon topics test CONFIG [--labelled FILE [--min-f1 X] [--json]]
mediamon topics suggest CONFIG --labelled FILE [--topic ID] [--json]
mediamon feeds status CONFIG          mediamon alerts backtest CONFIG [--since T --until T]
mediamon serve CONFIG [--host 127.0.0.1] [--port 8080] [--allow-remote --token T]

Exit codes: 0 done, 2 bad config or usage, 1 pipeline failure.  Logging is configured
here and only here.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from pipeline.config import Config, ConfigError, UsageError, load_config

log = logging.getLogger("mediamon")
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _split_beam_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediamon", description="Media monitoring on Apache Beam.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the job does (INFO)")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("config", type=Path)
        p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                       help="override a config value (YAML syntax), repeatable")
        return p

    run = with_config("run", "batch: read every source once, write every sink, print a summary")
    run.add_argument("--summary", type=Path, help="also write the summary as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress line")
    run.add_argument("--rebuild", action="store_true",
                     help="recompute counts of a period from the stored articles (needs state.path)")
    run.add_argument("--since", help="with --rebuild: ISO-8601 start (inclusive)")
    run.add_argument("--until", help="with --rebuild: ISO-8601 end (exclusive)")
    stream = with_config("stream", "streaming job on Pub/Sub; SIGINT/SIGTERM drains and exits 0")
    stream.add_argument("--summary", type=Path, help="also write the summary as JSON")
    stream.add_argument("--max-seconds", type=float, help="stop (draining) after this long")
    poll = with_config("poll", "fetch feeds and publish new items to the configured Pub/Sub topic")
    poll.add_argument("--once", action="store_true", help="one pass, then exit")
    poll.add_argument("--interval", type=float, help="seconds between passes (default: poll.interval)")
    report = with_config("report", "write a self-contained HTML report of the stored outputs")
    report.add_argument("--out", type=Path, help="output file (default: report.html beside the outputs)")
    report.add_argument("--since")
    report.add_argument("--until")
    report.add_argument("--count", choices=("articles", "stories"), default="articles",
                        help="what the topic charts count: articles, or stories (copies counted once)")
    with_config("validate", "check the config only")
    serve = with_config("serve", "read-only live web dashboard over the sqlite sinks and feed state")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--allow-remote", action="store_true",
                       help="allow a non-loopback --host (needs --token)")
    serve.add_argument("--token", help="required on every request (default: $MEDIAMON_SERVE_TOKEN)")

    topics = sub.add_parser("topics", help="topic rule tools")
    tsub = topics.add_subparsers(dest="topics_command", required=True)
    ttest = tsub.add_parser("test", help="run each topic's examples; print precision/recall")
    ttest.add_argument("config", type=Path)
    ttest.add_argument("--labelled", type=Path, help="JSONL of labelled texts to score instead")
    ttest.add_argument("--min-f1", type=float, default=None,
                       help="with --labelled: exit 1 when micro, any topic's or any "
                            "language's F1 is below this")
    ttest.add_argument("--json", action="store_true", help="print the result as one JSON record")
    ttest.add_argument("--set", action="append", default=[])
    tsug = tsub.add_parser("suggest", help="propose rule changes from a labelled file's misses "
                                           "and false hits")
    tsug.add_argument("config", type=Path)
    tsug.add_argument("--labelled", type=Path, required=True)
    tsug.add_argument("--topic", help="only this topic id")
    tsug.add_argument("--top", type=int, default=15, help="suggestions per list (default 15)")
    tsug.add_argument("--json", action="store_true")
    tsug.add_argument("--set", action="append", default=[])

    feeds = sub.add_parser("feeds", help="feed tools")
    fsub = feeds.add_subparsers(dest="feeds_command", required=True)
    fstatus = fsub.add_parser("status", help="each feed's health from the feed-state store")
    fstatus.add_argument("config", type=Path)
    fstatus.add_argument("--set", action="append", default=[])

    alerts = sub.add_parser("alerts", help="alert tools")
    asub = alerts.add_subparsers(dest="alerts_command", required=True)
    aback = asub.add_parser("backtest", help="replay stored counts through the alert rules")
    aback.add_argument("config", type=Path)
    aback.add_argument("--since")
    aback.add_argument("--until")
    aback.add_argument("--set", action="append", default=[])
    return parser


def _cmd_validate(config: Config, args: argparse.Namespace, beam_args: list[str]) -> int:
    print("ok")
    return EXIT_OK


def _cmd_run(config: Config, args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.graph.summary import write_summary
    from pipeline.jobs.batch import run_batch
    if args.rebuild or args.since or args.until:
        from pipeline.jobs.scheduled import rebuild
        summary = rebuild(config, beam_args, since=args.since, until=args.until)
    else:
        if config.state.path is not None:
            from pipeline.jobs.scheduled import run_with_state
            from pipeline.store.lock import OverlapError
            try:
                summary = run_with_state(config, beam_args, progress=not args.quiet)
            except OverlapError as exc:
                print(f"mediamon run: {exc}", file=sys.stderr)
                return EXIT_OK
        else:
            summary = run_batch(config, beam_args, progress=not args.quiet)
    print(summary.text("run"))
    if args.summary:
        write_summary(summary, args.summary)
    return EXIT_OK


def _cmd_stream(config: Config, args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.graph.summary import write_summary
    from pipeline.jobs.stream import run_stream
    summary = run_stream(config, beam_args, max_seconds=args.max_seconds)
    print(summary.text("stream"))
    if args.summary:
        write_summary(summary, args.summary)
    return EXIT_OK


def _cmd_poll(config: Config, args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.jobs.poll import run_poller
    return run_poller(config, once=args.once, interval=args.interval)


def _cmd_report(config: Config, args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.store.outputs import load_outputs
    from pipeline.tools.report import write_report
    outputs = load_outputs(config.sinks, args.since, args.until)
    folders = [s.path.parent for s in config.sinks if s.path is not None]
    out = args.out or ((folders[0] if folders else Path.cwd()) / f"{config.name}-report.html")
    path = write_report(outputs, config.alerts, out, title=f"mediamon: {config.name}",
                        topic_names={t.id: t.name for t in config.topics}, measure=args.count)
    print(f"wrote {path}")
    return EXIT_OK


def _cmd_serve(config: Config, args: argparse.Namespace, beam_args: list[str]) -> int:
    import os
    from pipeline.tools.serve import check_bind, serve
    token = args.token or os.environ.get("MEDIAMON_SERVE_TOKEN") or None
    try:
        check_bind(args.host, args.allow_remote, token)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: 1 to 65535")
    print(f"mediamon serve: http://{args.host}:{args.port}/ (read-only; Ctrl-C stops)", flush=True)
    serve(config, host=args.host, port=args.port, token=token)
    return EXIT_OK


def _cmd_topics(config: Config, args: argparse.Namespace, beam_args: list[str]) -> int:
    import json
    from pipeline.tools.topictest import read_labelled, render_score, run_topic_tests, \
        score_labelled
    from transforms.topic_matcher import Tagger
    if args.labelled is None:
        if args.topics_command == "suggest":
            raise UsageError("suggest needs --labelled FILE")
        if args.min_f1 is not None or args.json:
            raise UsageError("--min-f1 and --json need --labelled FILE")
        text, ok = run_topic_tests(config.topics, config.keywords, config.variants)
        print(text)
        return EXIT_OK if ok else EXIT_FAIL
    try:  # an unreadable or malformed labelled file is a usage error naming the line
        items = read_labelled(args.labelled, [t.id for t in config.topics])
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(str(exc)) from exc
    tagger = Tagger(config.topics, config.keywords, config.variants)
    if args.topics_command == "suggest":
        from pipeline.tools.topicsuggest import render_suggestions, suggest
        if args.topic is not None and args.topic not in {t.id for t in config.topics}:
            raise UsageError(f"unknown topic id {args.topic!r}")
        found = suggest(tagger, config.topics, items, topic=args.topic, top=args.top)
        print(json.dumps(found, ensure_ascii=False, indent=1) if args.json
              else render_suggestions(found))
        return EXIT_OK
    score = score_labelled(tagger, config.topics, items)
    ok = args.min_f1 is None or score.lowest_f1() >= args.min_f1
    if args.json:
        print(json.dumps({**score.record(), "min_f1": args.min_f1, "ok": ok},
                         ensure_ascii=False, indent=1))
    else:
        print(render_score(score))
        if args.min_f1 is not None:
            print(f"lowest F1 {score.lowest_f1():.3f} "
                  f"{'>=' if ok else '<'} --min-f1 {args.min_f1:g}")
    return EXIT_OK if ok else EXIT_FAIL


def _cmd_feeds(config: Config, args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.feeds.documents import all_feeds
    from pipeline.feeds.fetch import feeds_status_text
    from pipeline.feeds.state import FeedStateStore
    if config.state.path is None:
        print("this config has no state.path: no feed state is kept", file=sys.stderr)
        return EXIT_USAGE
    print(feeds_status_text(FeedStateStore(config.state.path), all_feeds(config)))
    return EXIT_OK


def _cmd_alerts(config: Config, args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipeline.store.outputs import load_outputs
    from pipeline.tools.backtest import backtest
    if not config.alerts:
        raise UsageError("this config has no alerts: rules to replay")
    outputs = load_outputs(config.sinks)  # the whole history: rules look back before --since
    print(backtest(outputs, config.alerts, args.since, args.until,
                   window_size=config.windows.period or config.windows.size))
    return EXIT_OK


COMMANDS: dict[str, Callable[[Config, argparse.Namespace, list[str]], int]] = {
    "validate": _cmd_validate, "run": _cmd_run, "stream": _cmd_stream, "poll": _cmd_poll,
    "report": _cmd_report, "serve": _cmd_serve, "topics": _cmd_topics, "feeds": _cmd_feeds, "alerts": _cmd_alerts,
}


class _DropBeamImportNoise(logging.Filter):
    """Beam warns at import about GCS and BigQuery clients we deliberately do not install."""

    NOISE = ("Failed to import GCSFileSystem", "apitools not found")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOISE)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        force=True)  # importing Beam has already configured the root logger
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropBeamImportNoise())
    if not verbose:
        logging.getLogger("apache_beam").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    ours, beam_args = _split_beam_args(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(ours)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    _configure_logging(args.verbose)
    try:
        config = load_config(args.config, overrides=args.set)
    except ConfigError as exc:
        if args.command == "validate":
            print("\n".join(exc.lines()))
        else:
            print("invalid config:\n" + "\n".join(exc.lines()), file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](config, args, beam_args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_FAIL
    except UsageError as exc:
        print(f"mediamon {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # the one place a failure becomes an exit code, with its trace logged
        log.exception("mediamon %s failed", args.command)
        print(f"mediamon {args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
