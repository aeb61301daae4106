"""Chamber configuration: a TOML file in the data directory, overridable by ``ARCHIPEL_*``.

Nothing here opens a database or a socket; ``load_settings`` only reads one file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomli_w

__all__ = [
    "CONFIG_FILENAME",
    "ConfigError",
    "Settings",
    "default_database_url",
    "load_settings",
    "new_settings",
    "normalize_base_url",
    "write_settings",
]

CONFIG_FILENAME = "archipel.toml"
USERNAME_RE = re.compile(r"^[a-z0-9_]{1,30}$")
LANGUAGES = ("fr", "en", "nl")


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class Settings:
    """Everything a node needs to know about itself. Built once, passed everywhere."""

    data_dir: Path
    url: str
    name: str
    secret_key: str
    description: str = ""
    chamber_username: str = "chamber"
    language: str = "fr"
    database_url: str = ""
    allow_private_addresses: bool = False
    max_body_bytes: int = 1_000_000
    retry_base_seconds: float = 30.0
    job_lease_seconds: int = 120
    #: The clearing-access gate (node.members.gate): published bricks and membership age.
    #: One published brick and no waiting by default (the seed: "lower the threshold of
    #: acting as far as possible"); a waiting time such as the seed's six months (180) stays
    #: available. Administrators can set the rule from /admin (stored, then it wins).
    clearing_min_bricks: int = 1
    clearing_min_days: int = 0
    #: Whether profiles show clearing balances (transparency is the point: on by default).
    balances_public: bool = True
    #: The clearing house (node.clearing): limits in minutes of the hour unit, rates in basis
    #: points (250 = 2.5 %). A floor is an overdraft limit (<= 0); a ceiling of -1 means none.
    clearing_default_floor_minutes: int = -20 * 60
    clearing_default_ceiling_minutes: int = -1
    clearing_levy_basis_points: int = 0
    clearing_demurrage_basis_points: int = 0
    clearing_demurrage_threshold_minutes: int = 0
    clearing_demurrage_period_days: int = 30
    clearing_declaration_expiry_days: int = 30
    #: Between chambers (node.clearing.settlement, .reconciliation, .rounds): how long a
    #: prepared cross-chamber settlement waits for the deciding chamber before asking it to
    #: abort; how often mirror accounts are reconciled; how long a clearing round collects
    #: signatures before it is abandoned.
    clearing_settlement_timeout_seconds: int = 3600
    clearing_reconcile_interval_minutes: int = 360
    clearing_round_timeout_seconds: int = 3600
    #: Operations (node.ops): "text" or "json" logs; a bearer token for /metrics (empty: open);
    #: the reverse proxies whose X-Forwarded-* headers `serve --proxy-headers` trusts
    #: (comma-separated addresses or networks, as uvicorn's forwarded_allow_ips).
    log_format: str = "text"
    metrics_token: str = ""
    trusted_proxies: str = "127.0.0.1"
    #: Email (node.mail): password resets, address checks and notifications go through this
    #: SMTP server; no ``smtp_host``: no email (administrators hand out reset links).
    #: ``smtp_starttls`` upgrades a plain connection (port 587); port 465 uses TLS at once.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = ""
    smtp_starttls: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        """The host (with port when not the default) used in ``acct:`` handles."""
        return urlsplit(self.url).netloc

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_host)

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    def absolute(self, path: str) -> str:
        """Absolute URL of a path on this node (``path`` starts with ``/``)."""
        return self.url + path


def default_database_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{(data_dir / 'archipel.db').resolve()}"


def normalize_base_url(url: str) -> str:
    """Check a public base URL and return it without a trailing slash."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"url: {url!r} is not an http(s) URL such as https://lille.example")
    if parts.query or parts.fragment:
        raise ConfigError(f"url: {url!r} must not have a query or a fragment")
    if parts.path not in ("", "/"):
        raise ConfigError(
            f"url: {url!r} must be the root of a host (no path); run one node per host"
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"


_ENV_PREFIX = "ARCHIPEL_"
_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off", ""}


def _coerce(name: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _BOOL_TRUE:
            return True
        if text in _BOOL_FALSE:
            return False
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if kind is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if kind is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{name}: expected text, got {value!r}")
    return value


_FIELD_TYPES: dict[str, type] = {
    "url": str,
    "name": str,
    "secret_key": str,
    "description": str,
    "chamber_username": str,
    "language": str,
    "database_url": str,
    "allow_private_addresses": bool,
    "max_body_bytes": int,
    "retry_base_seconds": float,
    "job_lease_seconds": int,
    "log_format": str,
    "metrics_token": str,
    "trusted_proxies": str,
    "smtp_host": str,
    "smtp_port": int,
    "smtp_username": str,
    "smtp_password": str,
    "smtp_from": str,
    "smtp_starttls": bool,
    "clearing_min_bricks": int,
    "clearing_min_days": int,
    "balances_public": bool,
    "clearing_default_floor_minutes": int,
    "clearing_default_ceiling_minutes": int,
    "clearing_levy_basis_points": int,
    "clearing_demurrage_basis_points": int,
    "clearing_demurrage_threshold_minutes": int,
    "clearing_demurrage_period_days": int,
    "clearing_declaration_expiry_days": int,
    "clearing_settlement_timeout_seconds": int,
    "clearing_reconcile_interval_minutes": int,
    "clearing_round_timeout_seconds": int,
}


def _validate(settings: Settings) -> Settings:
    url = normalize_base_url(settings.url)
    if not settings.name.strip():
        raise ConfigError("name: the chamber needs a name")
    if len(settings.secret_key) < 32:
        raise ConfigError("secret_key: must be at least 32 characters (archipel init writes one)")
    if not USERNAME_RE.match(settings.chamber_username):
        raise ConfigError("chamber_username: use 1 to 30 lowercase letters, digits or underscores")
    if settings.language not in LANGUAGES:
        raise ConfigError(f"language: one of {', '.join(LANGUAGES)}")
    if settings.max_body_bytes < 1024:
        raise ConfigError("max_body_bytes: at least 1024")
    if not 0.1 <= settings.retry_base_seconds <= 3600:
        raise ConfigError("retry_base_seconds: between 0.1 and 3600")
    if not 2 <= settings.job_lease_seconds <= 3600:
        raise ConfigError("job_lease_seconds: between 2 and 3600")
    if settings.log_format not in ("text", "json"):
        raise ConfigError("log_format: text (for people) or json (one object per line)")
    _validate_trusted_proxies(settings.trusted_proxies)
    _validate_smtp(settings)
    if not 0 <= settings.clearing_min_bricks <= 1000:
        raise ConfigError("clearing_min_bricks: between 0 and 1000")
    if not 0 <= settings.clearing_min_days <= 3650:
        raise ConfigError("clearing_min_days: between 0 and 3650 (six months is 180)")
    _validate_clearing(settings)
    database_url = settings.database_url or default_database_url(settings.data_dir)
    return replace(settings, url=url, name=settings.name.strip(), database_url=database_url)


def _validate_smtp(settings: Settings) -> None:
    if not 1 <= settings.smtp_port <= 65535:
        raise ConfigError("smtp_port: between 1 and 65535 (587 with STARTTLS, 465 with TLS)")
    if settings.smtp_host and "@" not in settings.smtp_from:
        raise ConfigError(
            "smtp_from: the address mail comes from, e.g. chambre@lille.example (needed with"
            " smtp_host)"
        )
    if bool(settings.smtp_username) != bool(settings.smtp_password):
        raise ConfigError("smtp_username and smtp_password: give both, or neither")


def _validate_trusted_proxies(value: str) -> None:
    """Addresses or networks only: ``*`` (or a host name) would let any client choose the
    address that login throttling and the access log see."""
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        if entry == "*":
            raise ConfigError(
                "trusted_proxies: never '*' (anyone could then choose their address):"
                " list the reverse proxy's addresses or networks, e.g. 127.0.0.1"
            )
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(
                f"trusted_proxies: {entry!r} is not an IP address or network (e.g. 127.0.0.1,"
                " 172.30.0.0/24)"
            ) from None


def _validate_clearing(settings: Settings) -> None:
    if not -1_000_000 * 60 <= settings.clearing_default_floor_minutes <= 0:
        raise ConfigError(
            "clearing_default_floor_minutes: an overdraft limit, at most 0 (-1200 is -20 h)"
        )
    if settings.clearing_default_ceiling_minutes < -1:
        raise ConfigError("clearing_default_ceiling_minutes: at least 0, or -1 for no ceiling")
    for name in ("clearing_levy_basis_points", "clearing_demurrage_basis_points"):
        if not 0 <= getattr(settings, name) <= 10_000:
            raise ConfigError(f"{name}: between 0 and 10000 basis points (250 is 2.5 %)")
    if settings.clearing_demurrage_threshold_minutes < 0:
        raise ConfigError("clearing_demurrage_threshold_minutes: at least 0 (only savings melt)")
    if not 1 <= settings.clearing_demurrage_period_days <= 366:
        raise ConfigError("clearing_demurrage_period_days: between 1 and 366")
    if not 1 <= settings.clearing_declaration_expiry_days <= 3650:
        raise ConfigError("clearing_declaration_expiry_days: between 1 and 3650")
    if not 1 <= settings.clearing_settlement_timeout_seconds <= 7 * 86400:
        raise ConfigError("clearing_settlement_timeout_seconds: between 1 and 604800 (a week)")
    if not 1 <= settings.clearing_reconcile_interval_minutes <= 7 * 1440:
        raise ConfigError("clearing_reconcile_interval_minutes: between 1 and 10080 (a week)")
    if not 1 <= settings.clearing_round_timeout_seconds <= 7 * 86400:
        raise ConfigError("clearing_round_timeout_seconds: between 1 and 604800 (a week)")


def load_settings(data_dir: Path | str, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``DATA_DIR/archipel.toml`` then apply ``ARCHIPEL_<KEY>`` environment overrides."""
    data_dir = Path(data_dir).resolve()
    environ = os.environ if environ is None else environ
    path = data_dir / CONFIG_FILENAME
    if not path.exists():
        raise ConfigError(f"{path} does not exist: run `archipel init --data-dir {data_dir}` first")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _FIELD_TYPES:
            values[key] = _coerce(key, value, _FIELD_TYPES[key])
        else:
            extra[key] = value
    for key, kind in _FIELD_TYPES.items():
        env_name = _ENV_PREFIX + key.upper()
        if env_name in environ:
            values[key] = _coerce(env_name, environ[env_name], kind)
    for required in ("url", "name", "secret_key"):
        if required not in values:
            raise ConfigError(f"{required}: missing from {path}")
    return _validate(Settings(data_dir=data_dir, extra=extra, **values))


def new_settings(
    data_dir: Path | str,
    *,
    url: str,
    name: str,
    description: str = "",
    chamber_username: str = "chamber",
    language: str = "fr",
    database_url: str = "",
    allow_private_addresses: bool = False,
) -> Settings:
    """Settings for a new chamber, with a fresh secret key."""
    return _validate(
        Settings(
            data_dir=Path(data_dir).resolve(),
            url=url,
            name=name,
            description=description,
            chamber_username=chamber_username,
            language=language,
            database_url=database_url,
            secret_key=secrets.token_urlsafe(48),
            allow_private_addresses=allow_private_addresses,
        )
    )


def write_settings(settings: Settings) -> Path:
    """Write the TOML file (mode 0600: it holds the node secret)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / CONFIG_FILENAME
    doc: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name in ("data_dir", "extra"):
            continue
        value = getattr(settings, f.name)
        if f.name == "database_url" and value == default_database_url(settings.data_dir):
            continue  # keep the default relative to wherever the data dir moves
        doc[f.name] = value
    doc.update(settings.extra)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(
            "# Archipel chamber configuration. Every key can be overridden by ARCHIPEL_<KEY>.\n"
        )
        out.write(tomli_w.dumps(doc))
    return path
