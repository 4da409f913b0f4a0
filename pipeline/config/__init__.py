"""The config: YAML -> validated, frozen `Config` (see loader.py and model.py)."""
from pipeline.config.loader import *  # noqa: F401,F403
from pipeline.config.loader import Config, ConfigError, UsageError, load_config  # noqa: F401
