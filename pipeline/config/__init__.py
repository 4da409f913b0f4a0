"""The config: YAML -> validated, frozen `Config`.

model.py holds the dataclasses (what the rest of the code takes), loader.py the entry point
`load_config`, sections.py one reader per top-level section, checks.py and yaml_lines.py the
shared helpers. The names below are the package's public face.
"""
from pipeline.config.loader import load_config
from pipeline.config.model import (
                                   SINK_TYPES,
                                   SINK_WHATS,
                                   Config,
                                   ConfigError,
                                   DedupConfig,
                                   FeedSource,
                                   FetchSettings,
                                   LanguageConfig,
                                   PollConfig,
                                   PubSubSource,
                                   SinkConfig,
                                   Sources,
                                   StateConfig,
                                   StoriesConfig,
                                   UsageError,
                                   WindowConfig,
)

__all__ = ["load_config", "Config", "ConfigError", "UsageError", "FeedSource", "PubSubSource", "Sources",
           "LanguageConfig", "WindowConfig", "StateConfig", "SinkConfig", "FetchSettings", "DedupConfig",
           "PollConfig", "StoriesConfig", "SINK_TYPES", "SINK_WHATS"]
