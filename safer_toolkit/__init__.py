"""SaFeR-ToolKit: build, validate, release and train on checkable multimodal safety reasoning."""

__version__ = "0.1.0"
