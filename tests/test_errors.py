"""One error tree: every exception class the package defines is a `SaferToolkitError`, and the
command line turns one into its exit status instead of a traceback."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import safer_toolkit
from safer_toolkit import SaferToolkitError, cli
from safer_toolkit.errors import BuildError, ConfigError, InputError, exit_code

# the package's sub-packages live in their own top-level folders (pyproject's package-dir)
PACKAGES = ["safer_toolkit", "safer_toolkit.builder", "safer_toolkit.validation",
            "safer_toolkit.evaluation", "safer_toolkit.training_reference"]


def _modules() -> list[str]:
    names = set(PACKAGES)
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.update(info.name for info in pkgutil.walk_packages(module.__path__, f"{package}.")
                     if not info.name.endswith(".__main__"))  # that one runs the CLI
    return sorted(names)


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == name:
                found[f"{name}.{obj.__qualname__}"] = obj
    return found


def test_every_exception_class_is_under_the_root() -> None:
    classes = _exception_classes()
    assert len(classes) >= 40  # the walk reached the whole package
    outside = sorted(name for name, cls in classes.items()
                     if not issubclass(cls, SaferToolkitError))
    assert outside == []


def test_config_error_is_defined_once_and_keeps_its_builtin_base() -> None:
    from safer_toolkit.builder.config import ConfigError as BuildConfigError
    from safer_toolkit.training_reference.config import ConfigError as TrainConfigError

    assert BuildConfigError is TrainConfigError is ConfigError is safer_toolkit.ConfigError
    assert issubclass(ConfigError, ValueError)
    from safer_toolkit.builder.sources.intake import SourceError
    from safer_toolkit.builder.storage import StorageError

    assert issubclass(SourceError, InputError) and issubclass(SourceError, ValueError)
    assert issubclass(StorageError, OSError)


@pytest.mark.parametrize(("exc", "code"), [(ConfigError("x"), 2), (InputError("x"), 2),
                                           (BuildError("x"), 1), (SaferToolkitError("x"), 1)])
def test_exit_codes(exc: SaferToolkitError, code: int) -> None:
    assert exit_code(exc) == code


def test_cli_turns_an_escaped_error_into_its_exit_status(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import safer_toolkit.validation.cli as validate_cli

    def run(args: object) -> int:
        raise ConfigError("build.toml: seed: must be an integer, not 'x'")

    monkeypatch.setattr(validate_cli, "run", run)
    assert cli.main(["validate", "x.jsonl"]) == 2
    assert capsys.readouterr().err == ("safer-toolkit validate: build.toml: seed: must be an "
                                       "integer, not 'x'\n")
