"""Configuration: pydantic models, YAML loading with line numbers, secrets by reference."""

from dnsfailover.config.loader import LoadedConfig, load_config, load_text
from dnsfailover.config.models import Config, Instance, Service

__all__ = ["Config", "Instance", "LoadedConfig", "Service", "load_config", "load_text"]
