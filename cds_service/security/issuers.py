"""Trusted CDS clients (JWT issuers) and where their public keys come from.

The trusted-issuer file named by ``CDS_TRUSTED_ISSUERS`` is a JSON list::

    [
      {
        "iss": "https://ehr.example.org",
        "jwks_url": "https://ehr.example.org/.well-known/jwks.json",
        "jku": ["https://ehr.example.org/keys/rotated.json"],
        "fhir_servers": ["https://fhir.example.org/r4"]
      },
      {
        "iss": "https://other-ehr.example.net",
        "jwks": {"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", "x": "...", "y": "..."}]},
        "fhir_servers": []
      }
    ]

* ``iss`` (required): the exact ``iss`` claim the client puts in its JWTs.
* ``jwks`` (inline JWK Set) or ``jwks_url`` (fetched over https): exactly one of them, unless
  the entry lists ``jku`` URLs, in which case the keys may come only from a listed ``jku``.
* ``jku`` (optional list): ``jku`` header values this issuer may use. ``jwks_url`` is always
  allowed as a ``jku``. With an inline ``jwks``, a listed ``jku`` is *pinned*: it is accepted in
  the header but never fetched; the inline keys are used.
* ``fhir_servers`` (optional list of URL prefixes): the ``fhirServer`` values this issuer may ask
  the service to call. Missing means "none" in the production profile and "any" in dev.
* Keys starting with ``_`` are ignored (comments); any other unknown key is an error, so a typo
  such as ``fhir_server`` cannot silently change what is allowed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import SecurityConfigError
from .network import UrlError, normalise_url

SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
SANDBOX_JWKS_RESOURCE = "sandbox-jwks.json"

ALLOWED_ENTRY_KEYS = frozenset({"iss", "jwks", "jwks_url", "jku", "fhir_servers"})
# JWK members that only a private (or symmetric) key has. A trusted-issuer file must hold public
# keys only; a private key there means someone pasted the wrong file.
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
SUPPORTED_KTY = frozenset({"EC", "RSA"})
SUPPORTED_CRV = frozenset({"P-256", "P-384", "P-521"})
MAX_ISSUER_FILE_BYTES = 1_000_000


@dataclass(frozen=True)
class TrustedIssuer:
    """One trusted CDS client."""

    iss: str
    # kid -> public JWK (dict). None when keys are fetched from jwks_url / jku.
    inline_keys: Mapping[str, Mapping[str, Any]] | None
    jwks_url: str | None
    # Normalised jku URLs this issuer may put in its JWT header (includes jwks_url).
    allowed_jku: frozenset[str]
    # Normalised fhirServer URL prefixes; None = not configured (profile decides).
    fhir_servers: tuple[str, ...] | None
    source: str = "config"
    pinned: bool = field(default=False)

    def key_source_for(self, jku: str | None) -> tuple[str, str | None]:
        """Where to find the keys for a token from this issuer.

        Returns ("inline", None) or ("url", url). ``jku`` must already be normalised and
        allow-listed by the caller.
        """
        if self.inline_keys is not None:
            return ("inline", None)
        if jku is not None:
            return ("url", jku)
        if self.jwks_url is not None:
            return ("url", self.jwks_url)
        raise SecurityConfigError(f"issuer {self.iss!r} has no key source for a token without jku")


class IssuerRegistry:
    """The set of trusted issuers, looked up by exact ``iss``."""

    def __init__(self, issuers: Iterable[TrustedIssuer] = ()):
        self._by_iss: dict[str, TrustedIssuer] = {}
        for issuer in issuers:
            self.add(issuer)

    def add(self, issuer: TrustedIssuer, *, replace: bool = False) -> None:
        if issuer.iss in self._by_iss and not replace:
            raise SecurityConfigError(f"trusted issuer {issuer.iss!r} is defined twice")
        self._by_iss[issuer.iss] = issuer

    def get(self, iss: str) -> TrustedIssuer | None:
        return self._by_iss.get(iss)

    def __contains__(self, iss: object) -> bool:
        return iss in self._by_iss

    def __len__(self) -> int:
        return len(self._by_iss)

    def __iter__(self):
        return iter(self._by_iss.values())

    def fetchable_urls(self) -> frozenset[str]:
        """Every URL the JWKS cache may ever fetch: jwks_url and listed jku of issuers that
        have no inline (pinned) keys."""
        urls: set[str] = set()
        for issuer in self._by_iss.values():
            if issuer.inline_keys is None:
                urls |= issuer.allowed_jku
        return frozenset(urls)


# --------------------------------------------------------------------------------------------
# JWK Set validation
# --------------------------------------------------------------------------------------------


def parse_jwk_set(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """Validate an inline JWK Set of public signing keys; return kid -> JWK."""
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise SecurityConfigError(f"{where}: 'jwks' must be a JWK Set object {{\"keys\": [...]}}")
    if not value["keys"]:
        raise SecurityConfigError(f"{where}: 'jwks' has an empty 'keys' list")
    keys: dict[str, dict[str, Any]] = {}
    for index, jwk in enumerate(value["keys"]):
        kwhere = f"{where}: jwks.keys[{index}]"
        validate_public_jwk(jwk, kwhere)
        if jwk["kid"] in keys:
            raise SecurityConfigError(f"{kwhere}: duplicate kid {jwk['kid']!r}")
        keys[jwk["kid"]] = dict(jwk)
    return keys


def validate_public_jwk(jwk: Any, where: str) -> None:
    """Raise SecurityConfigError unless ``jwk`` is a usable public EC/RSA signing key."""
    if not isinstance(jwk, dict):
        raise SecurityConfigError(f"{where}: a JWK must be a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise SecurityConfigError(f"{where}: the key has no 'kid' (CDS Hooks requires one)")
    kty = jwk.get("kty")
    if kty not in SUPPORTED_KTY:
        raise SecurityConfigError(
            f"{where}: kty {kty!r} is not supported (use EC or RSA; symmetric keys are never trusted)"
        )
    leaked = PRIVATE_JWK_MEMBERS & set(jwk)
    if leaked:
        raise SecurityConfigError(
            f"{where}: key {kid!r} contains private-key members {sorted(leaked)}; "
            "put only the public key in the trusted-issuer file"
        )
    if "use" in jwk and jwk["use"] != "sig":
        raise SecurityConfigError(f"{where}: key {kid!r} has use {jwk['use']!r}, expected 'sig'")
    if kty == "EC" and jwk.get("crv") not in SUPPORTED_CRV:
        raise SecurityConfigError(f"{where}: EC key {kid!r} has unsupported crv {jwk.get('crv')!r}")
    # Let PyJWT / cryptography check that the numbers form a real key.
    from jwt import PyJWK
    from jwt.exceptions import PyJWTError

    try:
        PyJWK(dict(jwk), algorithm=_default_alg_for(jwk))
    except (PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise SecurityConfigError(f"{where}: key {kid!r} is not a valid public key ({exc})") from None


def _default_alg_for(jwk: Mapping[str, Any]) -> str:
    if isinstance(jwk.get("alg"), str):
        return jwk["alg"]
    if jwk.get("kty") == "EC":
        return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}.get(str(jwk.get("crv")), "ES384")
    return "RS384"


# --------------------------------------------------------------------------------------------
# The trusted-issuer file
# --------------------------------------------------------------------------------------------


def _config_url(value: Any, where: str, *, what: str) -> str:
    """A jwks_url / jku from config: absolute https (http only on loopback, for local tests)."""
    if not isinstance(value, str) or not value.strip():
        raise SecurityConfigError(f"{where}: {what} must be a non-empty URL string")
    try:
        url = normalise_url(value.strip())
    except UrlError as exc:
        raise SecurityConfigError(f"{where}: {what} {value!r} is not a valid URL ({exc})") from None
    if url.startswith("http://"):
        host = url[len("http://"):].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        if host not in ("localhost", "127.0.0.1", "::1"):
            raise SecurityConfigError(f"{where}: {what} {value!r} must use https")
    return url


def parse_issuer_entry(entry: Any, where: str) -> TrustedIssuer:
    if not isinstance(entry, dict):
        raise SecurityConfigError(f"{where}: each trusted issuer must be a JSON object")
    unknown = sorted(k for k in entry if k not in ALLOWED_ENTRY_KEYS and not str(k).startswith("_"))
    if unknown:
        raise SecurityConfigError(
            f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(ALLOWED_ENTRY_KEYS)}"
        )
    iss = entry.get("iss")
    if not isinstance(iss, str) or not iss.strip():
        raise SecurityConfigError(f"{where}: 'iss' is required and must be a non-empty string")
    if iss != iss.strip():
        raise SecurityConfigError(f"{where}: 'iss' {iss!r} has leading/trailing whitespace")
    where = f"{where} (iss {iss!r})"

    has_jwks = "jwks" in entry
    has_url = "jwks_url" in entry
    if has_jwks and has_url:
        raise SecurityConfigError(f"{where}: give either 'jwks' or 'jwks_url', not both")

    jku_list = entry.get("jku", [])
    if isinstance(jku_list, str):
        jku_list = [jku_list]
    if not isinstance(jku_list, list):
        raise SecurityConfigError(f"{where}: 'jku' must be a list of URLs")
    allowed_jku = {_config_url(u, where, what="jku") for u in jku_list}

    if not has_jwks and not has_url and not allowed_jku:
        raise SecurityConfigError(
            f"{where}: no key source; give 'jwks' (inline JWK Set), 'jwks_url' or a 'jku' list"
        )

    inline_keys = parse_jwk_set(entry["jwks"], where) if has_jwks else None
    jwks_url = _config_url(entry["jwks_url"], where, what="jwks_url") if has_url else None
    if jwks_url:
        allowed_jku.add(jwks_url)

    fhir_servers: tuple[str, ...] | None = None
    if "fhir_servers" in entry and entry["fhir_servers"] is not None:
        raw = entry["fhir_servers"]
        if not isinstance(raw, list):
            raise SecurityConfigError(f"{where}: 'fhir_servers' must be a list of URL prefixes")
        prefixes = []
        for index, prefix in enumerate(raw):
            if not isinstance(prefix, str) or not prefix.strip():
                raise SecurityConfigError(f"{where}: fhir_servers[{index}] must be a URL string")
            try:
                prefixes.append(normalise_url(prefix.strip(), allow_query=False))
            except UrlError as exc:
                raise SecurityConfigError(
                    f"{where}: fhir_servers[{index}] {prefix!r} is not a valid http(s) URL ({exc})"
                ) from None
        fhir_servers = tuple(prefixes)

    return TrustedIssuer(
        iss=iss,
        inline_keys=inline_keys,
        jwks_url=jwks_url,
        allowed_jku=frozenset(allowed_jku),
        fhir_servers=fhir_servers,
        source="config",
        pinned=inline_keys is not None,
    )


def parse_trusted_issuers(data: Any, source: str = "trusted issuers") -> list[TrustedIssuer]:
    if not isinstance(data, list):
        raise SecurityConfigError(
            f"{source}: the trusted-issuer file must hold a JSON list of issuer objects, "
            f"got {type(data).__name__}"
        )
    issuers: list[TrustedIssuer] = []
    seen: set[str] = set()
    for index, entry in enumerate(data):
        issuer = parse_issuer_entry(entry, f"{source}: entry [{index}]")
        if issuer.iss in seen:
            raise SecurityConfigError(f"{source}: entry [{index}]: iss {issuer.iss!r} is listed twice")
        seen.add(issuer.iss)
        issuers.append(issuer)
    return issuers


def load_trusted_issuers(path: str | Path) -> list[TrustedIssuer]:
    """Read and validate the trusted-issuer file; raise SecurityConfigError with a clear message."""
    path = Path(path)
    label = f"CDS_TRUSTED_ISSUERS file {str(path)!r}"
    try:
        if path.is_dir():
            raise SecurityConfigError(f"{label} is a directory, expected a JSON file")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SecurityConfigError(f"{label} does not exist") from None
    except PermissionError:
        raise SecurityConfigError(f"{label} is not readable (permission denied)") from None
    except OSError as exc:
        raise SecurityConfigError(f"{label} cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_ISSUER_FILE_BYTES:
        raise SecurityConfigError(f"{label} is larger than {MAX_ISSUER_FILE_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise SecurityConfigError(f"{label} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SecurityConfigError(
            f"{label} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return parse_trusted_issuers(data, label)


# --------------------------------------------------------------------------------------------
# Built-in dev issuer: the public CDS Hooks Sandbox
# --------------------------------------------------------------------------------------------


def sandbox_jwks() -> dict[str, Any]:
    """The Sandbox's published JWK Set, shipped as package data (its jku is not reachable offline)."""
    text = resources.files(__package__).joinpath("data", SANDBOX_JWKS_RESOURCE).read_text("utf-8")
    return json.loads(text)


def sandbox_issuer(fhir_servers: tuple[str, ...] | None = None) -> TrustedIssuer:
    """The dev-profile built-in issuer: iss https://sandbox.cds-hooks.org, its jku pinned to the
    shipped key. The matching private key is public, so this must never be trusted in production.
    """
    keys = parse_jwk_set(sandbox_jwks(), "built-in Sandbox JWK Set")
    return TrustedIssuer(
        iss=SANDBOX_ISS,
        inline_keys=keys,
        jwks_url=None,
        allowed_jku=frozenset({normalise_url(SANDBOX_JKU)}),
        fhir_servers=fhir_servers,
        source="built-in (dev profile)",
        pinned=True,
    )
