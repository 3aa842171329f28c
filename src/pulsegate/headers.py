"""The ``x-ml-*`` response headers of a gate: which ones, in which order, from what.

One builder per gate, made from its configuration (``headers`` exposure: ``all``,
``safe``, ``none``; which features are on) and holding the model version header::

    x-ml-prediction-confidence   performance_prediction
    x-ml-predicted-latency-ms    performance_prediction, once the endpoint has a forecast
    x-ml-anomaly-score           anomaly_detection
    x-ml-optimization-applied    always
    x-ml-query-count, -query-ms, -nplusone    query_analysis, once the request ran SQL
    x-ml-model-version           always

The query headers are left out of a response whose request ran no SQL before it
started: three headers saying "0" on every SQL-free request would cost each framework
a header's work (Django: ≈ 33 bytecodes of its own a header) and tell every client how
the endpoint uses the database. ``safe`` sends only the optimization and the version;
``none`` nothing. Values come from
the tables of :mod:`pulsegate.header_values` (printable ASCII by construction); the
version is sanitised when it is set.
"""

from __future__ import annotations

from pulsegate.header_values import CONFIDENCE, SCORE, tenths, whole

Header = tuple[str, str]

NO_OPTIMIZATION: Header = ("x-ml-optimization-applied", "none")


def version_header(version: object) -> Header:
    """``x-ml-model-version``: printable ASCII only (a stored version could hold
    anything), every other character shown as ``?``.

    >>> version_header("2.0\\r\\nx-evil: 1")
    ('x-ml-model-version', '2.0??x-evil: 1')
    """
    return ("x-ml-model-version", "".join(ch if " " <= ch <= "~" else "?" for ch in str(version)))


class HeaderBuilder:
    """Builds one request's ``x-ml-*`` headers for a gate's configuration."""

    __slots__ = ("anomaly", "expose", "plain_tail", "prediction", "queries", "scores",
                 "version")

    def __init__(self, expose: str, prediction: bool, anomaly: bool, queries: bool,
                 version: str) -> None:
        self.expose = expose
        #: Whether the headers carry the request's score (``all``): only then is the
        #: request scored when its response starts.
        self.scores = expose == "all"
        self.prediction = prediction
        self.anomaly = anomaly
        self.queries = queries
        self.set_version(version)

    def set_version(self, version: str) -> None:
        """The model version to report from now on (the registry's, on a deploy)."""
        self.version = version_header(version)
        #: What ``all`` ends with for most requests (nothing optimised, no SQL), made once.
        self.plain_tail = (NO_OPTIMIZATION, self.version)

    def unscored(self, optimization: str) -> list[Header]:
        """The headers of ``safe`` and ``none``, which say nothing of the request's score."""
        if self.expose == "safe":
            return [("x-ml-optimization-applied", optimization), self.version]
        return []

    def build(self, optimization: str, predicted: float | None, confidence: float,
              score: float, query_count: int, query_ms: float, nplusone: int) -> list[Header]:
        """Every header ``all`` sends, for a request scored ``score`` against an endpoint
        forecast of ``predicted`` ms (None before its first request) held with
        ``confidence``, that ran ``query_count`` statements in ``query_ms`` so far."""
        out: list[Header] = []
        if self.prediction:
            out.append(("x-ml-prediction-confidence", CONFIDENCE[whole(confidence + 0.5)]))
            if predicted is not None:
                out.append(("x-ml-predicted-latency-ms", tenths(predicted)))
        if self.anomaly:
            out.append(("x-ml-anomaly-score", SCORE[whole(score * 1000.0 + 0.5)]))
        if optimization == "none" and not query_count:
            out += self.plain_tail
            return out
        out.append(NO_OPTIMIZATION if optimization == "none"
                   else ("x-ml-optimization-applied", optimization))
        if query_count and self.queries:
            out += (("x-ml-query-count", str(query_count)),
                    ("x-ml-query-ms", tenths(query_ms)),
                    ("x-ml-nplusone", str(nplusone)))
        out.append(self.version)
        return out
