"""Who a bearer credential stands for: an API key or an OIDC token, one entry point.

The CLI's ``--key`` and the server's ``Authorization: Bearer`` both go through
:func:`identify`, so the two accept and refuse exactly the same credentials.
"""

from __future__ import annotations

from datetime import datetime

from glasslog.access.enforce import Principal
from glasslog.access.keys import AuthError, authenticate, looks_like_key
from glasslog.access.oidc import OIDCVerifier
from glasslog.access.policy import Policy
from glasslog.store.base import Store

__all__ = ["identify"]


def identify(
    store: Store,
    policy: Policy,
    credential: str,
    *,
    oidc: OIDCVerifier | None = None,
    now: datetime | None = None,
) -> Principal:
    """The principal ``credential`` stands for; :class:`AuthError` when it stands for none.

    ``oidc`` is the policy's verifier, kept by a long-lived caller so that its JWKS
    cache survives between requests; without it one is made for this call.
    """
    if looks_like_key(credential):
        return authenticate(store, policy, credential, now=now)
    if policy.oidc is None:
        raise AuthError("the credential is neither an API key nor usable as a token: the "
                        "policy has no [oidc]")  # fmt: skip
    verifier = oidc if oidc is not None else OIDCVerifier(policy.oidc)
    return verifier.authenticate(credential, policy, store, now=now)
