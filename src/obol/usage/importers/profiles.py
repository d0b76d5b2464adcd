"""Importer profiles: a dict of options (from YAML or JSON), checked against what a format accepts."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from obol.core.errors import ValidationFailed


def load_profile(path: Path | str) -> dict:
    """Read a profile file (.yaml/.yml or .json) into a dict."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValidationFailed(f"profile: {path.name} cannot be read: {exc}", field="profile",
                               code="bad_profile") from exc
    if not isinstance(data, dict):
        raise ValidationFailed(f"profile: {path.name} must be a mapping of options", field="profile",
                               code="bad_profile")
    return data


def options(profile: dict | None, defaults: dict) -> dict:
    """The profile merged over `defaults`; an option the format does not know is refused (typos)."""
    profile = dict(profile or {})
    unknown = sorted(set(profile) - set(defaults))
    if unknown:
        raise ValidationFailed(f"profile: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(defaults))}",
                               field=unknown[0], code="bad_profile")
    return {**defaults, **profile}
