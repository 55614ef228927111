"""Every named exception the hub raises, in one place."""

from __future__ import annotations

from dataclasses import dataclass


class HubError(Exception):
    """Base class of the hub's own errors."""


class InvalidEntityId(HubError, ValueError):
    """An entity id that is not `domain.object_id` in lower-case letters, digits and `_`."""


class InvalidStateError(HubError, ValueError):
    """A state value that cannot be stored (longer than 255 characters)."""


class ServiceNotFound(HubError):
    """No service is registered under that `domain.service`."""

    def __init__(self, domain: str, service: str) -> None:
        super().__init__(f"Service {domain}.{service} not found")
        self.domain = domain
        self.service = service


class ServiceValidationError(HubError):
    """The data given to a service does not match its schema."""


class NotSupported(HubError):
    """The entity or integration does not offer that action."""


class Unauthorized(HubError):
    """The caller's context lacks the permission for this action."""


class TemplateError(HubError):
    """A template failed to compile or to render; the message says why."""


class IntegrationError(HubError):
    """An integration failed to load or to set up."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in the configuration, located as `file:line`."""

    file: str
    line: int | None
    message: str
    domain: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


class ConfigError(HubError):
    """The configuration is invalid; `issues` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue] | str) -> None:
        if isinstance(issues, str):
            issues = [ConfigIssue("<config>", None, issues)]
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))
