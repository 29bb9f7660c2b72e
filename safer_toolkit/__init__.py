"""SaFeR-ToolKit: build, validate, release and train on checkable multimodal safety reasoning."""

from .errors import ConfigError, SaferToolkitError

__all__ = ["ConfigError", "SaferToolkitError", "__version__"]
__version__ = "0.1.0"
