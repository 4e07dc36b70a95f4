"""Checks request bodies the bot sends against Discord's published OpenAPI description."""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# Discord's spec lives beside the repository (`../shared/specs`, like the other shared docs); set
# DISCORD_OPENAPI_SPEC to use a copy elsewhere.
SPEC_PATH = Path(
    os.environ.get(
        "DISCORD_OPENAPI_SPEC",
        Path(__file__).resolve().parents[3] / "shared" / "specs" / "discord-openapi.json",
    )
)
_SPEC_URI = "urn:discord-openapi"


@dataclass(frozen=True)
class PathTemplate:
    """One OpenAPI path, e.g. `/webhooks/{webhook_id}/{webhook_token}`, with a matcher for concrete paths."""

    template: str
    pattern: re.Pattern[str]
    placeholders: int


def _template_pattern(template: str) -> re.Pattern[str]:
    literal_parts = re.split(r"\{[^}]+\}", template)
    return re.compile("^" + "[^/]+".join(re.escape(part) for part in literal_parts) + "$")


def _escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class OpenApiValidator:
    """Finds the operation for (method, path) and validates a JSON body against its request schema."""

    def __init__(self, spec: dict[str, Any]) -> None:
        # Discord accepts snowflakes as JSON integers too, and discord.py sends some that way (attachment
        # placeholders `{"id": 0}`); the spec only lists the string form.
        snowflake = spec["components"]["schemas"]["SnowflakeType"]
        spec["components"]["schemas"]["SnowflakeType"] = {
            "anyOf": [snowflake, {"type": "integer", "minimum": 0}]
        }
        self._spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)
        templates = [PathTemplate(t, _template_pattern(t), t.count("{")) for t in spec["paths"]]
        # Literal segments (`@original`) must win over placeholders (`{message_id}`).
        self._templates = sorted(templates, key=lambda t: t.placeholders)

    @classmethod
    @functools.cache
    def load(cls, path: Path = SPEC_PATH) -> OpenApiValidator:
        """The validator for the spec file (parsed once per process)."""
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def match(self, path: str) -> str | None:
        """The OpenAPI path template a concrete API path belongs to, or None."""
        for template in self._templates:
            if template.pattern.match(path):
                return template.template
        return None

    def validate(self, method: str, path: str, body: Any) -> list[str]:
        """Human-readable schema violations of `body` for this operation (empty when valid or no schema)."""
        template = self.match(path)
        if template is None:
            return [f"{method} {path}: not an operation in Discord's API"]
        operation = self._spec["paths"][template].get(method.lower())
        if operation is None:
            return [f"{method} {template}: method not in Discord's API"]
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" not in content or body is None:
            return []
        pointer = "/".join(
            _escape_pointer(part)
            for part in (
                "paths",
                template,
                method.lower(),
                "requestBody",
                "content",
                "application/json",
                "schema",
            )
        )
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"{_SPEC_URI}#/{pointer}"}, registry=self._registry
        )
        problems = []
        for error in validator.iter_errors(body):
            # For a failed union, the closest branch's error is the useful one.
            detail = jsonschema.exceptions.best_match(error.context) if error.context else error
            where = "/".join(map(str, detail.absolute_path)) or "<body>"
            problems.append(f"{method} {template}: {where}: {detail.message[:300]}")
        return problems
