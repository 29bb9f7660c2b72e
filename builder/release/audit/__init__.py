"""The release audit (`safer-toolkit audit DIR`): does the data teach shortcuts?

A release can be structurally perfect and still teach a model to read the answer off a surface
cue. The audit measures the cues a data scientist would look for first — copied answers, one
opening for every answer, DPO sides a bag-of-words probe tells apart, a length rule, a label
readable from the system prompt, eval questions that are near-copies of training questions,
metadata inside the images — and judges each against the bound in the build config's `[audit]`
table. The build runs it on every release (figures in `manifest.json` and the card's "Quality"
section); `push` refuses a release that fails it unless forced.

`audit_folder` (and the polars/scikit-learn code behind it) is imported on first use, so the
config reader can name `AuditThresholds` without loading them.
"""

from typing import Any

from .report import Audit, Figure, plain_table
from .thresholds import AuditThresholds

__all__ = ["Audit", "AuditThresholds", "Figure", "audit_folder", "plain_table"]


def __getattr__(name: str) -> Any:
    if name == "audit_folder":
        from .run import audit_folder

        return audit_folder
    raise AttributeError(name)
