"""One typed settings object, read from REGISTRY_* environment variables in one place."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENVIRONMENTS = ("development", "production", "test")
MAIL_SENDERS = ("outbox", "sendgrid", "recording")


class SettingsError(RuntimeError):
    """A setting is missing or invalid; start-up stops with this message."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    secret_key: str = ""
    database_url: str = ""
    instance_path: Path = field(default_factory=lambda: Path.cwd() / "instance")
    base_url: str = "http://127.0.0.1:5000"
    legal_timezone: str = "Europe/Warsaw"
    company_name: str = "Example Company"
    mail_sender: str = "outbox"
    sendgrid_api_key: str = ""
    sendgrid_api_host: str = "https://api.sendgrid.com"
    # The Event Webhook's verification key (base64 DER ECDSA public key from SendGrid's settings).
    sendgrid_webhook_public_key: str = ""
    mail_from: str = "notices@example.com"
    mail_from_name: str = ""
    # Whom customers write to about a change once its objection window has closed (mail_from if unset).
    privacy_contact: str = ""
    # Where one-click unsubscribe mails go (the mailto in List-Unsubscribe).
    unsubscribe_mailto: str = "unsubscribe@example.com"
    ratelimit_storage_uri: str = "memory://"
    # Memory limits are per process: with several gunicorn workers each has its own count, so
    # production refuses them unless this says one process is all there is.
    ratelimit_allow_memory: bool = False
    # How many reverse proxies (nginx) set X-Forwarded-For/-Proto in front of the app; 0 trusts none.
    proxy_count: int = 0
    page_cache_seconds: float = 1.0
    cdn_max_age: int = 60
    # The HMAC key that replaces an erased subscriber's address in the proof. Kept apart from the
    # secret key so that rotating that one does not make old proof unanswerable; derived from it
    # when unset.
    erasure_key: str = ""
    # Where the worker keeps the static mirror of the public site (`flask registry mirror DIR`);
    # empty: no mirror.
    mirror_dir: str = ""
    # Outgoing webhooks may use http:// and reach loopback addresses (the development receiver, tests).
    endpoints_allow_private: bool = False

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)

    def validate(self) -> None:
        problems = []
        if self.env not in ENVIRONMENTS:
            problems.append(f"REGISTRY_ENV must be one of {', '.join(ENVIRONMENTS)}, not {self.env!r}")
        if self.mail_sender not in MAIL_SENDERS:
            problems.append(
                f"REGISTRY_MAIL_SENDER must be one of {', '.join(MAIL_SENDERS)}, "
                f"not {self.mail_sender!r}"
            )
        try:
            ZoneInfo(self.legal_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"REGISTRY_LEGAL_TIMEZONE {self.legal_timezone!r} is not a time zone")
        if self.is_production:
            if len(self.secret_key) < 32:
                problems.append("REGISTRY_SECRET_KEY is required in production (32+ characters)")
            if not self.database_url:
                problems.append("REGISTRY_DATABASE_URL is required in production")
            if self.mail_sender == "sendgrid" and not self.sendgrid_api_key:
                problems.append("REGISTRY_SENDGRID_API_KEY is required with the sendgrid sender")
            if self.mail_sender == "sendgrid" and not self.sendgrid_webhook_public_key:
                problems.append(
                    "REGISTRY_SENDGRID_WEBHOOK_PUBLIC_KEY is required with the sendgrid sender"
                )
            if self.erasure_key and len(self.erasure_key) < 32:
                problems.append("REGISTRY_ERASURE_KEY must be 32+ characters when set")
            if not self.base_url.startswith("https://"):
                problems.append("REGISTRY_BASE_URL must be an https:// address in production")
            if self.endpoints_allow_private:
                problems.append("REGISTRY_ENDPOINTS_ALLOW_PRIVATE must be off in production")
            if self.ratelimit_storage_uri.startswith("memory://") and not self.ratelimit_allow_memory:
                problems.append(
                    "REGISTRY_RATELIMIT_STORAGE_URI must be shared storage in production, e.g. "
                    "redis://localhost:6379/0 (memory:// counts per worker process; set "
                    "REGISTRY_RATELIMIT_ALLOW_MEMORY=1 only if a single process serves the site)"
                )
        if problems:
            raise SettingsError("Cannot start: " + "; ".join(problems))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        instance = Path(env.get("REGISTRY_INSTANCE_PATH") or Path.cwd() / "instance").resolve()
        mode = env.get("REGISTRY_ENV", "development")
        settings = cls(
            env=mode,
            secret_key=env.get("REGISTRY_SECRET_KEY", ""),
            database_url=env.get("REGISTRY_DATABASE_URL", ""),
            instance_path=instance,
            base_url=env.get("REGISTRY_BASE_URL", cls.base_url).rstrip("/"),
            legal_timezone=env.get("REGISTRY_LEGAL_TIMEZONE", cls.legal_timezone),
            company_name=env.get("REGISTRY_COMPANY_NAME", cls.company_name),
            mail_sender=env.get("REGISTRY_MAIL_SENDER", "sendgrid" if mode == "production" else "outbox"),
            sendgrid_api_key=env.get("REGISTRY_SENDGRID_API_KEY", ""),
            sendgrid_api_host=env.get("REGISTRY_SENDGRID_API_HOST", cls.sendgrid_api_host).rstrip("/"),
            sendgrid_webhook_public_key=env.get("REGISTRY_SENDGRID_WEBHOOK_PUBLIC_KEY", ""),
            mail_from=env.get("REGISTRY_MAIL_FROM", cls.mail_from),
            privacy_contact=env.get("REGISTRY_PRIVACY_CONTACT", cls.privacy_contact),
            mail_from_name=env.get("REGISTRY_MAIL_FROM_NAME", cls.mail_from_name),
            unsubscribe_mailto=env.get("REGISTRY_UNSUBSCRIBE_MAILTO", cls.unsubscribe_mailto),
            ratelimit_storage_uri=env.get("REGISTRY_RATELIMIT_STORAGE_URI", cls.ratelimit_storage_uri),
            ratelimit_allow_memory=_flag(env, "REGISTRY_RATELIMIT_ALLOW_MEMORY"),
            proxy_count=int(_number(env, "REGISTRY_PROXY_COUNT", cls.proxy_count)),
            page_cache_seconds=_number(env, "REGISTRY_PAGE_CACHE_SECONDS", cls.page_cache_seconds),
            cdn_max_age=int(_number(env, "REGISTRY_CDN_MAX_AGE", cls.cdn_max_age)),
            erasure_key=env.get("REGISTRY_ERASURE_KEY", ""),
            mirror_dir=env.get("REGISTRY_MIRROR_DIR", "").strip(),
            endpoints_allow_private=_flag(env, "REGISTRY_ENDPOINTS_ALLOW_PRIVATE"),
        )
        settings.validate()
        return settings.with_development_defaults()

    def with_development_defaults(self) -> Settings:
        """Outside production, fill in a generated secret and an embedded SQLite database."""
        if self.is_production:
            return self
        changes: dict[str, object] = {}
        if not self.secret_key:
            changes["secret_key"] = _instance_secret(self.instance_path)
        if not self.database_url:
            changes["database_url"] = f"sqlite:///{self.instance_path / 'registry.db'}"
        return replace(self, **changes)


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"Cannot start: {name} must be a number, not {raw!r}") from None
    if value < 0:
        raise SettingsError(f"Cannot start: {name} must not be negative")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"Cannot start: {name} must be 1 or 0 (true or false), not {raw!r}")


def _instance_secret(instance_path: Path) -> str:
    """Generated once per instance folder so sessions survive restarts in development."""
    instance_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = instance_path / "secret_key"
    try:
        # Created 0600 in one step (never readable by others, not even for a moment); O_EXCL: two
        # processes starting at once cannot both write one, the loser reads the winner's.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
