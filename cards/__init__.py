"""Dataset card templates (rendered by the release)."""
