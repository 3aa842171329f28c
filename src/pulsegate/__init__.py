"""pulsegate: in-process request intelligence for ASGI and WSGI applications."""

from pulsegate.config import Config, ConfigError
from pulsegate.context import set_endpoint
from pulsegate.engine import PulseGate
from pulsegate.queries.capture import capture
from pulsegate.version import __version__

__all__ = ["Config", "ConfigError", "PulseGate", "__version__", "capture", "set_endpoint"]
