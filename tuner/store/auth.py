"""Teams and API keys. Keys are random 256-bit tokens stored as their SHA-256 (a fast hash is
safe for such keys); the clear key is shown once. Functions are steps of the caller's unit of
work: they flush, and the caller commits (`tuner.store.db.transaction`)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
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


def list_teams(s: Session) -> list[dict[str, Any]]:
    """Every team with its active keys, its jobs and its latest job's creation (the
    operator's view: `tuner admin teams`)."""
    from tuner.store.models import Job

    keys = dict(s.execute(select(ApiKey.team_id, func.count()).where(ApiKey.revoked_at.is_(None))
                          .group_by(ApiKey.team_id)).all())
    jobs = {tid: (n, latest) for tid, n, latest in s.execute(
        select(Job.team_id, func.count(), func.max(Job.created_at)).group_by(Job.team_id)).all()}
    return [{"id": t.id, "name": t.name, "created_at": t.created_at,
             "active_keys": int(keys.get(t.id, 0)), "jobs": int(jobs.get(t.id, (0, None))[0]),
             "latest_job_at": jobs.get(t.id, (0, None))[1]}
            for t in s.scalars(select(Team).order_by(Team.name))]


def list_keys(s: Session, team: str | None = None, *, revoked: bool = False
              ) -> list[dict[str, Any]]:
    """The API keys (active ones unless `revoked`), each by its shown prefix, team, label and
    dates: never the key or its hash. `team`: that team's only (TeamNotFound if none)."""
    q = select(ApiKey, Team.name).join(Team, ApiKey.team_id == Team.id)
    if team is not None:
        q = q.where(ApiKey.team_id == get_team(s, team).id)
    if not revoked:
        q = q.where(ApiKey.revoked_at.is_(None))
    return [{"prefix": k.prefix, "team": name, "name": k.name, "created_at": k.created_at,
             "revoked_at": k.revoked_at}
            for k, name in s.execute(q.order_by(Team.name, ApiKey.created_at, ApiKey.id)).all()]
