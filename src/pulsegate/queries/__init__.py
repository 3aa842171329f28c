"""SQL statements per request: events, fingerprints, N+1 detection, ``capture()``.

Framework- and ORM-free; the adapters (``pulsegate.sqlalchemy``,
``pulsegate.django``) feed :class:`QueryEvent` objects through the ``query_sink``
ContextVar.
"""

from pulsegate.queries.capture import Capture, QueryProblemsError, capture
from pulsegate.queries.events import QueryEvent
from pulsegate.queries.features import QueryFeatureExtractor, QueryFeatures
from pulsegate.queries.fingerprint import FingerprintCache, SQLFingerprint, fingerprint
from pulsegate.queries.insights import QueryInsights
from pulsegate.queries.nplusone import Analysis, Detection, NPlusOneDetector

__all__ = [
    "Analysis",
    "Capture",
    "Detection",
    "FingerprintCache",
    "NPlusOneDetector",
    "QueryEvent",
    "QueryFeatureExtractor",
    "QueryFeatures",
    "QueryInsights",
    "QueryProblemsError",
    "SQLFingerprint",
    "capture",
    "fingerprint",
]
