"""A local-first IoT hub. The public API for plugins is re-exported here."""

from .core import Context, CoreState, Event, EventBus, Hub, State, StateMachine
from .services import ServiceCall, SupportsResponse
from .exceptions import ConfigError, HubError, IntegrationError, ServiceNotFound, ServiceValidationError

__all__ = [
    "ConfigError",
    "Context",
    "CoreState",
    "Event",
    "EventBus",
    "Hub",
    "HubError",
    "IntegrationError",
    "ServiceCall",
    "ServiceNotFound",
    "ServiceValidationError",
    "State",
    "StateMachine",
    "SupportsResponse",
]
__version__ = "0.1.0"
