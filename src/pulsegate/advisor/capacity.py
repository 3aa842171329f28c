r"""Capacity advice: how many workers (requests served at once) and replicas the
observed peak needs for a latency target, from a queueing model.

Inputs: the peak arrival rate :math:`\lambda` (requests/s), the service time's mean
:math:`E[S]` and squared coefficient of variation :math:`c_s^2`, the arrivals'
:math:`c_a^2` (1: Poisson), the target :math:`T` and the share :math:`q` of requests
that must finish within it. The model is M/G/c read through Erlang C with the
Allen-Cunneen correction:

* offered load :math:`a = \lambda E[S]`, utilisation :math:`\rho = a/c` (< 1);
* probability of waiting (Erlang C)
  :math:`C(c, a) = \frac{a^c/c!\,\cdot\,1/(1-\rho)}{\sum_{k<c} a^k/k! + a^c/c!\,\cdot\,1/(1-\rho)}`;
* waiting-time tail :math:`P(W_q > t) \approx C(c,a)\,e^{-(c/E[S] - \lambda)\,t/k}` with
  :math:`k = (c_a^2 + c_s^2)/2` (exact for M/M/c, :math:`k = 1`; Allen-Cunneen scales
  the mean wait by :math:`k`);
* response tail, the wait and the service independent, the service log-normal with the
  measured mean and :math:`c_s^2` (:math:`\sigma^2 = \ln(1 + c_s^2)`):
  :math:`P(R > T) = P(S > T) + \int_0^T f_S(s)\,P(W_q > T - s)\,ds` (256-point rule);
* **workers** :math:`c^*`: the smallest :math:`c > a` with :math:`P(R > T) \le 1 - q`.
  When :math:`P(S > T) > 1 - q` no number of workers meets the target (the requests
  are slow by themselves): the advice says so;
* **replicas**: :math:`\lceil c^* / L \rceil`, :math:`L` the concurrency one process
  sustains at its target -- the allocator's learnt limit.

>>> workers_needed(800.0, 0.010, 1.0, 0.050, 0.99)   # exponential service: M/M/c
10
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Advice", "advise", "erlang_c", "response_tail", "workers_needed"]


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in M/M/c with offered load ``a`` (< c).

    >>> round(erlang_c(2, 1.0), 4)
    0.3333
    """
    if a <= 0:
        return 0.0
    if a >= c:
        return 1.0
    # sum a^k/k! computed in a ratio form that does not overflow for large c
    term = 1.0
    total = 1.0
    for k in range(1, c):
        term *= a / k
        total += term
    last = term * a / c / (1.0 - a / c)
    return last / (total + last)


def _lognormal_cdf(x: float, mean: float, cv2: float) -> float:
    if x <= 0:
        return 0.0
    sigma2 = math.log1p(max(cv2, 1e-12))
    mu = math.log(mean) - sigma2 / 2.0
    return 0.5 * (1.0 + math.erf((math.log(x) - mu) / math.sqrt(2.0 * sigma2)))


def _gamma_p(a: float, x: float) -> float:
    """Regularised lower incomplete gamma :math:`P(a, x)` (series below :math:`a + 1`,
    Lentz's continued fraction above)."""
    if x <= 0:
        return 0.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        n = 1
        while abs(term) > abs(total) * 1e-13 and n < 10_000:
            term *= x / (a + n)
            total += term
            n += 1
        return min(1.0, total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-13:
            break
    return max(0.0, 1.0 - math.exp(log_front) * h)


def _gamma_cdf(x: float, mean: float, cv2: float) -> float:
    k = 1.0 / max(cv2, 1e-9)
    return _gamma_p(k, x / (mean / k))


FAMILIES = {"gamma": _gamma_cdf, "lognormal": _lognormal_cdf}


def _digamma(x: float) -> float:
    r = 0.0
    while x < 6.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    return r + math.log(x) - 0.5 / x - f * (1 / 12 - f * (1 / 120 - f / 252))


def _trigamma(x: float) -> float:
    r = 0.0
    while x < 6.0:
        r += 1.0 / (x * x)
        x += 1.0
    f = 1.0 / (x * x)
    return r + 1.0 / x + f / 2 + f / x * (1 / 6 - f * (1 / 30 - f / 42))


def from_log_moments(level: float, var: float, family: str = "gamma") -> tuple[float, float]:
    r"""Mean (the units of :math:`e^{level}`) and :math:`c_s^2` of a service time whose
    logarithm has mean ``level`` and variance ``var`` (what an endpoint model learns).
    Gamma: the shape :math:`k` solves :math:`\psi'(k) = var` (exact for the gamma
    family, the exponential included), scale :math:`e^{level - \psi(k)}`, :math:`c_s^2 =
    1/k`. Log-normal: :math:`e^{level + var/2}`, :math:`c_s^2 = e^{var} - 1`.

    >>> m, cv2 = from_log_moments(math.log(10.0) - 0.5772156649, math.pi ** 2 / 6)
    >>> round(m, 3), round(cv2, 3)          # an exponential of mean 10
    (10.0, 1.0)
    """
    var = max(var, 1e-9)
    if family == "lognormal":
        return math.exp(level + var / 2.0), math.expm1(var)
    lo, hi = 1e-4, 1e7  # psi' decreases: bisect on a log scale
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        if _trigamma(mid) > var:
            lo = mid
        else:
            hi = mid
    k = math.sqrt(lo * hi)
    return k * math.exp(level - _digamma(k)), 1.0 / k


def response_tail(c: int, lam: float, mean_s: float, cs2: float, target: float,
                  ca2: float = 1.0, points: int = 256, family: str = "gamma") -> float:
    """:math:`P(R > T)` of the module docstring."""
    a = lam * mean_s
    if a >= c:
        return 1.0
    cdf_of = FAMILIES[family]
    p_wait = erlang_c(c, a)
    decay = (c / mean_s - lam) / max(1e-9, (ca2 + cs2) / 2.0)
    tail = 1.0 - cdf_of(target, mean_s, cs2)
    step = target / points
    prev = 0.0
    for i in range(1, points + 1):
        s = i * step
        cdf = cdf_of(s, mean_s, cs2)
        mid = s - step / 2.0
        tail += (cdf - prev) * p_wait * math.exp(-decay * (target - mid))
        prev = cdf
    return min(1.0, tail)


def workers_needed(lam: float, mean_s: float, cs2: float, target: float, quantile: float,
                   ca2: float = 1.0, max_workers: int = 100_000,
                   family: str = "gamma") -> int | None:
    """The smallest worker count meeting the target (None: none can)."""
    if lam <= 0 or mean_s <= 0:
        return 1
    if 1.0 - FAMILIES[family](target, mean_s, cs2) > 1.0 - quantile:
        return None
    c = max(1, math.floor(lam * mean_s) + 1)
    while c <= max_workers:
        if response_tail(c, lam, mean_s, cs2, target, ca2, family=family) <= 1.0 - quantile:
            return c
        c += 1 if c < 64 else max(1, c // 64)
    return None


@dataclass
class Advice:
    workers: int | None
    replicas: int | None
    peak_rps: float
    mean_service_ms: float
    service_cv2: float
    target_ms: float
    quantile: float
    utilisation: float | None
    limit_per_replica: float | None
    note: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def advise(peak_rps: float, mean_service_s: float, service_cv2: float, target_s: float,
           quantile: float = 0.99, limit_per_replica: float | None = None,
           arrival_cv2: float = 1.0, family: str = "gamma") -> Advice:
    """Workers and replicas for ``peak_rps`` (see the module docstring)."""
    c = workers_needed(peak_rps, mean_service_s, service_cv2, target_s, quantile, arrival_cv2,
                       family=family)
    replicas = None
    note = f"M/G/c (Erlang C, Allen-Cunneen), {family} service"
    if c is None:
        note = (f"no worker count meets it: more than {1 - quantile:.1%} of requests take "
                f"longer than the target by themselves")
    elif limit_per_replica:
        replicas = max(1, math.ceil(c / limit_per_replica))
    util = peak_rps * mean_service_s / c if c else None
    return Advice(c, replicas, round(peak_rps, 3), round(mean_service_s * 1000.0, 3),
                  round(service_cv2, 3), round(target_s * 1000.0, 3), quantile,
                  None if util is None else round(util, 3), limit_per_replica, note)


def service_mixture(parts: list[tuple[float, float, float]], family: str = "gamma"
                    ) -> tuple[float, float]:
    """Mean (s) and :math:`c_s^2` of a mixture of service times, each part ``(weight,
    mean log-ms, variance of log-ms)`` -- the endpoint models' latency level and spread,
    weighted by their requests -- each read by :func:`from_log_moments`.

    >>> m, cv2 = service_mixture([(1.0, math.log(10.0), 0.0)], "lognormal")
    >>> round(m, 4), round(cv2, 4)
    (0.01, 0.0)
    """
    total = sum(w for w, _l, _v in parts)
    if total <= 0:
        return 0.0, 1.0
    read = [(w, *from_log_moments(level, var, family)) for w, level, var in parts]
    m1 = sum(w * m for w, m, _c in read) / total
    m2 = sum(w * m * m * (1.0 + c) for w, m, c in read) / total
    cv2 = max(0.0, m2 / (m1 * m1) - 1.0) if m1 > 0 else 1.0
    return m1 / 1000.0, cv2
