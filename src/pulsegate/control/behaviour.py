"""Per-client behaviour profiles and the suspicion score behind the adaptive rate.

Each finished request updates its client's :class:`Profile` (O(1), a few floats):

* ``rate``: requests/s as a time-decayed count, ``r <- r e^(-dt/tau) + 1/tau`` with
  ``tau`` the policy window (a page load's burst barely moves it, a steady flood does);
* inter-arrival mean and variance (EWMA) -> coefficient of variation ``cv``; scripts
  are regular (cv near 0), people are bursty (cv >= 1);
* ``err``: EWMA of the 4xx/5xx indicator;
* ``ua``: EWMA of "the User-Agent changed since the last request";
* ``param``: EWMA of "same route, a new non-empty query string" (rotating
  credentials/parameters; dropping the query is no new one, so a link with a tracking
  parameter is one event, not two);
* ``div``: EWMA of "a path not among the last 48 distinct ones seen" (scrapers walk
  the site; a page-loader fetches the same few dozen assets load after load);
* ``write``: EWMA of the non-GET/HEAD indicator (kept for reports; not scored alone).

Suspicion, a noisy-OR of per-feature evidence ``e_i`` in [0, 1] with weights ``w_i``::

    s = 1 - prod_i (1 - w_i * e_i)

    e_rate  = clip(rate / (nominal_rate * m) - 1, 0, 1)    above its allowed rate (m: multiplier)
    e_err   = clip((err - 0.25) / 0.5, 0, 1)               mostly failing requests
    e_reg   = clip((0.35 - cv) / 0.3, 0, 1)                machine-regular timing
    e_ua    = clip((ua - 0.1) / 0.3, 0, 1)                  rotating user agents
    e_param = clip((param - 0.6) / 0.4, 0, 1) * err_gate   rotating params, with failures
    e_div   = clip((div - 0.85) / 0.15, 0, 1)              crawling, never revisiting

Optionally (``behaviour_forest``) a scikit-learn IsolationForest is trained in the
background on all clients' feature vectors; its anomaly score ``a`` (the paper's
``s(x)``, 0.5 = ordinary) joins the noisy-OR as ``e_if = clip((a - 0.55) / 0.15)`` with
weight 0.4 -- unusual for this site, in combinations no fixed threshold anticipates.

Each ``e_i`` is raised to ``clip((z_i - 3) / 3, 0, 1)`` when the feature's z-score
against the population (EWMA mean/variance over all clients) says it is extreme even
if under the absolute threshold. One event among many must not count, a sustained
change must: an event (an error, a User-Agent change, a new query string on a route, a
new path) lifts its EWMA by at most ``_BETA`` = 0.1 (from 0), so the z-scores of
``err``, ``ua``, ``param`` and ``div`` are of the feature minus 0.1, and ``e_ua`` starts
at 0.1 -- a browser update, a link with a tracking parameter or a new page leaves a
steady reader's suspicion at 0; a second change within a few requests, or a UA rotating
on every request, still counts (issue 23). Weights: rate 0.4, err 0.6, reg 0.35, ua 0.6,
param 0.5, div 0.3 -- neither rate (the bucket already limits it) nor timing
regularity alone makes a client suspicious: each needs a second signal.
``confidence = n / (n + 10)`` (number of requests seen); the limiter applies a
multiplier only when it exceeds ``prediction_threshold``.

A profile never holds a request's strings -- a client chooses their length. It keeps
fixed-size digests instead (from the process's keyed string hash, so a client cannot
aim collisions at another): the last User-Agent's digest, a ring of the last 48
distinct path digests, and a 16-slot table of (route digest, query digest) pairs for
the parameter churn (a route whose slot is held by another route is not tracked, as
routes beyond the 16th were not before). Table and ring keep 16 bits of each digest
(odd, so 1 in 32 768 that two differ yet match): 48 paths in the bytes 8 took at 32
bits -- a ring of 8 called every asset of a 40-asset page "new" on every load, so a
page-loader looked like a crawler and was never trusted (issue 23). Its size is the same for a 10-byte and a
10 MB request (``benchmarks/memory.py --clients``: 957 bytes per client with its bucket,
map entries and key, for 16 B to 8 KiB request fields, before issue 23's abrupt-change
detector; with it, the failure streak, the burst history, the rate CUSUM, the write
share, the ramp flag, the fast rate test and the last request's time in one 17-double
array, 1 015 by ``tests/control/test_behaviour_memory.py``).

Profiles live in a bounded LRU (``max_clients``). Evicting a client that was treated
as suspicious leaves a compact penalty record (one float: its suspicion) in a second,
bounded map, and a returning client starts from it -- eviction can never launder a
punished client into a fresh one.
"""

from __future__ import annotations

import math
from array import array

from pulsegate.bounded import BoundedLRU
from pulsegate.control.behaviour_change import (
    BURST,
    FAILS,
    LAST_T,
    PEAK,
    RAMPED,
    RUN,
    SINCE,
    SPREAD_INIT,
    WRITE,
    ChangeDetector,
)

FEATURES = ("rate", "err", "reg", "ua", "param", "div")
WEIGHTS = (0.4, 0.6, 0.35, 0.6, 0.5, 0.3)
FOREST_WEIGHT = 0.4  # the optional IsolationForest term joins the noisy-OR with this weight
_BETA = 0.1  # per-request EWMA weight: one event lifts a rate feature from 0 to this
#: features that are EWMAs of an event indicator (err, ua, param, div): their z-scores are
#: of the feature minus one event's weight, so one event among many is never extreme
EVENT_FEATURES = (1, 3, 4, 5)
_POP_BETA = 0.002  # population statistics: slow, so one burst cannot shift "normal"
PATH_RING = 48  # distinct recent paths remembered (16-bit digests)
LOW16 = 0xFFFF  # what a profile keeps of a digest (odd digests stay odd)
AUTH_FAILURES = (401, 403)  # statuses that extend a client's failure streak
QUERY_SLOTS = 16  # routes whose last query string is remembered (digests)
PATHS = 2 * QUERY_SLOTS  # where the path ring starts in a profile's digest array


def digest(value: str | None) -> int:
    """A request string as a 32-bit odd number; 0 for None (so ``""`` and None differ).

    >>> digest(None), digest("") != 0, digest("/a") == digest("/a")
    (0, True, True)
    """
    return 0 if value is None else (hash(value) & 0xFFFFFFFE) | 1


NO_QUERY = digest("") & LOW16  # what a profile keeps of an empty query string


class Profile:
    __slots__ = ("change", "digests", "div", "err", "forest", "ia_mean", "ia_var", "last_ua",
                 "n", "param", "path_next", "rate", "suspicion", "ua")

    def __init__(self, prior: float = 0.0) -> None:
        self.n = 0
        self.rate = 0.0
        self.ia_mean = 0.0
        self.ia_var = 0.0
        self.err = 0.0
        self.ua = 0.0
        self.param = 0.0
        self.div = 0.0
        self.last_ua = 0  # digest of the last User-Agent; 0 = none seen yet
        #: one array of 16-bit digests (one array header instead of two, per client):
        #: query slot i is (route digest, query digest) at [2i], [2i+1], 0 = free; from
        #: PATHS on, a ring of PATH_RING distinct path digests
        self.digests = array("H", bytes(2 * (PATHS + PATH_RING)))
        self.path_next = PATHS
        self.suspicion = prior
        #: the abrupt-change detector's state, one flat array (a float object per field
        #: would cost ~100 bytes more per client): [SINCE] the last abrupt change
        #: (-inf: none yet), [BURST] fast rate (time constant tau / 6), [BASE_RATE] and
        #: [SPREAD] the median of its log and the median deviation from it, [BASE_DIV]
        #: usual share of new paths, [SHIFT_DIV] / [SHIFT_ERR] / [SHIFT_RATE] the CUSUMs
        #: (see behaviour_change.ChangeDetector.shift); [FAILS] consecutive auth failures (401/403) since
        #: the last success; [RUN] requests in the current burst and [PEAK] the largest
        #: recent one (see ChangeDetector.burst); [WRITE] the share of writes; [RAMPED]
        #: 1 from a rate alarm until its fast rate is back under the nominal rate;
        #: [GAP_MED] / [S_FAST] / [FAST_T0] the fast rate test's median log gap, CUSUM
        #: and the start of its run (ChangeDetector.fast_rate); [LAST_T] the time of the
        #: last request (-1: none yet; a float object would cost 24 bytes more)
        self.change = array("d", (-math.inf, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                                  SPREAD_INIT, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0))
        #: evidence from the optional IsolationForest (set in the background), in [0, 1]
        self.forest = 0.0

    @property
    def cv(self) -> float:
        """Coefficient of variation of inter-arrival times (1.0 until known)."""
        if self.n < 10 or self.ia_mean <= 0:
            return 1.0
        return math.sqrt(max(self.ia_var, 0.0)) / self.ia_mean

    @property
    def last_t(self) -> float:
        """Time of the client's last request (-1.0: none yet)."""
        return self.change[LAST_T]

    @property
    def since(self) -> float:
        """Time of the client's last abrupt change (-inf: none seen)."""
        return self.change[SINCE]

    @property
    def ramped(self) -> bool:
        """Its rate rose abruptly above its habit (the rate alarm) and its rate over
        window / 6 has not been back under the nominal rate since."""
        return self.change[RAMPED] > 0.0

    @property
    def auth_failures(self) -> int:
        """Consecutive 401/403 answers since the client's last success."""
        return int(self.change[FAILS])

    @property
    def peak_burst(self) -> float:
        """The client's largest recent burst (requests closer than the nominal interval)."""
        return max(self.change[PEAK], self.change[RUN])

    @property
    def write(self) -> float:
        """EWMA of the non-GET/HEAD indicator (kept for reports; not scored)."""
        return self.change[WRITE]

    @property
    def confidence(self) -> float:
        return self.n / (self.n + 10.0)

    def features(self, nominal_rate: float) -> tuple[float, ...]:
        return (self.rate / nominal_rate if nominal_rate > 0 else 0.0, self.err,
                1.0 - min(self.cv, 1.0), self.ua, self.param, self.div)


def _clip(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def evidence(f: tuple[float, ...], z: tuple[float, ...] | None = None) -> list[float]:
    """Per-feature evidence in [0, 1] (see the module docstring)."""
    rate, err, reg, ua, param, div = f
    cv = 1.0 - reg
    e = [_clip(rate - 1.0), _clip((err - 0.25) / 0.5), _clip((0.35 - cv) / 0.3),
         _clip((ua - _BETA) / 0.3), _clip((param - 0.6) / 0.4) * _clip(err / 0.25),
         _clip((div - 0.85) / 0.15)]
    if z is not None:
        e = [max(ei, _clip((zi - 3.0) / 3.0)) for ei, zi in zip(e, z, strict=True)]
    return e


def suspicion(e: list[float]) -> float:
    keep = 1.0
    for w, ei in zip(WEIGHTS, e, strict=True):
        keep *= 1.0 - w * ei
    return 1.0 - keep


class BehaviourModel:
    """Bounded map of client profiles plus population statistics."""

    def __init__(self, nominal_rate: float, max_clients: int = 10_000, window: float = 60.0,
                 shift_rate: float = 4.0) -> None:
        self.nominal_rate = nominal_rate
        self.tau = min(max(window, 1.0), 3600.0)
        #: bursts and abrupt changes (trust lost fast): pulsegate.control.behaviour_change
        self.detector = ChangeDetector(nominal_rate, self.tau, shift_rate)
        self.max_clients = max_clients
        self.profiles: BoundedLRU[str, Profile] = BoundedLRU(max_clients)
        #: Suspicion of evicted clients, so forgetting a profile is no amnesty.
        self.penalties: BoundedLRU[str, float] = BoundedLRU(max_clients)
        self.pop_mean = [0.0] * len(FEATURES)
        self.pop_var = [0.0] * len(FEATURES)
        self.pop_n = 0
        self.evictions = 0

    def get(self, key: str) -> Profile:
        p = self.profiles.touch(key)
        if p is not None:
            return p
        p = Profile(self.penalties.pop(key, 0.0))
        evicted = self.profiles.put(key, p)
        if evicted is not None:
            self.evictions += 1
            old_key, old = evicted
            if old.suspicion >= 0.25:
                self.penalties.put(old_key, old.suspicion)
        return p

    def update(self, key: str, now: float, method: str, route: str, path: str,
               status: int, user_agent: str | None = None, query: str | None = None,
               allowance: float = 1.0) -> Profile:
        """Fold one finished request into its client's profile; returns the profile.

        ``allowance`` is the client's current rate multiplier: its rate is judged
        against what it is allowed (a trusted client may use its 2x without losing
        trust; a punished one is judged against its reduced rate)."""
        return self.update_digests(key, now, method, route, path, status, digest(user_agent),
                                   digest(query or ""), allowance)

    def update_digests(self, key: str, now: float, method: str, route: str, path: str,
                       status: int, ua: int, q: int, allowance: float = 1.0) -> Profile:
        """As :meth:`update`, with the User-Agent and query string already reduced to
        ``digest(user_agent)`` and ``digest(query or "")`` -- what a queue of finished
        requests holds, so its entries do not grow with the request."""
        p = self.get(key)
        b = _BETA
        tau = self.tau
        fast_tau = self.detector.fast_tau
        ia = 0.0
        c = p.change
        if c[LAST_T] >= 0.0:
            ia = max(now - c[LAST_T], 1e-6)
            self.detector.burst(p.change, ia)
            p.rate = p.rate * math.exp(-ia / tau) + 1.0 / tau
            c[BURST] = c[BURST] * math.exp(-ia / fast_tau) + 1.0 / fast_tau
            if p.n == 1:
                p.ia_mean = ia
            else:
                d = ia - p.ia_mean
                p.ia_mean += b * d
                p.ia_var = (1 - b) * (p.ia_var + b * d * d)
        else:
            p.rate = 1.0 / tau
            p.change[BURST] = 1.0 / fast_tau
            p.change[RUN] = 1.0
        c[LAST_T] = now
        p.n += 1
        # 429 is neutral: our own refusals must not feed back into suspicion.
        p.err += b * ((1.0 if status >= 400 and status != 429 else 0.0) - p.err)
        if status in AUTH_FAILURES:
            p.change[FAILS] += 1.0
        elif status < 400:  # only a success ends a streak (a 404 between tries does not)
            p.change[FAILS] = 0.0
        c = p.change
        c[WRITE] += b * ((0.0 if method in ("GET", "HEAD") else 1.0) - c[WRITE])
        if ua or p.last_ua:
            changed = 1.0 if (p.last_ua and ua != p.last_ua) else 0.0
            p.ua += b * (changed - p.ua)
            p.last_ua = ua
        r = digest(route) & LOW16
        q &= LOW16
        table, slot = p.digests, 2 * ((r >> 1) % QUERY_SLOTS)
        if table[slot] == r:
            # back to no query string is no new one: one link with a parameter would
            # otherwise count twice (on the way in and on the way back)
            new_q = 1.0 if q != table[slot + 1] and q != NO_QUERY else 0.0
            p.param += b * (new_q - p.param)
            table[slot + 1] = q
        elif table[slot] == 0:
            table[slot], table[slot + 1] = r, q
        h = digest(path) & LOW16  # odd, so never an empty (0) slot of the ring
        try:
            table.index(h, PATHS)
            seen = True
        except ValueError:
            seen = False
        new_path = 0.0 if seen else 1.0
        p.div += b * (new_path - p.div)
        if not seen:
            table[p.path_next] = h
            nxt = p.path_next + 1
            p.path_next = PATHS if nxt == PATHS + PATH_RING else nxt
        self.detector.shift(p.change, p.n, now, ia, new_path,
                            1.0 if status >= 400 and status != 429 else 0.0)
        # Score every request while the profile is young (decisions happen then), then
        # every 4th: the features are EWMAs and barely move in 3 requests.
        if p.n <= 32 or not p.n & 3:
            self._score(p, allowance)
        return p

    def _score(self, p: Profile, allowance: float = 1.0) -> None:
        f = p.features(self.nominal_rate * allowance)
        z: tuple[float, ...] | None = None
        if p.n >= 10:
            self.pop_n += 1
            mean, var = self.pop_mean, self.pop_var
            pb = max(_POP_BETA, 1.0 / self.pop_n)
            zs = []
            for i, fi in enumerate(f):
                sd = math.sqrt(var[i])
                # one event is never extreme: it lifts its feature by _BETA, which on a
                # site where it is rare was z > 3 (suspicion 0.1-0.6: a reader lost its
                # trust for every 404, User-Agent update or new query string)
                zf = fi - _BETA if i in EVENT_FEATURES else fi
                zs.append((zf - mean[i]) / sd if self.pop_n > 200 and sd > 1e-3 else 0.0)
                d = fi - mean[i]
                mean[i] += pb * d
                var[i] = (1 - pb) * (var[i] + pb * d * d)
            z = tuple(zs)
        s = suspicion(evidence(f, z))
        if p.forest > 0.0:
            s = 1.0 - (1.0 - s) * (1.0 - FOREST_WEIGHT * p.forest)
        # A penalty prior decays as the returning client shows fresh behaviour.
        p.suspicion = max(s, p.suspicion * 0.98) if p.n < 50 else s

    def vectors(self, min_requests: int = 10) -> tuple[list[str], list[tuple[float, ...]]]:
        """(keys, feature vectors) of the profiles with enough requests, for the
        optional IsolationForest (:mod:`pulsegate.control.forest`)."""
        keys, rows = [], []
        for key, p in list(self.profiles.items()):
            if p.n >= min_requests:
                keys.append(key)
                rows.append(p.features(self.nominal_rate))
        return keys, rows

    def __len__(self) -> int:
        return len(self.profiles)
