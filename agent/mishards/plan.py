"""What the agent does with its Mishards container, as pure decisions (the keeper carries them out).

- `container_environment`: the settings passed as the container's environment (so neither `.env.example` nor
  a file can override them: Mishards's loads never override the real environment), `FROM_EXAMPLE=false`.
- `plan`: given what the coordinator wants and which of those servers answer Milvus gRPC now, start Mishards
  with the writer and the answering hosts, hold while the writer does not answer yet (up to `hold_s`), or refuse
  when no listed host answers (Mishards would refuse an empty list and exit).
- `overriding_keys`: which keys of a Mishards container not run by the agent would beat the agent's settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from agent.mishards.envfile import MishardsEnvError

SETTING_KEYS = ("WOSERVER", "DISCOVERY_CLASS_NAME", "DISCOVERY_STATIC_HOSTS", "DISCOVERY_STATIC_PORT", "SERVER_PORT")
OVERRIDING_KEYS = (*SETTING_KEYS, "SQLALCHEMY_DATABASE_URI", "FROM_EXAMPLE")


def refuse_dollar(values: dict[str, str]) -> None:
    """python-dotenv expands `${...}` in any value, quoted or not: refuse a `$`, naming the key only."""
    for key, value in values.items():
        if "$" in value:
            raise MishardsEnvError(
                f"the value of {key} contains '$', which python-dotenv would expand in Mishards; refused"
            )


def container_environment(values: dict[str, str], hosts: tuple[str, ...]) -> dict[str, str]:
    """The owned values with the host list narrowed to `hosts`; FROM_EXAMPLE off."""
    return {**values, "DISCOVERY_STATIC_HOSTS": ",".join(hosts), "FROM_EXAMPLE": "false"}


def environment_hash(image: str, environment: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps([image, sorted(environment.items())]).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    action: str  # start | hold | refuse | keep
    reason: str
    hosts: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()


def plan(
    writer: str,
    writer_problem: str | None,
    hosts: tuple[str, ...],
    host_problems: dict[str, str | None],
    held_s: float,
    hold_s: float,
    running_hosts: tuple[str, ...] | None,
    running_writer: str | None,
) -> Plan:
    """What to do now. `running_*` describe the agent's Mishards container when one runs (else None)."""
    answering = tuple(h for h in hosts if host_problems.get(h) is None)
    left_out = tuple(h for h in hosts if h not in answering)
    if writer_problem is not None and held_s < hold_s:
        return Plan("hold", f"holding the Mishards restart: {writer_problem} ({held_s:.0f}s of {hold_s:.0f}s)")
    if not answering:
        why = "; ".join(p for p in host_problems.values() if p) or "the host list is empty"
        return Plan("refuse", f"no listed host answers Milvus gRPC, Mishards left as it is: {why}", left_out=left_out)
    if running_writer == writer and running_hosts == answering:
        return Plan("keep", "Mishards runs with this writer and these hosts", answering, left_out)
    reason = f"writer {writer}, hosts {','.join(answering)}"
    if left_out:
        reason += f" (left out, not answering: {','.join(left_out)})"
    if writer_problem is not None:
        reason += f"; started although the writer does not answer after {held_s:.0f}s: {writer_problem}"
    return Plan("start", reason, answering, left_out)


def overriding_keys(environment: list[str]) -> list[str]:
    """Keys of a container's `KEY=value` environment that would override the agent's Mishards settings."""
    keys = {item.split("=", 1)[0] for item in environment}
    return [k for k in OVERRIDING_KEYS if k in keys]
