"""Has an endpoint changed? Evidence-weighted window tests with a CUSUM over windows.

Per request: three additions (O(1), pure Python). Per window: a few dozen float ops.
"""

from __future__ import annotations

import math
from typing import Any

from pulsegate.learn.anomaly import Score

_sqrt = math.sqrt
_exp = math.exp
_log = math.log
_log1p = math.log1p
_LN2 = math.log(2.0)

#: Bumped when the state's meaning changes: an older state starts cold.
STATE_VERSION = 4


class IncidentDetector:
    r"""An endpoint changed when its windows, weighed by how many requests they hold,
    keep sitting above its baseline.

    On log latency :math:`y` (log ms), with baseline location :math:`b`, robust
    per-request scale :math:`s \ge s_{floor}` (0.05: 5 %) and tail cut
    :math:`u = b + \max(q\,s,\ \ln(1 + m/e^b))` (:math:`m` = ``min_excess_ms``: a
    request under 1 ms slower than usual is never in the tail):

    * **per request** (``add``): the value and its Huber-clipped form
      :math:`\tilde y = \min(y,\ b + \max(c\,s, \ln 2))` joins the window sums
      :math:`n_w, \sum y, \sum\tilde y, \sum\min(|y-b|, c\,s)` and the tail count
      :math:`e_w = \#\{y > u\}`. A GC pause counts as :math:`c\,s` above the baseline
      (at least 2x), never as the tenfold latency it took: one pause cannot make a
      window.
    * **per window** (``close``), mean :math:`m_w = \sum\tilde y / n_w`:

      - standard error :math:`se_w = \sqrt{s^2/n_w + \tau^2}`, :math:`\tau^2` the
        variance *between* windows that sampling does not explain (drift, daily
        load), learnt; mean evidence :math:`z_w = (m_w - b)/se_w`. Six requests with
        one pause are weak evidence, six hundred strong: the test accounts for it;
      - one-sided CUSUM (Page 1954) of the mean evidence:
        :math:`C \leftarrow \max(0,\ C + \min(z_w, z_{max}) - \kappa)`; a large shift
        crosses :math:`h` in two windows, a small one accumulates;
      - tail evidence (p99-style regressions that barely move the mean), a Bernoulli
        CUSUM of the tail count against :math:`p_1 = \max(3\hat p, \hat p + 0.02)`,
        :math:`\hat p = p + 2\sqrt{p/N}` an upper bound of :math:`p`, the learnt share
        of requests above :math:`u`, from the :math:`N` requests it was learnt on
        (uncertain while young); both :math:`p_1` capped at :math:`(1 + p)/2`:
        :math:`C_t \leftarrow \max(0,\ C_t + e_w \ln\frac{p_1}{\hat p} + (n_w - e_w)
        \ln\frac{1-p_1}{1-\hat p})` -- exact for a handful of requests as for thousands
        (a window adds at most :math:`0.6\,h_t`, as :math:`z_{max} - \kappa < h`:
        one window alone, however slow, never makes an incident);
      - error evidence (an error burst, often of *fast* failures that lower the
        latency): the same Bernoulli CUSUM over the window's failed requests
        (:meth:`error`: status >= 500) against :math:`p^e_1 = \max(3p^e, p^e + 0.05)`,
        :math:`p^e` the learnt error share, incident at :math:`C_e \ge h_t` when the
        window's error share is at least :math:`p^e + 0.05`;
      - slow drift (a leak, which :math:`b` follows with a lag of its slope times
        :math:`T`): the same CUSUM :math:`C_L` of :math:`z^L_w = (m_w - b_L)/se^L_w`,
        :math:`se^L_w = \sqrt{s^2/n_w + \tau_L^2}`, against a *long* reference
        :math:`b_L` (``long_constant`` :math:`T_L` = 6 h, its own :math:`\tau_L^2`),
        gated as below on the excess averaged at weight 1/8 (a drift is slow) less
        :math:`0.5\,se^L_w`, two standard errors of that average;
      - an **incident** when :math:`C \ge h` and the effect is one a person cares about:
        with :math:`E` the excess :math:`m_w - b` averaged over the windows since
        :math:`C` last stood at 0 (:math:`E \leftarrow E + (m_w - b - E)/2`),
        :math:`e^E \ge r_{min}` and :math:`(e^E - 1)\,e^b \ge m`; the same with
        :math:`C_L`, :math:`b_L` and its :math:`E_L`; or when :math:`C_t \ge h_t`.
        Once per episode: the episode ends when every sum is back at 0, and a clearly
        larger event (twice the effect that opened it) re-alarms. :math:`C \ge h`
        with a smaller effect is a real but unimportant change (a deploy step of a
        few %): the baseline adopts it at full rate and :math:`C` restarts from 0, so
        such evidence cannot pile up until a noisy window passes the gate.
    * **learning**, after the test, with weight :math:`a = \min(1, \Delta t/T)` per
      window of :math:`\Delta t` seconds (:math:`1/k` for the :math:`k`-th window early
      on): :math:`b` (by the window's clipped mean, itself clipped at
      :math:`\pm 4\,se_w`), :math:`s` (by :math:`1.2533\sum\min(|y-b|, c\,s)/n_w`, the
      mean absolute deviation of a normal law scaled to its σ) and :math:`\tau^2`
      follow exponentially; :math:`b` at :math:`a/4` while its CUSUM is above 0 and
      no incident is open (a slow regression is judged before it is learnt);
      :math:`p` at :math:`\max(a/4, 1/k)` (the tail share is a long-run property);
      :math:`b_L`, :math:`\tau_L^2` likewise at :math:`a_L = \min(1, \Delta t/T_L)`
      (:math:`a_L/4` while :math:`C_L > 0`, :math:`a` while an incident is open);
      :math:`C_L \ge h` with a small effect is held at :math:`h`, :math:`b_L` at
      :math:`a_L` (a ramp stays judged, a small step is adopted within hours). The baseline
      adopts a permanent change within a few :math:`T` (deploy steps are not incidents).
    * **warm-up**: no incident before ``min_windows`` windows and ``min_requests``
      requests; the first requests of a process (imports, connections) only teach.

    ``score`` is :math:`\min(1, \max(C/h, C_L/h, C_t/h_t, C_e/h_t) / 2)`: 0.5 at the alarm
    line. ``metric`` names the evidence behind the last incident: ``"latency"`` (the
    window mean above the baseline), ``"latency drift"`` (only :math:`C_L`: a leak;
    the verdict's ``forecast`` is then :math:`b_L`), ``"latency tail"`` or ``"error
    rate"``; every incident is a rise (a faster endpoint is no incident).

    >>> d = IncidentDetector(window=60.0)
    >>> for w in range(120):              # two hours at 20 requests a window
    ...     for i in range(20):
    ...         d.add(math.log(50.0) + 0.3 * ((i * 7) % 5 - 2) / 2)
    ...     quiet = d.close(60.0)
    >>> quiet.is_anomaly, quiet.score
    (False, 0.0)
    >>> def slow_window():                # twice as slow
    ...     for i in range(20):
    ...         d.add(math.log(100.0) + 0.3 * ((i * 7) % 5 - 2) / 2)
    ...     return d.close(60.0)
    >>> [slow_window().is_anomaly for _ in range(3)]   # evidence over two windows, once
    [False, True, False]
    """

    __slots__ = ("active", "b", "b_long", "clip", "cusum", "cusum_err", "cusum_long",
                 "cusum_tail", "cut", "dclip", "e_w", "episode_requests",
                 "episode_seconds", "episode_windows", "err_expected", "err_share",
                 "err_w", "floor", "h", "h_tail", "kappa", "long_constant", "metric",
                 "min_excess_ms", "min_ratio", "min_requests", "min_windows", "n_req",
                 "n_w", "onset_effect", "p", "p_err", "q", "raw", "run_effect", "run_long",
                 "s", "s1", "sa", "tau2", "tau2_long", "time_constant", "top", "window",
                 "windows", "z_max")

    def __init__(self, window: float = 60.0, *, time_constant: float = 3600.0,
                 clip: float = 3.0, q: float = 3.0, kappa: float = 1.0, h: float = 8.0,
                 h_tail: float = 13.0, floor: float = 0.05, min_excess_ms: float = 1.0,
                 z_max: float = 6.0, min_ratio: float = 1.25, min_windows: int = 10,
                 min_requests: int = 200, long_constant: float = 21600.0) -> None:
        if window <= 0 or time_constant <= 0 or long_constant < time_constant:
            raise ValueError("window and time_constant must be > 0, "
                             "long_constant >= time_constant")
        if kappa <= 0 or h <= 0 or min_ratio < 1.0:
            raise ValueError("need kappa > 0, h > 0, min_ratio >= 1")
        self.window = window
        self.time_constant = time_constant
        self.long_constant = long_constant
        self.clip = clip
        self.q = q
        self.kappa = kappa
        self.h = h
        self.h_tail = h_tail
        self.z_max = z_max
        self.min_ratio = min_ratio
        self.min_windows = min_windows
        self.min_requests = min_requests
        self.floor = floor
        self.min_excess_ms = min_excess_ms
        self.b = 0.0
        self.s = 0.0  # robust per-request scale (0 until the first window closed)
        self.tau2 = 0.0  # between-window variance not explained by sampling
        #: the long reference of the drift test, its CUSUM, variance and run effect
        self.b_long = self.cusum_long = self.tau2_long = self.run_long = 0.0
        self.p = 0.01  # share of requests above the tail cut
        self.p_err = 0.01  # share of failed requests (status >= 500)
        self.cusum_err = 0.0
        self.err_w = 0
        #: the evidence behind the last incident, and the error share of its window
        self.metric = "latency"
        self.err_share = self.err_expected = 0.0
        self.cusum = 0.0
        self.cusum_tail = 0.0
        self.run_effect = 0.0
        self.active = False
        self.onset_effect = 0.0
        #: the evidence behind the current episode (windows since the CUSUMs last stood
        #: at 0, their requests and seconds): what an incident reports, never persisted
        self.episode_windows = self.episode_requests = 0
        self.episode_seconds = 0.0
        self.windows = 0
        self.n_req = 0
        self.n_w = 0
        self.s1 = self.sa = self.raw = 0.0
        self.e_w = 0
        self.top = self.cut = self.dclip = math.inf  # nothing to judge by before a window

    def add(self, y: float) -> None:
        """One request's log latency into the current window (O(1))."""
        if y - y != 0.0:  # NaN or inf: not evidence of anything
            return
        if y > self.cut:
            self.e_w += 1
        top = self.top
        yc = y if y < top else top
        d = y - self.b
        d = d if d >= 0.0 else -d
        dclip = self.dclip
        self.sa += d if d < dclip else dclip
        self.n_w += 1
        self.raw += y
        self.s1 += yc

    def error(self) -> None:
        """The request just added failed (status >= 500): one more error in the window."""
        self.err_w += 1

    def _cuts(self) -> None:
        # the clip, tail cut and deviation clip requests are judged by until next close
        b, s = self.b, self.s
        self.dclip = self.clip * s
        # clipped no lower than 2x, so a large shift still shows its size on a tight series
        self.top = b + (self.dclip if self.dclip > _LN2 else _LN2)
        lift = self.q * s
        if self.min_excess_ms > 0.0:
            least = _log1p(self.min_excess_ms / _exp(b)) if b < 700.0 else 0.0
            lift = lift if lift > least else least
        self.cut = b + lift

    def close(self, seconds: float | None = None, shift: float = 0.0) -> Score | None:
        """End the window (``seconds`` long, default ``window``): test it, then learn.
        ``shift`` is subtracted from the window mean first (a seasonal profile's
        offset). None when the window held no request."""
        n = self.n_w
        if not n:
            return None
        dt = self.window if seconds is None or seconds <= 0 else seconds
        mean = self.s1 / n - shift
        raw = self.raw / n - shift
        tail_share = self.e_w / n
        sa = self.sa
        e_w = self.e_w
        errors = self.err_w if self.err_w < n else n
        self.n_w = 0
        self.s1 = self.sa = self.raw = 0.0
        self.e_w = self.err_w = 0
        k = self.windows
        b = self.b
        if k == 0:
            self.b = self.b_long = mean
            self.s = max(1.2533 * sa / n, self.floor)
            self.windows, self.n_req = 1, n
            self._cuts()
            return Score(raw + shift, mean + shift, 0.0, 0.0, False, 0.0,
                         mean + shift, mean + shift, 0.0)
        v = self.s * self.s
        se = _sqrt(v / n + self.tau2)
        se = se if se > 1e-6 else 1e-6
        r = mean - b
        z = r / se
        # against an upper bound of the learnt tail share (uncertain while young)
        memory = 4.0 * self.time_constant / dt
        seen = (k if k < memory else memory) * self.n_req / k
        p = self.p
        pt = p + 2.0 * _sqrt(p / seen)
        pt = pt if pt < 0.5 else 0.5
        p1 = 3.0 * pt if 3.0 * pt > pt + 0.02 else pt + 0.02
        p1 = p1 if p1 < 0.5 * (1.0 + pt) else 0.5 * (1.0 + pt)  # a share stays below 1
        t = e_w * _log(p1 / pt) + (n - e_w) * _log((1.0 - p1) / (1.0 - pt))
        zmax, kappa, h = self.z_max, self.kappa, self.h
        c = self.cusum + (z if z < zmax else zmax) - kappa
        self.cusum = c = c if c > 0.0 else 0.0
        cap = 0.6 * self.h_tail  # one window alone never makes an incident
        ct = self.cusum_tail + (t if t < cap else cap)
        self.cusum_tail = ct = ct if ct > 0.0 else 0.0
        pe = self.p_err
        pe1 = 3.0 * pe if 3.0 * pe > pe + 0.05 else pe + 0.05
        pe1 = pe1 if pe1 < 0.5 * (1.0 + pe) else 0.5 * (1.0 + pe)
        te = errors * _log(pe1 / pe) + (n - errors) * _log((1.0 - pe1) / (1.0 - pe))
        ce = self.cusum_err + (te if te < cap else cap)
        self.cusum_err = ce = ce if ce > 0.0 else 0.0
        err_share = errors / n
        # drift: the same test against the long reference
        rl = mean - self.b_long
        sel = _sqrt(v / n + self.tau2_long)
        sel = sel if sel > 1e-6 else 1e-6
        zl = rl / sel
        cl = self.cusum_long + (zl if zl < zmax else zmax) - kappa
        self.cusum_long = cl = cl if cl > 0.0 else 0.0
        if c == 0.0 and ct == 0.0 and ce == 0.0 and cl == 0.0:
            self.episode_windows = self.episode_requests = 0
            self.episode_seconds = 0.0
        else:
            self.episode_windows += 1
            self.episode_requests += n
            self.episode_seconds += dt
        warm = k >= self.min_windows and self.n_req >= self.min_requests
        # the effect: the clipped excess, averaged (weight 1/2) over the windows since
        # the CUSUM last stood at 0 -- one window full of pauses is not a regression
        effect_log = 0.0 if c == 0.0 else self.run_effect + 0.5 * (r - self.run_effect)
        self.run_effect = effect_log
        ratio = _exp(effect_log)
        mean_hit = c >= h and ratio >= self.min_ratio and \
            (ratio - 1.0) * _exp(b) >= self.min_excess_ms
        # a drift is slow: its effect is averaged over about eight windows, so one noisy
        # window cannot carry a small drift past the gate
        effect_long = 0.0 if cl == 0.0 else self.run_long + 0.125 * (rl - self.run_long)
        self.run_long = effect_long
        ratio_long = _exp(effect_long)
        # ... and judged by its lower bound: two standard errors of that average
        # (sel / sqrt(15)), so a few requests a window cannot pass a drift of 1.15x
        low = _exp(effect_long - 0.5 * sel)
        drift_hit = cl >= h and low >= self.min_ratio and \
            (low - 1.0) * _exp(self.b_long) >= self.min_excess_ms
        small_drift = cl >= h and not drift_hit and not self.active
        # a real but small change (a deploy step of a few %): adopt it, do not let the
        # evidence pile up until a noisy window passes the gate
        adopt = c >= h and not mean_hit and not self.active
        tail_hit = ct >= self.h_tail
        err_hit = ce >= self.h_tail and err_share >= pe + 0.05
        # one latency effect for both tests (the larger), so the fast test confirming
        # what the drift test saw first is not "clearly larger"
        effects = ((ratio if ratio > ratio_long else ratio_long) - 1.0
                   if mean_hit or drift_hit else 0.0,
                   tail_share / p - 1.0 if tail_hit else 0.0,
                   err_share / pe - 1.0 if err_hit else 0.0)
        effect = max(effects)
        fired = False
        if warm and (mean_hit or drift_hit or tail_hit or err_hit):
            if not self.active or effect >= 2.0 * self.onset_effect:
                fired = True
                self.active = True
                self.onset_effect = effect
                # a rise only the long reference sees is a slow drift (a leak)
                self.metric = ("latency" if mean_hit else "latency drift", "latency tail",
                               "error rate")[effects.index(effect)]
                self.err_share, self.err_expected = err_share, pe
        elif c == 0.0 and ct == 0.0 and ce == 0.0 and cl == 0.0:
            self.active = False
        # learning: a weight per window of dt seconds, 1/k during warm-up
        a = dt / self.time_constant
        a = a if a < 1.0 else 1.0
        early = 1.0 / (k + 1)
        a = a if a > early else early
        clip_r = 4.0 * se
        rc = r if -clip_r < r < clip_r else (clip_r if r > 0 else -clip_r)
        # while evidence builds up (and no incident is open) the baseline learns at a
        # quarter of the rate: a slow regression is not absorbed before it is judged
        self.b = b + (a if c == 0.0 or self.active or adopt else 0.25 * a) * rc
        if adopt:
            self.cusum = self.run_effect = 0.0
        # the long reference: the fast rate while an incident is open; a quarter of its
        # own while its CUSUM is above 0, unless the drift is real but small (held at
        # h, learnt at the long rate: a ramp keeps being judged, a small step is adopted)
        al = dt / self.long_constant
        al = al if al > early else early
        al = a if self.active else (al if cl == 0.0 or small_drift else 0.25 * al)
        al = al if al < 1.0 else 1.0
        clip_l = 4.0 * sel
        rlc = rl if -clip_l < rl < clip_l else (clip_l if rl > 0 else -clip_l)
        self.b_long += al * rlc
        self.tau2_long += al * ((rlc * rlc - v / n if rlc * rlc > v / n else 0.0)
                                - self.tau2_long)
        if small_drift:
            self.cusum_long = h
        self.tau2 += a * ((rc * rc - v / n if rc * rc > v / n else 0.0) - self.tau2)
        self.s += a * (1.2533 * sa / n - self.s)
        self.s = self.s if self.s > self.floor else self.floor
        dp = tail_share - p
        # the tail share is a long-run property: four times slower, after warm-up
        ap = 0.25 * dt / self.time_constant
        ap = ap if ap > early else early
        self.p = min(0.3, max(0.002, p + ap * dp))
        self.p_err = min(0.5, max(0.002, pe + ap * (err_share - pe)))
        self.windows = k + 1
        self.n_req += n
        self._cuts()
        score = max(c / h, cl / h, ct / self.h_tail, ce / self.h_tail) / 2.0
        score = score if score < 1.0 else 1.0
        conf = 100.0 * (1.0 if warm else 0.0) * _exp(-self.s)
        # a drift is above the long reference (as it stood before this window)
        expected = mean - rl if fired and self.metric == "latency drift" else b
        return Score(raw + shift, expected + shift, z, score, fired, conf,
                     b + shift - 3.0 * se, b + shift + 3.0 * se, t)

    # --- persistence -----------------------------------------------------------------

    #: the first two may be negative, the others may not
    _FIELDS = ("b", "run_effect", "s", "tau2", "p", "cusum", "cusum_tail", "onset_effect",
               "p_err", "cusum_err")

    #: the drift test's fields (newer than version 4: an older state starts them from
    #: its baseline); the first two may be negative
    _LONG = ("b_long", "run_long", "tau2_long", "cusum_long")

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name)
                               for name in (*self._FIELDS, *self._LONG)}
        out.update(version=STATE_VERSION, windows=self.windows, n_req=self.n_req,
                   active=self.active)
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`; ValueError (model untouched) on another version or a
        missing, non-finite or negative field."""
        try:
            if int(state.get("version", 0)) != STATE_VERSION:
                raise ValueError(f"state version {state.get('version')!r}")
            vals = {name: float(state[name]) for name in self._FIELDS}
            vals.update({name: float(state.get(name, vals["b"] if name == "b_long" else 0.0))
                         for name in self._LONG})
            windows, n_req = int(state["windows"]), int(state["n_req"])
            active = bool(state["active"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"inconsistent IncidentDetector state: {exc!r}") from None
        if windows < 0 or n_req < 0 or not all(math.isfinite(x) for x in vals.values()) \
                or any(vals[name] < 0 for name in (*self._FIELDS[2:], *self._LONG[2:])):
            raise ValueError("inconsistent IncidentDetector state")
        for name, x in vals.items():
            setattr(self, name, x)
        self.windows, self.n_req, self.active = windows, n_req, active
        if windows:
            self._cuts()
