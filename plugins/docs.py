"""The bridge's ``/docs`` page: a plain, self-contained HTML reference built from its OpenAPI document.

FastAPI's interactive docs load Swagger UI from a CDN, which leaves a blank page in an offline studio; this
page has no scripts, styles or links to anywhere but the server itself. It lists the endpoints and every
schema's fields with their types, limits and descriptions (the same facts as ``plugins/openapi.json``).
Written by hand because the documentation renderers that work offline ship megabytes of JavaScript.
"""

from __future__ import annotations

from html import escape
from typing import Any

LIMITS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<",
          "minItems": "items >=", "maxItems": "items <=", "maxLength": "length <="}


def type_name(schema: dict[str, Any]) -> str:
    """A short readable type for a JSON schema: ``number``, ``list of Note``, ``string or integer``, ..."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(type_name(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(f'"{v}"' for v in schema["enum"])
    if "const" in schema:
        return f'"{schema["const"]}"'
    kind = schema.get("type", "any")
    if kind == "array":
        items = schema.get("prefixItems")
        if items:
            return "[" + ", ".join(type_name(s) for s in items) + "]"
        return "list of " + type_name(schema.get("items", {}))
    return "null" if kind == "null" else str(kind)


def limits_text(schema: dict[str, Any]) -> str:
    """The numeric and size limits of a field (looking inside ``anyOf``), e.g. ``>= 1, <= 1000``."""
    parts = [f"{word} {schema[key]}" for key, word in LIMITS.items() if key in schema]
    for option in schema.get("anyOf", ()):
        parts += [f"{word} {option[key]}" for key, word in LIMITS.items() if key in option]
    return ", ".join(parts)


def _schema_section(name: str, schema: dict[str, Any]) -> str:
    required = set(schema.get("required", ()))
    rows = []
    for field, spec in schema.get("properties", {}).items():
        default = "required" if field in required else escape(repr(spec["default"])) if "default" in spec \
            else ""
        rows.append(f"<tr><td><code>{escape(field)}</code></td><td>{escape(type_name(spec))}</td>"
                    f"<td>{default}</td><td>{escape(limits_text(spec))}</td>"
                    f"<td>{escape(spec.get('description', ''))}</td></tr>")
    table = ("<table><tr><th>field</th><th>type</th><th>default</th><th>limits</th><th>meaning</th></tr>"
             + "".join(rows) + "</table>") if rows else ""
    return (f'<h3 id="{escape(name)}">{escape(name)}</h3><p>{escape(schema.get("description", ""))}</p>'
            f"{table}")


def render_docs(openapi: dict[str, Any]) -> str:
    """The HTML page for an OpenAPI document (as ``FastAPI.openapi()`` returns it)."""
    info = openapi.get("info", {})
    endpoints = []
    for path, methods in openapi.get("paths", {}).items():
        for method, operation in methods.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            takes = type_name(body["schema"]) if "schema" in body else ""
            answers = []
            for status, answer in operation.get("responses", {}).items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                answers.append(f"{status}: {type_name(schema)}" if schema else status)
            endpoints.append(
                f"<tr><td>{escape(method.upper())}</td><td><code>{escape(path)}</code></td>"
                f"<td>{escape(operation.get('description') or operation.get('summary', ''))}</td>"
                f"<td>{escape(takes)}</td><td>{escape('; '.join(answers))}</td></tr>")
    schemas = openapi.get("components", {}).get("schemas", {})
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        f"<title>{escape(info.get('title', 'API'))}</title></head><body>"
        f"<h1>{escape(info.get('title', 'API'))} {escape(info.get('version', ''))}</h1>"
        f"<p>{escape(info.get('description', ''))}</p>"
        '<p>The machine-readable schema: <a href="/openapi.json">/openapi.json</a>. The full protocol, with '
        "examples: plugins/PROTOCOL.md in the amt repository. A WebSocket at <code>/ws</code> takes the same "
        "requests as text messages and streams the notes.</p>"
        "<h2>Endpoints</h2><table><tr><th>method</th><th>path</th><th>what</th><th>body</th>"
        "<th>answers</th></tr>" + "".join(endpoints) + "</table>"
        "<h2>Schemas</h2>" + "".join(_schema_section(n, s) for n, s in sorted(schemas.items()))
        + "</body></html>"
    )
