"""What the loop remembers about the running Milvus container (agent.milvus.watch): the mount device its db bind
mount shows is remembered once read, and a read that found none is tried again next cycle (rule 5d stays on)."""

from __future__ import annotations

from agent.milvus.container import ContainerState, DockerUnavailable
from agent.milvus.watch import ContainerWatch


class Inside:
    """Docker's view of a container's mount namespace: each read answers the next of `answers`."""

    def __init__(self, *answers: str | Exception | None) -> None:
        self.answers = list(answers)
        self.reads = 0

    def device_inside(self, container_id: str, path: str) -> str | None:
        self.reads += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def running(container_id: str = "c1") -> ContainerState:
    return ContainerState(
        id=container_id, name="milvus", image="milvus", status="running", role="ro", epoch=1,
        config_sha256="x", exit_code=None, started_at=None, error=None,
    )  # fmt: skip


def test_a_failed_read_is_tried_again_and_a_device_read_is_remembered() -> None:
    docker = Inside(None, DockerUnavailable("engine gone"), "0:52", "0:99")
    watch = ContainerWatch(docker)  # type: ignore[arg-type]
    assert watch.mount_device(running()) is None  # its /proc could not be read
    assert watch.mount_device(running()) is None  # Docker did not answer
    assert watch.mount_device(running()) == "0:52"  # read at last: rule 5d can judge it
    assert watch.mount_device(running()) == "0:52" and docker.reads == 3  # remembered, not read again


def test_a_new_container_is_read_anew() -> None:
    docker = Inside("0:52", "0:60")
    watch = ContainerWatch(docker)  # type: ignore[arg-type]
    assert watch.mount_device(running("c1")) == "0:52"
    assert watch.mount_device(running("c2")) == "0:60" and docker.reads == 2
