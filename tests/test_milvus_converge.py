"""The convergence table, rule by rule: one observation in, the one step out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.gpu.report import GpuReport, GpuStatus
from agent.milvus.container import ContainerState
from agent.milvus.converge import Action, Seen, Want, next_step, wanted_role
from agent.milvus.gpuchoice import choose_gpus

SHA = "a" * 64


def container(role: str | None = "ro", status: str = "running", epoch: int = 3, sha: str = SHA, **kw) -> ContainerState:
    base = dict(
        id=kw.pop("id", f"id-{role}-{status}"),
        name=kw.pop("name", "milvus"),
        image="standin",
        status=status,
        role=role,
        epoch=epoch,
        config_sha256=sha,
        exit_code=kw.pop("exit_code", None),
        started_at=None,
        error=None,
    )
    return ContainerState(**base)


def seen(*containers: ContainerState, **kw) -> Seen:
    base = dict(
        docker_error=None,
        containers=tuple(containers),
        container_name="milvus",
        health_error=None,
        running_for_s=100.0,
        mount_mode="ro",
        mount_state="healthy",
        mount_reasons=(),
        config_on_disk_sha256=SHA,
        backoff_left_s=0.0,
        health_timeout_s=60.0,
        start_timeout_s=300.0,
    )
    base.update(kw)
    return Seen(**base)


RO = Want(role="ro", epoch=3, lease_valid=True, config_sha256=SHA)
RW = Want(role="rw", epoch=4, lease_valid=True, config_sha256=SHA)


@pytest.mark.parametrize(
    ("want", "observed", "action", "words"),
    [
        (RO, seen(docker_error="connection refused"), Action.WAIT, "Docker is unreachable"),
        (RO, seen(container(role=None)), Action.WAIT, "not started by jfs-milvus-agent"),
        (replace(RW, lease_valid=False), seen(container("rw"), mount_mode="rw"), Action.KILL, "lease is not valid"),
        (replace(RO, lease_valid=False), seen(container("rw"), mount_mode="rw"), Action.KILL, "lease ran out"),
        (RO, seen(container("rw"), mount_mode="rw"), Action.STOP, "stopping rw container to switch to ro"),
        (
            RO,
            seen(container("ro"), container("ro", status="running", id="x2", name="milvus-old")),
            Action.STOP,
            "extra",
        ),
        (RO, seen(container("ro", status="exited", exit_code=137)), Action.REMOVE, "after a crash"),
        (RW, seen(container("ro")), Action.STOP, "to switch to rw"),
        (Want("none", 5, True, SHA), seen(container("ro")), Action.STOP, "assigned none"),
        (RO, seen(container("ro", sha="b" * 64)), Action.STOP, "server_config.yaml changed"),
        (RO, seen(container("ro"), health_error="refused", unhealthy_for_s=61), Action.STOP, "unhealthy for 61s"),
        (RO, seen(container("ro"), health_error="refused", running_for_s=5), Action.WAIT, "starting for 5s"),
        (RO, seen(container("ro"), health_error="refused", running_for_s=300), Action.STOP, "start_timeout_s (300s)"),
        (RO, seen(gpu_start_blocker="not starting Milvus: the GPU image needs GPUs"), Action.WAIT, "needs GPUs"),
        (RO, seen(container("ro")), Action.NOTHING, "healthy"),
        (RW, seen(mount_mode="ro"), Action.MOUNT, "mounting JuiceFS rw"),
        (RO, seen(mount_mode=None, mount_state="unmounted"), Action.MOUNT, "mounting JuiceFS ro"),
        (RW, seen(mount_mode="rw", mount_state="hung", mount_reasons=("hung since 3s",)), Action.WAIT, "hung"),
        (RO, seen(mount_state="failed", mount_reasons=("ENOTCONN",)), Action.MOUNT, "failed"),
        (RO, seen(config_on_disk_sha256=None), Action.WRITE_CONFIG, "server_config.yaml"),
        (RO, seen(db_dir_exists=False), Action.WAIT, "waits for the writer"),
        (RW, seen(mount_mode="rw", db_dir_exists=False, config_on_disk_sha256=None), Action.WRITE_CONFIG, "rw"),
        (RO, seen(backoff_left_s=4), Action.WAIT, "backoff"),
        (RW, seen(mount_mode="rw"), Action.START, "starting Milvus as rw at epoch 4"),
        (replace(RW, lease_valid=False), seen(mount_mode="rw"), Action.WAIT, "no valid lease"),
        (Want("none", 5, True, SHA), seen(), Action.NOTHING, "no Milvus container"),
    ],
)
def test_each_rule(want: Want, observed: Seen, action: Action, words: str) -> None:
    step = next_step(want, observed)
    assert step.action is action, step
    assert words in step.reason, step.reason


def test_a_writer_designate_prepares_during_the_fence_but_never_starts_without_a_lease() -> None:
    """Told ro at the new epoch with itself as the writer, the agent wants rw without a lease: it stops its
    ro container, remounts rw and writes the rw config while the old writer is fenced, then waits."""
    designate = replace(RW, lease_valid=False)
    steps = [
        next_step(designate, seen(container("ro"))),
        next_step(designate, seen(mount_mode="ro")),
        next_step(designate, seen(mount_mode="rw", config_on_disk_sha256=None)),
        next_step(designate, seen(mount_mode="rw")),
    ]
    assert [s.action for s in steps] == [Action.STOP, Action.MOUNT, Action.WRITE_CONFIG, Action.WAIT]
    assert steps[1].mount_mode == "rw" and "holding no valid lease" in steps[3].reason
    assert next_step(RW, seen(mount_mode="rw")).action is Action.START  # the promotion: one step left
    assert wanted_role("ro", "me", "me", coordinated=True) == ("rw", True)
    assert wanted_role("ro", "other", "me", coordinated=True) == ("ro", False)
    assert wanted_role("ro", "me", "me", coordinated=False) == ("ro", False)  # a local file names no designate
    assert wanted_role("rw", "me", "me", coordinated=True) == ("rw", False)


def test_a_container_that_just_started_is_checked_again_soon_then_at_the_loop_interval() -> None:
    starting = seen(container("rw"), mount_mode="rw", health_error="connection refused", running_for_s=0.3)
    step = next_step(RW, starting)
    assert step.action is Action.WAIT and step.recheck_s is not None and step.recheck_s <= 0.2
    assert next_step(RW, replace(starting, running_for_s=45.0)).recheck_s is None  # a slow start: no busy loop
    assert next_step(RW, replace(starting, health_error=None)).recheck_s is None  # healthy: nothing to look for


def test_a_container_that_was_healthy_gets_the_whole_timeout_after_its_first_failed_check() -> None:
    """Running for long is not being unhealthy for long: the timeout counts from the first failed check."""
    broken = seen(container("rw"), mount_mode="rw", health_error="connection refused", running_for_s=1000.0)
    assert next_step(RW, replace(broken, unhealthy_for_s=0.5)).action is Action.WAIT
    assert "unhealthy for 0s (limit 60s)" in next_step(RW, replace(broken, unhealthy_for_s=0.5)).reason
    assert next_step(RW, replace(broken, unhealthy_for_s=60.0)).action is Action.STOP
    assert next_step(RW, broken).action is Action.STOP  # never answered since it started 1000 s ago


def test_starting_is_judged_by_the_start_timeout_and_failing_by_the_health_timeout() -> None:
    """A WAL replay or a preload keeps /state silent for minutes: that is starting, not failing (rules 8-10)."""
    starting = seen(container("ro"), health_error="connection refused", running_for_s=200.0)  # > health timeout
    step = next_step(RO, starting)
    assert step.action is Action.WAIT, step
    assert "ro container starting for 200s (limit 300s)" in step.reason
    timed_out = next_step(RO, replace(starting, running_for_s=300.0))
    assert timed_out.action is Action.STOP and timed_out.counts_as_crash
    assert "did not answer GET /state within milvus.start_timeout_s (300s)" in timed_out.reason
    answered = replace(starting, unhealthy_for_s=59.0)  # it answered once, then stopped answering 59 s ago
    assert next_step(RO, answered).action is Action.WAIT
    failed = next_step(RO, replace(answered, unhealthy_for_s=60.0))
    assert failed.action is Action.STOP and failed.counts_as_crash and "unhealthy for 60s" in failed.reason


# -- GPUs: a GPU image never starts without them (rule 14), a GPU report gone does not restart it (rule 7) ------
def gpu(index: int, health: str = "healthy") -> GpuStatus:
    return GpuStatus(
        index, f"GPU-{index}", "H200", None, None, None, None, None, health, ["xid 79"] if health == "failed" else []
    )  # type: ignore[arg-type]


def report(*gpus: GpuStatus, available: bool = True) -> GpuReport:
    return GpuReport(
        available, None if available else "NVML unavailable: libnvidia-ml.so.1 not found", "550", list(gpus), 0.0
    )


def test_a_gpu_image_waits_and_says_why_instead_of_starting_without_gpus() -> None:
    cases = [
        (choose_gpus("gpu", "none", (), True, report(gpu(0))), "milvus.gpus is none"),
        (choose_gpus("gpu", "all", (), True, None), "GPU monitoring is off"),
        (choose_gpus("gpu", "all", (), True, report(available=False)), "NVML is unavailable: NVML unavailable"),
        (
            choose_gpus("gpu", "all", (), True, report(gpu(0, "failed"), gpu(1, "failed"))),
            "none healthy (gpu 0: xid 79",
        ),
        (choose_gpus("gpu", "list", (2,), True, report(gpu(0))), "none of milvus.gpus [2]"),
    ]
    for choice, words in cases:
        assert choice.start_blocker is not None and words in choice.start_blocker, (choice, words)
        assert choice.start_blocker.startswith("not starting Milvus: the GPU image needs GPUs")
        step = next_step(RW, seen(mount_mode="rw", gpu_start_blocker=choice.start_blocker, config_on_disk_sha256=None))
        assert step.action is Action.WAIT and step.reason == choice.start_blocker
    assert next_step(RO, seen(gpu_start_blocker="x", backoff_left_s=5)).reason == "x"  # said before the backoff


def test_the_gpus_a_container_gets_and_the_devices_it_is_told() -> None:
    two = report(gpu(0), gpu(1, "failed"), gpu(2, "degraded"))
    choice = choose_gpus("gpu", "all", (), True, two)
    assert choice.uuids == ("GPU-0", "GPU-2") and choice.render_count == 2 and choice.start_blocker is None
    assert choose_gpus("gpu", "list", (1, 2), True, two).uuids == ("GPU-2",)
    kept = choose_gpus("gpu", "all", (), False, two)  # set_gpu_devices: false gives them all, base section kept
    assert kept.uuids == ("GPU-0", "GPU-1", "GPU-2") and kept.render_count is None
    cpu = choose_gpus("cpu", "none", (), True, None)  # a CPU image: no request, gpu.enable false, never waits
    assert cpu.uuids is None and cpu.render_count == 0 and cpu.start_blocker is None
    assert choose_gpus("cpu", "all", (), True, report(available=False)).start_blocker is None


def test_a_gpu_report_that_turns_unavailable_does_not_restart_a_healthy_milvus() -> None:
    """The render changes when NVML stops answering; restarting then would put Milvus in a container without
    its GPUs, which cannot load libnvidia-ml.so.1. A GPU that really fails still restarts it on the others."""
    gone = choose_gpus("gpu", "all", (), True, report(available=False))
    assert gone.report_unavailable
    running = seen(container("ro", sha="b" * 64), gpu_start_blocker=gone.start_blocker, gpu_report_unavailable=True)
    step = next_step(RO, running)
    assert step.action is Action.NOTHING and "keeps running" in step.reason, step
    assert next_step(RO, replace(running, health_error="refused", unhealthy_for_s=61)).action is Action.STOP
    failed = choose_gpus("gpu", "all", (), True, report(gpu(0), gpu(1, "failed")))
    assert not failed.report_unavailable
    restart = next_step(RO, seen(container("ro", sha="b" * 64), gpu_report_unavailable=failed.report_unavailable))
    assert restart.action is Action.STOP and "server_config.yaml changed" in restart.reason


def test_the_extra_container_stopped_is_not_the_one_in_the_wanted_role() -> None:
    good = container("ro", id="good")
    old = container("rw", status="exited", id="old", name="milvus-prev", exit_code=0)
    step = next_step(RO, seen(good, old))
    assert step.action is Action.STOP and step.container_id == "old"


def test_a_clean_exit_is_not_counted_as_a_crash() -> None:
    step = next_step(RO, seen(container("ro", status="exited", exit_code=0)))
    assert step.action is Action.REMOVE and not step.counts_as_crash


def test_never_start_rw_on_a_read_only_or_unhealthy_mount() -> None:
    for mount_mode, state in [("ro", "healthy"), (None, "unmounted"), ("rw", "hung"), ("rw", "failed")]:
        step = next_step(RW, seen(mount_mode=mount_mode, mount_state=state))
        assert step.action is not Action.START, (mount_mode, state, step)


# -- recovery in place and the drain ------------------------------------------------------------------------
def test_a_hung_mount_whose_metadata_engine_answers_is_killed_after_hung_kill_after_s() -> None:
    writer = container("rw", epoch=4)
    hung = dict(mount_mode="rw", mount_state="failed", mount_reasons=("hung",), hung_kill_after_s=10.0)
    assert next_step(RW, seen(writer, mount_hung_for_s=9.0, meta_engine_reachable=True, **hung)).action not in (
        Action.KILL_JUICEFS,
        Action.STOP,
    )
    step = next_step(RW, seen(writer, mount_hung_for_s=10.5, meta_engine_reachable=True, **hung))
    assert step.action is Action.KILL_JUICEFS and "hung for 10s" in step.reason and "answers" in step.reason
    # The metadata engine is down: the hang is its, and a new client would hang the same; nothing is killed.
    step = next_step(RW, seen(writer, mount_hung_for_s=60.0, meta_engine_reachable=False, **hung))
    assert step.action is not Action.KILL_JUICEFS
    # 0 turns the kill off.
    off = {**hung, "hung_kill_after_s": 0.0}
    assert next_step(RW, seen(writer, mount_hung_for_s=60.0, meta_engine_reachable=True, **off)).action is not (
        Action.KILL_JUICEFS
    )


def test_a_container_on_a_dead_mount_is_stopped_then_the_mount_recovered_then_it_starts_again() -> None:
    writer = container("rw", epoch=4)
    dead = dict(mount_mode=None, mount_state="failed", mount_reasons=("ENOTCONN",), mount_not_connected=True)
    step = next_step(RW, seen(writer, **dead))
    assert step.action is Action.STOP and not step.counts_as_crash and "on its own WAL" in step.reason
    assert next_step(RW, seen(**dead)).action is Action.MOUNT  # no container: the mount is recovered
    assert next_step(RW, seen(mount_mode="rw")).action is Action.START  # same epoch, same WAL
    reader = container("ro", epoch=3)
    step = next_step(RO, seen(reader, **dead))
    assert step.action is Action.STOP and "WAL" not in step.reason


def test_a_container_on_a_mount_since_replaced_is_stopped_and_one_on_the_mount_there_now_is_left() -> None:
    reader = container("ro", epoch=3)
    step = next_step(RO, seen(reader, mount_device="0:61", container_mount_device="0:53"))
    assert step.action is Action.STOP and not step.counts_as_crash and step.container_id == reader.id
    assert "(device 0:53) was replaced by another (device 0:61)" in step.reason and "WAL" not in step.reason
    writer = container("rw", epoch=4)
    step = next_step(RW, seen(writer, mount_mode="rw", mount_device="0:61", container_mount_device="0:53"))
    assert step.action is Action.STOP and "on its own WAL" in step.reason
    # The same device, or one not known (not readable, not mounted): no judgement from it.
    for inside, now in (("0:53", "0:53"), (None, "0:61"), ("0:53", None)):
        observed = seen(reader, mount_device=now, container_mount_device=inside)
        assert next_step(RO, observed).action is Action.NOTHING, (inside, now)


def test_a_writer_told_to_drain_stops_gracefully_and_starts_nothing() -> None:
    draining = replace(RW, drain_id=77, drain_timeout_s=120.0)
    step = next_step(draining, seen(container("rw", epoch=4), mount_mode="rw"))
    assert step.action is Action.STOP and step.drain and "draining" in step.reason
    step = next_step(draining, seen(mount_mode="rw"))
    assert step.action is Action.NOTHING and "drained" in step.reason


def test_a_writer_whose_mysql_does_not_answer_is_stopped_and_waits_to_replay_its_wal() -> None:
    down = dict(mount_mode="rw", meta_db_error="172.17.0.1:3306: Connection refused")
    step = next_step(RW, seen(container("rw", epoch=4), **down))
    assert step.action is Action.STOP and "its MySQL does not answer" in step.reason and "replays it" in step.reason
    step = next_step(RW, seen(**down))
    assert step.action is Action.WAIT and "not starting rw" in step.reason
    assert next_step(RW, seen(mount_mode="rw")).action is Action.START  # MySQL back: it starts on its WAL
    # A reader does not flush: it keeps running.
    assert next_step(RO, seen(container("ro", epoch=3), meta_db_error="x")).action is Action.NOTHING


def test_a_writer_its_lease_wrapper_killed_is_removed_with_that_cause() -> None:
    from agent.milvus.converge import LEASE_LAPSED
    from agent.milvus.leasewatch import LEASE_EXPIRED_EXIT

    fenced = container("rw", status="exited", epoch=4, exit_code=LEASE_EXPIRED_EXIT)
    step = next_step(RW, seen(fenced, mount_mode="rw"))
    assert step.action is Action.REMOVE and step.cause == LEASE_LAPSED and not step.counts_as_crash
    crashed = container("rw", status="exited", epoch=4, exit_code=1)
    step = next_step(RW, seen(crashed, mount_mode="rw"))
    assert step.action is Action.REMOVE and step.cause == "" and step.counts_as_crash
