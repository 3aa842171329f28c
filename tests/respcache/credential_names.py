"""Request header names that carry who the user is, for the response cache's tests:
the ones real gateways and identity proxies set (from their public documentation) and
a seeded, generated set of the same words in other spellings and places -- and the
headers browsers, proxies and tracers send on every request, which identify nobody."""

from __future__ import annotations

import random

#: Set by identity-aware proxies and gateways (Google IAP, Cloudflare Access, AWS ALB,
#: Azure App Service, oauth2-proxy, Kong, Hasura, Pomerium, Envoy/Istio, Grafana's
#: auth proxy, Cortex/Mimir), or sent by API clients (Shopify, Parse, AWS, Azure APIM).
KNOWN = (
    "X-Goog-Authenticated-User-Email", "X-Goog-IAP-JWT-Assertion",
    "Cf-Access-Jwt-Assertion", "Cf-Access-Authenticated-User-Email", "X-Amzn-Oidc-Data",
    "X-Amzn-Oidc-Identity", "X-Amzn-Oidc-Accesstoken", "X-MS-CLIENT-PRINCIPAL",
    "X-MS-CLIENT-PRINCIPAL-NAME", "X-MS-TOKEN-AAD-ID-TOKEN", "X-Forwarded-User",
    "X-Forwarded-Email", "X-Forwarded-Preferred-Username", "X-Forwarded-Groups",
    "X-Auth-Request-User", "X-Auth-Request-Email", "X-Remote-User", "Remote-User",
    "X-WEBAUTH-USER", "X-Hasura-Admin-Secret", "X-Hasura-User-Id", "X-Hasura-Role",
    "X-Hub-Signature-256", "X-Shopify-Access-Token", "X-Api-Key", "X-Session-Token",
    "X-CSRFToken", "X-XSRF-TOKEN", "X-Forwarded-Client-Cert", "X-SSL-Client-Cert",
    "X-Client-Id", "X-Tenant-Id", "X-Scope-OrgID", "X-Consumer-Username", "X-Consumer-ID",
    "X-Credential-Identifier", "X-Anonymous-Consumer", "X-Userinfo", "X-Id-Token",
    "X-Authenticated-Userid", "X-Jwt-Payload", "X-Pomerium-Jwt-Assertion",
    "X-Pomerium-Claim-Email", "X-Amz-Security-Token", "X-Goog-Api-Key",
    "Ocp-Apim-Subscription-Key", "X-Parse-Session-Token", "X-Device-Id", "X-Visitor-Id",
    "Proxy-Authorization", "Cookie", "Authorization", "X-Auth-Token")

#: Sent with ordinary requests by browsers, CDNs, load balancers and tracers.
INNOCENT = (
    "accept", "accept-encoding", "accept-language", "accept-charset", "user-agent", "host",
    "connection", "referer", "origin", "x-forwarded-for", "x-forwarded-proto",
    "x-forwarded-host", "x-forwarded-port", "x-real-ip", "forwarded", "via", "x-request-id",
    "x-correlation-id", "traceparent", "tracestate", "baggage", "sentry-trace",
    "x-amzn-trace-id", "x-cloud-trace-context", "cf-ray", "cf-ipcountry",
    "cf-connecting-ip", "true-client-ip", "sec-ch-ua", "sec-ch-ua-mobile",
    "sec-ch-ua-platform", "sec-fetch-dest", "sec-fetch-mode", "sec-fetch-site",
    "sec-fetch-user", "upgrade-insecure-requests", "dnt", "priority", "x-requested-with",
    "x-b3-traceid", "x-b3-spanid", "x-datadog-trace-id", "x-datadog-parent-id",
    "x-envoy-expected-rq-timeout-ms", "x-envoy-attempt-count", "cdn-loop", "x-amz-cf-id",
    "cloudfront-viewer-country", "x-request-start", "device-memory", "save-data",
    "x-request-uuid", "content-type", "content-length")

_WORDS = ("session", "sess-id", "sessionid", "token", "access-token", "refresh_token",
          "api-key", "apikey", "key", "auth", "authenticated-user", "user", "user-id",
          "username", "email", "signature", "jwt", "jwt-assertion", "client-cert", "csrf",
          "tenant", "account-id", "customer", "member-id", "secret", "password", "login",
          "principal", "identity", "oidc", "saml-subject", "sso", "role", "org-id",
          "impersonate-user", "on-behalf-of", "bearer", "credential", "uid", "claims",
          "group", "consumer", "device-id", "visitor", "anonymous-id", "profile", "person")
_PREFIXES = ("", "x-", "x-my-app-", "cf-", "x-amzn-", "x_", "acme-", "x-internal-")
_SUFFIXES = ("", "-id", "-value", "-v2", "_hash", "-b64", "s")


def generated(n: int, seed: int = 22) -> list[str]:
    """``n`` distinct credential-like names: a word in a random place, case and spelling."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        word = rng.choice(_WORDS)
        name = rng.choice(_PREFIXES) + word + rng.choice(_SUFFIXES)
        name = "".join(c.upper() if rng.random() < 0.3 else c for c in name)
        out.add(name)
    return sorted(out)


#: Whole request header sets of ordinary clients, captured on loopback (2026-12-07) by a
#: server printing the names it received: headless Chromium (Debian's package) loading
#: a page (navigation), its image, its ``fetch()`` and an ``XMLHttpRequest``, and the
#: default requests of curl, urllib, requests and httpx. Not used to write
#: ``KNOWN_HEADERS`` (held out: captured after the list was written).
CLIENT_SETS = {
    "chromium navigation": ("host", "connection", "sec-ch-ua", "sec-ch-ua-mobile",
                            "sec-ch-ua-platform", "upgrade-insecure-requests", "user-agent",
                            "accept", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-user",
                            "sec-fetch-dest", "accept-encoding", "accept-language"),
    "chromium fetch/img": ("host", "connection", "sec-ch-ua-platform", "user-agent",
                           "sec-ch-ua", "sec-ch-ua-mobile", "accept", "sec-fetch-site",
                           "sec-fetch-mode", "sec-fetch-dest", "referer", "accept-encoding",
                           "accept-language"),
    "chromium xhr": ("host", "connection", "sec-ch-ua-platform", "x-requested-with",
                     "user-agent", "sec-ch-ua", "sec-ch-ua-mobile", "accept",
                     "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "referer",
                     "accept-encoding", "accept-language"),
    "curl": ("host", "user-agent", "accept"),
    "urllib": ("accept-encoding", "host", "user-agent", "connection"),
    "requests": ("host", "user-agent", "accept-encoding", "accept", "connection"),
    "httpx": ("host", "accept", "accept-encoding", "connection", "user-agent"),
}

#: What a proxy in front adds, from each one's documentation (nginx: the usual
#: ``proxy_set_header`` lines; Cloudflare "HTTP request headers"; CloudFront "Add
#: CloudFront request headers"; ALB "HTTP headers and Application Load Balancers";
#: Google Cloud "External Application Load Balancer overview"; Heroku "HTTP routing";
#: Fly.io "Request headers"). ``None``: straight to the app.
PROXY_HEADERS = {
    "none": (),
    "nginx": ("x-real-ip", "x-forwarded-for", "x-forwarded-proto"),
    "cloudflare": ("cf-connecting-ip", "cf-ipcountry", "cf-ray", "cf-visitor", "cdn-loop",
                   "x-forwarded-for", "x-forwarded-proto"),
    "cloudfront": ("via", "x-amz-cf-id", "x-forwarded-for", "cloudfront-viewer-country",
                   "cloudfront-is-mobile-viewer"),
    "aws alb": ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-port", "x-amzn-trace-id"),
    "google lb": ("via", "x-forwarded-for", "x-forwarded-proto", "x-cloud-trace-context",
                  "traceparent"),
    "heroku": ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-port", "x-request-id",
               "x-request-start", "via", "connect-time", "total-route-time"),
    "fly.io": ("fly-client-ip", "fly-forwarded-port", "fly-region", "fly-request-id", "via",
               "x-forwarded-for", "x-forwarded-proto", "x-forwarded-port"),
}
