"""The audit's probes: bag-of-words logistic regressions, cross-validated by source item.

A shortcut is anything a simple classifier can use to tell two kinds of text apart without
understanding them. The probes are deliberately simple and honest:

- words: lowercase word tokens (`\\b\\w+\\b`: words, numbers, `snake_case` keys; one token
  each), the vocabulary built once over all the texts without their labels;
- features: the `counts` probe (the reference, the figures' bound applies to it) sees how
  often each word occurs — the textbook bag-of-words classifier; the `presence` probe (reported
  beside it) sees only whether each word occurs, which finds a word one side always lacks and
  conjunctions of words more easily;
- model: L2-regularised logistic regression (liblinear, C = 1, tolerance 0.01, fixed random
  state);
- sample: at most `MAX_TEXTS` texts, whole items taken in the order of a hash of their id (so the
  same release always gets the same sample; the standard error of the accuracy is then under
  0.006);
- score: accuracy on held-out folds — `FOLDS`-fold `GroupKFold` where the group is the source
  item, so no item (and no near-copy of a text from the same item) is ever in both the training
  and the test fold; every text is predicted exactly once, by a model that never saw its item.

Counting is done per distinct *line* (a token never spans a line break, so a text's counts are
the sum of its lines' counts): prompts and traces share most of their lines — the instruction's
tool list, a DPO pair's untouched calls — so each is tokenised once, not once per text.
scikit-learn is imported only when a probe runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

FOLDS = 5
MAX_TEXTS = 8_000
TOKEN = r"(?u)\b\w+\b"


def count_matrix(texts: Sequence[str]) -> Any:
    """Token counts per text (a sparse texts × vocabulary matrix), counted line by line."""
    import numpy as np
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import CountVectorizer

    index: dict[str, int] = {}
    rows: list[int] = []
    columns: list[int] = []
    for row, text in enumerate(texts):
        for line in text.split("\n"):
            rows.append(row)
            columns.append(index.setdefault(line, len(index)))
    incidence = csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(texts), len(index)))
    lines = CountVectorizer(token_pattern=TOKEN, lowercase=True, dtype=np.float64) \
        .fit_transform(list(index))
    return (incidence @ lines).tocsr()


def sample(groups: Sequence[str], limit: int = MAX_TEXTS) -> list[int]:
    """Indices of at most `limit` texts, whole groups first by a hash of their id, in input
    order; all of them when there are no more than `limit`."""
    if len(groups) <= limit:
        return list(range(len(groups)))
    members: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    order = sorted(members, key=lambda g: hashlib.blake2b(g.encode(), digest_size=8).digest())
    keep: list[int] = []
    for group in order:
        if len(keep) + len(members[group]) > limit:
            break
        keep += members[group]
    return sorted(keep)


PROBES = ("counts", "presence")


def grouped_accuracy(texts: Sequence[str], labels: Sequence[int],
                     groups: Sequence[str], folds: int = FOLDS) -> dict[str, float] | None:
    """Held-out accuracy of each probe (`PROBES`) on (texts, labels); None with fewer than two
    groups or a single class."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    if len(set(groups)) < 2 or len(set(labels)) < 2:
        return None
    keep = sample(groups)
    texts, groups = [texts[i] for i in keep], [groups[i] for i in keep]
    y = np.asarray([labels[i] for i in keep])
    counts = count_matrix(texts)
    presence = counts.copy()
    presence.data[:] = 1.0
    splits = list(GroupKFold(n_splits=min(folds, len(set(groups)))).split(counts, y, groups))
    accuracy = {}
    for name, x in zip(PROBES, (counts, presence), strict=True):
        correct = 0
        for train, test in splits:
            if len(set(y[train])) < 2:  # one class only: the best guess is that class
                correct += int((y[test] == y[train][0]).sum())
                continue
            model = LogisticRegression(C=1.0, solver="liblinear", tol=0.01, random_state=0,
                                       max_iter=1000)
            model.fit(x[train], y[train])
            correct += int((model.predict(x[test]) == y[test]).sum())
        accuracy[name] = correct / len(y)
    return accuracy
