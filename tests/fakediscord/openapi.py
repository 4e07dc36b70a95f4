"""Checks requests the bot sends, and the fake's answers, against Discord's published OpenAPI description."""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# Discord's own spec, copied into the repository (source and version in spec/README.md); set
# DISCORD_OPENAPI_SPEC to check against another copy.
SPEC_PATH = Path(
    os.environ.get("DISCORD_OPENAPI_SPEC", Path(__file__).resolve().parent / "spec" / "discord-openapi.json")
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

    def _operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | str:
        """(template, operation) for a concrete request, or the reason there is none."""
        template = self.match(path)
        if template is None:
            return f"{method} {path}: not an operation in Discord's API"
        operation = self._spec["paths"][template].get(method.lower())
        if operation is None:
            return f"{method} {template}: method not in Discord's API"
        return template, operation

    def validate(
        self, method: str, path: str, body: Any, query: Mapping[str, str] | None = None
    ) -> list[str]:
        """Human-readable violations of the request (query names, JSON body); empty when it is valid."""
        found = self._operation(method, path)
        if isinstance(found, str):
            return [found]
        template, operation = found
        known = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        problems = [
            f"{method} {template}: query parameter {name!r} not in Discord's API"
            for name in query or {}
            if name not in known
        ]
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content and body is not None:
            pointer = ("paths", template, method.lower(), "requestBody", "content", "application/json")
            problems += self._check(f"{method} {template}", (*pointer, "schema"), body)
        return problems

    def validate_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Violations of the answer the fake gave: a status Discord documents, and the documented body."""
        found = self._operation(method, path)
        if isinstance(found, str):
            return []  # the request itself is already reported
        template, operation = found
        if status >= 500:
            # Discord documents no server errors: they come from its edge (JSON, HTML or plain text).
            return []
        responses = operation.get("responses", {})
        key = str(status) if str(status) in responses else f"{str(status)[0]}XX"
        where = f"{method} {template} -> {status}"
        if key not in responses:
            return [f"{where}: status not documented (documented: {', '.join(responses)})"]
        response = responses[key]
        pointer: tuple[str, ...] = ("paths", template, method.lower(), "responses", key)
        if "$ref" in response:
            name = response["$ref"].rsplit("/", 1)[1]
            response, pointer = self._spec["components"]["responses"][name], ("components", "responses", name)
        content = response.get("content", {})
        if "application/json" not in content:
            return [] if body is None else [f"{where}: Discord answers without a body here"]
        if body is None:
            return [f"{where}: Discord answers with a JSON body here"]
        return self._check(where, (*pointer, "content", "application/json", "schema"), body)

    def _check(self, where: str, schema_at: tuple[str, ...], value: Any) -> list[str]:
        """Violations of `value` against the schema at the JSON pointer made of `schema_at`."""
        pointer = "/".join(_escape_pointer(part) for part in schema_at)
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"{_SPEC_URI}#/{pointer}"}, registry=self._registry
        )
        problems = []
        for error in validator.iter_errors(value):
            # For a failed union, the closest branch's error is the useful one.
            detail = jsonschema.exceptions.best_match(error.context) if error.context else error
            at = "/".join(map(str, detail.absolute_path)) or "<body>"
            problems.append(f"{where}: {at}: {detail.message[:300]}")
        return problems
