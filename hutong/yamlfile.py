"""A YAML file read into a pydantic model, every problem one `ConfigError` naming the file.

The facility registry and the users file are both read this way: a missing file,
bad YAML and a field that does not validate each say which file and which field.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hutong.errors import ConfigError

__all__ = ["load_model", "validation_problems"]

Model = TypeVar("Model", bound=BaseModel)


def validation_problems(exc: ValidationError, *, root: str = "") -> str:
    """Each error as ``field.path: message``, joined with ``; `` (no input values)."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or root}: {err['msg']}"
                     for err in exc.errors())


def load_model(path: Path, model: type[Model], what: str) -> Model:
    """``path`` parsed as YAML (empty: ``{}``) and validated as ``model``."""
    try:
        return model.model_validate(yaml.safe_load(path.read_text("utf-8")) or {})
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path}: not YAML ({exc})") from exc
    except ValidationError as exc:
        raise ConfigError(f"{what} {path}: {validation_problems(exc)}") from exc
