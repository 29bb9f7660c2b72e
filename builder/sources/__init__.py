"""Where (image, question) items come from: the bundled seed corpus and loaders for local files
and `datasets` repositories."""

from safer_toolkit.builder.sources.base import SourceItem

__all__ = ["SourceItem"]
