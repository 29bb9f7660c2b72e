"""Every error the toolkit raises on purpose, under one root: `except SaferToolkitError` catches
all of them and nothing else (httpx's `_exceptions.py` is the model).

Each area has one base here; the concrete classes live beside the code that raises them and
keep the builtin base callers relied on before the tree existed (a `SourceError` is still a
`ValueError`, a `StorageError` still an `OSError`), so messages and `except` clauses stay as
they were. The command line maps an error to its exit status with `exit_code` (one table:
the user's input or configuration → 2, a run that could not finish → 1).

    SaferToolkitError
    ├── ConfigError (ValueError) ···· a build / training / audit config, preset or override
    ├── InputError ·················· data from outside the toolkit that cannot be used
    │   ├── SourceError, RecordError, UnreadableImage (ValueError) ···· builder/sources/intake
    │   ├── NotDecodable (ValueError) ···························· builder/stages/extract
    │   └── RecordSourceError (OSError) ································ validation/records
    ├── ProtocolError ··············· a protocol, graph or grammar that cannot be used
    │   ├── ProtocolInvalid (ValueError) ······························· validation/protocol
    │   ├── GraphError (ValueError) ····································· validation/graph
    │   ├── GrammarError (ValueError) ·························· validation/grammar/options
    │   │   └── TooManyStates ····································· validation/grammar/walks
    │   └── MatcherUnavailable (RuntimeError) ················· validation/grammar/matcher
    ├── StateError ·················· the build's state on disk
    │   ├── StorageError (OSError) ············································ builder/storage
    │   ├── OutDirLocked (RuntimeError) ········································ builder/lock
    │   └── StorageNotShared (RuntimeError) ························· builder/cluster/shard
    ├── EndpointError ··············· a model endpoint or a call to it
    │   ├── CallFailed ······································· builder/backends/base
    │   ├── _AttemptFailed ··································· builder/backends/client
    │   ├── PreflightError (RuntimeError) ····························· builder/preflight
    │   ├── BadRequest (ValueError) ························· builder/backends/serve_request
    │   ├── OfflineRequestError (ValueError) ····················· builder/backends/offline
    │   ├── JudgeOutputInvalid (ValueError) ······················ builder/stages/judge
    │   └── JudgeReplyInvalid (ValueError) ················· training_reference/judge
    ├── BuildError (RuntimeError) ··· a build that cannot start or finish
    │   ├── MissingKey ·················································· builder/pipeline
    │   ├── ClusterError ······································· builder/cluster/session
    │   ├── WorkersFailed (RuntimeError) ························ builder/sources/seed_workers
    │   └── PoolTooSmall (ValueError) ······································ builder/stages/split
    ├── ReleaseError ················ an export, shard, push or export check
    │   ├── ExportError (ValueError) ································ builder/release/export
    │   ├── RowTooLarge (ValueError) ································ builder/release/shards
    │   ├── PushError (RuntimeError) ································ builder/release/push
    │   └── CheckError (ValueError) ························· builder/release/easyr1_check
    ├── TrainingError ··············· the reference trainer
    │   ├── StageInputError (ValueError) ·················· training_reference/stage
    │   │   ├── DatasetUnusable, ModelUnusable
    │   ├── NotAVisionProcessor (RuntimeError) ········ training_reference/processing
    │   └── RecordUnusable (ValueError) ················· training_reference/easyr1
    └── EvaluationError ············· the evaluation
        ├── DatasetError (ValueError) ··································· evaluation/items
        ├── ResultsError (ValueError) ································· evaluation/results
        ├── PromptError (ValueError) ·································· evaluation/prompts
        ├── PromptFileError (ValueError) ························· evaluation/prompt_files
        └── CompareError (ValueError) ································· evaluation/compare

`tests/test_errors.py` walks the package and fails on an exception class outside this tree.
"""

from __future__ import annotations


class SaferToolkitError(Exception):
    """The root: every error the toolkit raises on purpose."""


class ConfigError(SaferToolkitError, ValueError):
    """A configuration that cannot be used; the message names the file (or origin) and the key.

    The one class for build configs and presets, training configs and their overrides and the
    audit's bounds."""


class InputError(SaferToolkitError):
    """Data from outside the toolkit (a source, a record, an image, a trace file) that cannot be
    used; the message names the file, line or record."""


class ProtocolError(SaferToolkitError):
    """A protocol, its graph or its trace grammar that cannot be used."""


class StateError(SaferToolkitError):
    """The build's state on disk: a failed write, a held lock, storage a cluster cannot share."""


class EndpointError(SaferToolkitError):
    """A model endpoint that cannot serve, or a call to one that failed."""


class BuildError(SaferToolkitError, RuntimeError):
    """The build cannot start or finish (bad sources, an endpoint that cannot serve it, an
    export that refuses the rows)."""


class ReleaseError(SaferToolkitError):
    """A release that cannot be written, pushed or checked."""


class TrainingError(SaferToolkitError):
    """The reference trainer cannot run a stage."""


class EvaluationError(SaferToolkitError):
    """An evaluation that cannot run or compare."""


#: Exit status per area, most specific first: the user's input or configuration (fix it and
#: run again) → 2; a run that started and could not finish → 1.
EXIT_CODES: tuple[tuple[type[SaferToolkitError], int], ...] = (
    (ConfigError, 2), (InputError, 2), (ProtocolError, 2), (EvaluationError, 2),
    (TrainingError, 2), (StateError, 1), (EndpointError, 1), (BuildError, 1),
    (ReleaseError, 1), (SaferToolkitError, 1))


def exit_code(exc: SaferToolkitError) -> int:
    """The command line's exit status for `exc` (`EXIT_CODES`)."""
    return next(code for cls, code in EXIT_CODES if isinstance(exc, cls))
