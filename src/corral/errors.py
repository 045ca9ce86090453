"""Corral's one error tree: every failure a user can see is one of these.

    CorralError              base; its message says what was wrong and what to do
    ├── ConfigError          a setting or file is invalid (names the field and what is allowed)
    ├── ModelLoadError       a model could not be found or loaded (says what was tried)
    ├── RequestError         answered to an API client in OpenAI's error envelope
    │   ├── InvalidRequest        400 (malformed JSON, a bad or missing field)
    │   ├── AuthenticationFailed  401 (no key; unknown, revoked or expired key)
    │   ├── PermissionDenied      403 (the key may not do this)
    │   ├── NotFound              404 (unknown model, team, key, ...)
    │   ├── Conflict              409 (the thing already exists)
    │   ├── PayloadTooLarge       413
    │   ├── RateLimited           429 rate_limit_exceeded / budget_exceeded (Retry-After)
    │   ├── Overloaded            503 (Retry-After; try again shortly)
    │   ├── UpstreamUnavailable   502 (the engine could not be reached or failed)
    │   └── UpstreamTimeout       504 (the engine did not answer in time)
    ├── TemporaryError       a retryable control-plane failure (carries a delay)
    └── PermanentError       a control-plane failure that retrying will not fix

Foreign exceptions (aiohttp, SQLAlchemy, Kubernetes, NVML) are translated where they enter
Corral with ``raise ... from exc``; nothing above the adapters catches a foreign exception type.
Messages never contain secrets (keys, upstream credentials) or prompt text.
"""

from __future__ import annotations


class CorralError(Exception):
    """Base of every error Corral raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(CorralError):
    """Configuration is invalid; the process must not start half-configured."""


class ModelLoadError(CorralError):
    """A model could not be located or loaded."""


class RequestError(CorralError):
    """An error answered to an API client; rendered in OpenAI's error envelope."""

    status: int = 400
    error_type: str = "invalid_request_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after = retry_after

    def envelope(self) -> dict[str, dict[str, str | None]]:
        """The body OpenAI's SDKs expect: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(RequestError):
    status = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(RequestError):
    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(RequestError):
    status = 403
    error_type = "permission_denied"
    default_code = "permission_denied"


class NotFound(RequestError):
    status = 404
    error_type = "not_found_error"
    default_code = "not_found"


class Conflict(RequestError):
    status = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class PayloadTooLarge(RequestError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(RequestError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class Overloaded(RequestError):
    status = 503
    error_type = "server_error"
    default_code = "overloaded"


class UpstreamUnavailable(RequestError):
    status = 502
    error_type = "server_error"
    default_code = "upstream_error"


class UpstreamTimeout(RequestError):
    status = 504
    error_type = "server_error"
    default_code = "upstream_timeout"


class TemporaryError(CorralError):
    """A control-plane failure worth retrying after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(CorralError):
    """A control-plane failure that retrying will not fix; a human must act."""
