"""pulsegate: in-process request intelligence for ASGI and WSGI applications."""

from pulsegate.config import Config, ConfigError
from pulsegate.context import set_endpoint
from pulsegate.engine import PulseGate
from pulsegate.queries.capture import capture

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "PulseGate", "__version__", "capture", "set_endpoint"]
