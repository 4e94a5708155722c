"""Writes the JSON schemas of Cohere's v2 Chat API, derived from the official `cohere` Python SDK, for the
Cohere mock to check requests against (and its tests to check the mock's answers against).

Cohere publishes the API as an OpenAPI document and generates the SDK from it with Fern, so the SDK's
types are that definition in executable form: the request body is `V2Client.chat`'s keyword parameters
(plus the `stream` flag the SDK sets itself), the answers are `V2ChatResponse` and the
`V2ChatStreamResponse` union of stream events. pydantic turns them into JSON Schema (by alias, as the
wire spells them). Two of Fern's client-side leniencies are taken back so the schema says what the API
accepts rather than what an old SDK tolerates:
- every enum is widened with `typing.Any` (`anyOf: [{enum}, {}]`) so a new value does not break old
  clients; the empty branch is dropped;
- every model allows extra fields (`additionalProperties: true`); in the request schema models are
  closed again, as the API refuses unknown fields (free-form dicts such as a document's `data` stay
  open). The response schemas keep them open: the API does send fields the SDK does not model (e.g.
  `citations: []` in `message-start`), and a client built on the SDK accepts them.
- a discriminant (a `const` property, e.g. a message's `role`) is required: the SDK defaults it, the
  wire must carry it.

Usage: cohere_schema.py OUT.json   -> {"request": ..., "response": ..., "stream_event": ...}
"""

import inspect
import json
import os
import sys
import typing

import pydantic
from cohere.v2.client import V2Client
from cohere.v2.types.v2chat_response import V2ChatResponse
from cohere.v2.types.v2chat_stream_response import V2ChatStreamResponse


def request_model() -> type:
    fields = {}
    for name, param in inspect.signature(V2Client.chat).parameters.items():
        if name in ("self", "request_options"):
            continue
        annotation = param.annotation
        if param.default is inspect.Parameter.empty:
            fields[name] = (annotation, ...)
        else:
            fields[name] = (annotation, None)
    # The SDK adds `stream` itself: false from chat(), true from chat_stream().
    fields["stream"] = (typing.Optional[bool], None)
    return pydantic.create_model(
        "V2ChatRequest",
        __config__=pydantic.ConfigDict(extra="forbid"),
        **fields,
    )


def tighten(node, close: bool):
    """Undoes Fern's client-side leniencies (see the module doc) in place; `close` closes the models."""
    if isinstance(node, list):
        for item in node:
            tighten(item, close)
        return
    if not isinstance(node, dict):
        return
    for key in ("anyOf", "oneOf"):
        branches = node.get(key)
        if isinstance(branches, list) and any(b.get("enum") for b in branches if isinstance(b, dict)):
            node[key] = [b for b in branches if b != {}]
    if node.get("type") == "object" and "properties" in node:
        if close:
            node["additionalProperties"] = False
        consts = [k for k, v in node["properties"].items() if isinstance(v, dict) and "const" in v]
        required = node.setdefault("required", [])
        required.extend(k for k in consts if k not in required)
    for value in node.values():
        tighten(value, close)


def schema_of(tp, close: bool) -> dict:
    schema = pydantic.TypeAdapter(tp).json_schema(by_alias=True)
    tighten(schema, close)
    return schema


def main() -> None:
    out = sys.argv[1]
    doc = {
        "cohere_version": __import__("cohere").__version__,
        "request": schema_of(request_model(), close=True),
        "response": schema_of(V2ChatResponse, close=False),
        "stream_event": schema_of(V2ChatStreamResponse, close=False),
    }
    # Written whole, then renamed: tests in parallel may read it while another test writes it.
    tmp = f"{out}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
