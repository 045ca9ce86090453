"""The forbidden-labels rule: no label may identify a caller, carry content or hold a URL."""

from __future__ import annotations

_CALLER = "key and user ids identify one caller: unbounded series, and a handle on a secret"
_CONTENT = "request and response content never reaches metrics (nor is it stored by default)"
_ADDRESS = "URLs and addresses may embed credentials and are unbounded; use the deployment name"
_CREDENTIAL = "credentials never appear in metrics"
_UNIQUE = "an id unique per request or session makes one series each"

# A label is forbidden when any of its "_"-separated words is one of these...
_WORDS: dict[str, str] = {
    "key": _CALLER,
    "keys": _CALLER,
    "apikey": _CALLER,
    "user": _CALLER,
    "userid": _CALLER,
    "email": "e-mail addresses are personal data",
    "prompt": _CONTENT,
    "prompts": _CONTENT,
    "url": _ADDRESS,
    "uri": _ADDRESS,
    "secret": _CREDENTIAL,
    "password": _CREDENTIAL,
    "authorization": _CREDENTIAL,
    "bearer": _CREDENTIAL,
}
# ...or when it is one of these names.
_NAMES: dict[str, str] = {
    "request_id": _UNIQUE,
    "trace_id": _UNIQUE,
    "span_id": _UNIQUE,
    "session_id": _UNIQUE,
    "message": _CONTENT,
    "messages": _CONTENT,
    "content": _CONTENT,
    "completion": _CONTENT,
    "input": _CONTENT,
    "host": _ADDRESS,
    "hostname": _ADDRESS,
    "ip": _ADDRESS,
    "address": _ADDRESS,
    "path": "raw request paths are unbounded (every probe makes a series); use the endpoint kind",
}


def forbidden_reason(label: str) -> str | None:
    """Why ``label`` may not be one of Corral's metric labels, or None when it may."""
    name = label.lower()
    if name in _NAMES:
        return _NAMES[name]
    for word in name.split("_"):
        if word in _WORDS:
            return _WORDS[word]
    return None
