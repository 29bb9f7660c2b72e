"""The Hub's allow-lists for card metadata that offline tools do not ship.

`datasets` ships the size categories (used from there); the licence identifiers and task ids
live only in the Hub's own sources, copied here:
- licences: huggingface/hub-docs, docs/hub/repositories-licenses.md (the `region licenses` table);
- task categories: huggingface/huggingface.js, packages/tasks/src/pipelines.ts (`PIPELINE_DATA`).
`DatasetCard.validate()` would check them against the Hub, but it needs the network.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

_LICENSE_IDS = """
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear
c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0
cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0
cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0 cdla-permissive-2.0 wtfpl
ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1
lgpl-3.0 isc lppl-1.3c ms-pl mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa
unlicense zlib pddl lgpl-lr deepfloyd-if-license llama2 gemma unknown other
"""
_TASK_IDS = """
biology text-classification token-classification table-question-answering question-answering
zero-shot-classification translation summarization feature-extraction text-generation
text2text-generation fill-mask sentence-similarity text-to-speech text-to-audio
automatic-speech-recognition audio-to-audio audio-classification audio-text-to-text
voice-activity-detection depth-estimation image-classification object-detection
image-segmentation text-to-image image-to-text image-to-image image-to-video
unconditional-image-generation video-classification reinforcement-learning robotics
tabular-classification tabular-regression tabular-to-text table-to-text multiple-choice
text-ranking text-retrieval time-series-forecasting text-to-video image-text-to-text
visual-question-answering document-question-answering zero-shot-image-classification graph-ml
mask-generation zero-shot-object-detection text-to-3d image-to-3d image-feature-extraction
video-text-to-text keypoint-detection visual-document-retrieval any-to-any other
"""
LICENSES = frozenset(_LICENSE_IDS.split())
TASK_CATEGORIES = frozenset(_TASK_IDS.split())


@cache
def size_categories() -> tuple[str, ...]:
    """`datasets`' own list, smallest first (`unknown` dropped)."""
    text = resources.files("datasets.utils.resources").joinpath("size_categories.json")
    return tuple(c for c in json.loads(text.read_text()) if c != "unknown")


def size_category(rows: int) -> str:
    """The Hub bucket of a row count: `n<1K`, `1K<n<10K`, ... (bounds are powers of ten)."""
    categories = size_categories()
    index, bound = 0, 1_000
    while rows >= bound and index < len(categories) - 1:
        index, bound = index + 1, bound * 10
    return categories[index]
