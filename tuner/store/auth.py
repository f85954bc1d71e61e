"""Teams and API keys. Keys are random 256-bit tokens stored as their SHA-256 (a fast hash is
safe for such keys); the clear key is shown once. Functions are steps of the caller's unit of
work: they flush, and the caller commits (`tuner.store.db.transaction`)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tuner.errors import TeamNotFound, TunerError
from tuner.store.models import ApiKey, Team, utcnow

KEY_PREFIX = "tk_"


def get_team(s: Session, name: str) -> Team:
    team = s.scalar(select(Team).where(Team.name == name))
    if team is None:
        raise TeamNotFound(name)
    return team


def team_name(s: Session, team_id: int) -> str:
    team = s.get(Team, team_id)
    if team is None:
        raise TeamNotFound(str(team_id))
    return team.name


def get_or_create_team(s: Session, name: str) -> Team:
    team = s.scalar(select(Team).where(Team.name == name))
    if team is None:
        team = Team(name=name)
        s.add(team)
        s.flush()
    return team


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(s: Session, team: Team, name: str = "") -> str:
    """A new key for `team`; the clear key is returned once and only its hash is stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    s.add(ApiKey(team_id=team.id, prefix=key[:10], key_hash=hash_key(key), name=name))
    s.flush()
    return key


@dataclass(frozen=True)
class TeamRef:
    """A team as a request knows it (the API caches it per key, outside any session)."""

    id: int
    name: str


def team_ref_for_key(s: Session, key: str) -> TeamRef | None:
    row = s.execute(select(Team.id, Team.name).join(ApiKey, ApiKey.team_id == Team.id)
                    .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))).first()
    return TeamRef(int(row[0]), str(row[1])) if row is not None else None


def team_for_key(s: Session, key: str) -> Team | None:
    return s.scalar(select(Team).join(ApiKey, ApiKey.team_id == Team.id)
                    .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)))


def revoke_key(s: Session, prefix: str) -> int:
    """Revoke the keys starting with `prefix` (at least 6 characters); returns how many."""
    if len(prefix) < 6:
        raise TunerError("key prefix: give at least 6 characters of the key")
    res = s.execute(update(ApiKey).where(ApiKey.prefix.startswith(prefix[:10], autoescape=True),
                                         ApiKey.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))
    return int(res.rowcount)  # type: ignore[attr-defined]
