"""The decision core, rule by rule (no I/O: durable state, memory and reports in; decision out)."""

from __future__ import annotations

from dataclasses import replace

from coordinator.core import Memory, Request, Timing, committed, decide
from coordinator.model import ClusterRow, Durable, NodeRecord, Report, WriterStop
from coordinator.phases import ChangeWriter, progress_event
from coordinator.requests import validate_request

T = Timing()


def rep(node: str, at: float, role: str = "ro", epoch: int = 1, **kw) -> Report:
    base = dict(
        node=node,
        address=f"10.0.0.{ord(node[-1]) - ord('a') + 1}",
        received_at=at,
        role_running=role,
        container_role=role,
        highest_epoch=epoch,
        gpu_health="healthy",
        mount_state="healthy",
        milvus_port=19530,
        milvus_http_port=19121,
    )
    base.update(kw)
    return Report(**base)


def durable(writer: str | None = "a", epoch: int = 1, paused: bool = False, **nodes: NodeRecord) -> Durable:
    records = {n: NodeRecord(name=n, address=f"10.0.0.{i + 1}") for i, n in enumerate("abc")}
    records.update(nodes)
    return Durable(ClusterRow(name="c", writer=writer, epoch=epoch, paused=paused), records)


def settled(now: float = 100.0, **kw) -> Memory:
    return Memory(leader_since=0.0, settled=True, **kw)


def healthy_cluster(now: float, epoch: int = 1) -> dict[str, Report]:
    return {"a": rep("a", now, "rw", epoch), "b": rep("b", now, epoch=epoch), "c": rep("c", now, epoch=epoch)}


# -- a new leader -------------------------------------------------------------------------------------
def test_a_new_leader_decides_nothing_until_it_has_listened() -> None:
    d = decide(durable(), Memory(leader_since=10.0), healthy_cluster(11.0), 11.0, T, leadership_left_s=5)
    assert d.change_writer is None and "listening to reports" in d.why
    assert d.assignments["a"].role == "rw" and d.assignments["a"].lease_ms == 3000  # it runs rw at epoch 1
    assert d.assignments["b"].role == "ro"


def test_a_new_leader_renews_no_lease_to_a_writer_not_yet_running() -> None:
    reports = healthy_cluster(11.0)
    reports["a"] = rep("a", 11.0, "none")
    d = decide(durable(), Memory(leader_since=10.0), reports, 11.0, T, leadership_left_s=5)
    assert d.assignments["a"].role == "rw" and d.assignments["a"].lease_ms == 0


def test_after_listening_a_writer_not_running_rw_is_fenced_for_a_full_lease_from_takeover() -> None:
    reports = {**healthy_cluster(13.1), "a": rep("a", 13.1, "none")}
    d = decide(durable(), Memory(leader_since=10.0), reports, 13.1, T, leadership_left_s=5)
    t = d.memory.transition
    assert t is not None and t.kind == "resume" and t.committed_at == 10.0
    assert d.assignments["a"].role == "ro"
    later = decide(durable(), d.memory, {**healthy_cluster(13.2), "a": rep("a", 13.2, "none")}, 13.2, T, 5)
    assert later.memory.transition is not None and later.memory.transition.promoted_at is None
    done = decide(durable(), d.memory, reports, 10.0 + T.lease_s + T.fence_margin_s + 0.01, T, 5)
    assert done.memory.transition is not None and done.memory.transition.promoted_at is not None
    assert done.assignments["a"].role == "rw" and done.assignments["a"].lease_ms > 0


def test_a_restarted_leader_keeps_a_healthy_writer_without_a_bump() -> None:
    memory = Memory(leader_since=10.0)
    d = decide(durable(), memory, healthy_cluster(13.5), 13.5, T, leadership_left_s=5)
    assert d.change_writer is None and d.memory.transition is None and d.memory.settled
    assert d.assignments["a"].role == "rw" and d.assignments["a"].epoch == 1


# -- first writer ---------------------------------------------------------------------------------------
def test_first_writer_by_priority_then_gpu_health_then_name() -> None:
    reports = {n: rep(n, 100.0, "none", 0, mount_state="unmounted") for n in "abc"}
    base = durable(writer=None, epoch=0)
    assert decide(base, settled(), reports, 100.0, T, 5).change_writer == ChangeWriter("a", 0)
    reports["a"] = replace(reports["a"], gpu_health="degraded")
    assert decide(base, settled(), reports, 100.0, T, 5).change_writer == ChangeWriter("b", 0)
    prio = durable(writer=None, epoch=0, c=NodeRecord("c", "10.0.0.3", priority=5))
    assert decide(prio, settled(), reports, 100.0, T, 5).change_writer == ChangeWriter("c", 0)


def test_no_first_writer_when_paused_or_nobody_fits() -> None:
    reports = {n: rep(n, 100.0, "none", 0, gpu_health="failed") for n in "abc"}
    d = decide(durable(writer=None, epoch=0), settled(), reports, 100.0, T, 5)
    assert d.change_writer is None and "no node can be one" in d.why and "GPU failed" in d.why
    d = decide(durable(writer=None, epoch=0, paused=True), settled(), healthy_cluster(100.0, 0), 100.0, T, 5)
    assert d.change_writer is None and "paused" in d.why


# -- a healthy writer -----------------------------------------------------------------------------------
def test_a_healthy_writer_gets_a_lease_no_longer_than_the_leaders_own() -> None:
    d = decide(durable(), settled(), healthy_cluster(100.0), 100.0, T, leadership_left_s=1.2)
    assert d.change_writer is None
    assert d.assignments["a"].role == "rw" and d.assignments["a"].lease_ms == 1200
    assert {d.assignments[n].role for n in "bc"} == {"ro"}
    assert d.assignments["b"].writer_address == "10.0.0.1" and d.assignments["b"].writer_http_port == 19121
    short = decide(durable(), settled(), healthy_cluster(100.0), 100.0, T, leadership_left_s=0.2)
    assert short.assignments["a"].role == "rw" and short.assignments["a"].lease_ms == 0
    assert "healthy" in d.why


# -- writer failures ------------------------------------------------------------------------------------
def test_missing_reports_fail_over_to_the_best_reader() -> None:
    now = 100.0
    reports = healthy_cluster(now)
    reports["a"] = rep("a", now - T.detect_after_s - 0.1, "rw")
    reports["c"] = rep("c", now - 0.5)  # older report than b: b is fresher
    d = decide(durable(), settled(), reports, now, T, 5)
    assert d.change_writer == ChangeWriter("b", 1)
    t = d.memory.transition
    assert t is not None and t.kind == "failover" and t.old == "a" and "has not reported" in t.reason


def test_a_writer_cut_off_from_the_coordinator_only_is_not_failed_over() -> None:
    now = 100.0
    reports = healthy_cluster(now)
    reports["a"] = rep("a", now - 10, "rw")
    reports["b"] = rep("b", now, writer_seen_healthy_age_s=0.4)
    d = decide(durable(), settled(), reports, now, T, 5)
    assert d.change_writer is None and "cut off from the coordinator only" in d.why


def test_faults_its_node_cannot_recover_are_confirmed_before_failing_over() -> None:
    for fault in (
        {"gpu_health": "failed", "gpu_reasons": ("fatal XID 79",), "gpus_usable": 0, "milvus_gpu_failed": True},
        {"write_probe_ms": 5000.0},
    ):
        reports = healthy_cluster(100.0)
        reports["a"] = rep("a", 100.0, "rw", **fault)
        first = decide(durable(), settled(), reports, 100.0, T, 5)
        assert first.change_writer is None and "confirming" in first.why
        reports = {n: replace(r, received_at=100.0 + T.fault_grace_s) for n, r in reports.items()}
        second = decide(durable(), first.memory, reports, 100.0 + T.fault_grace_s, T, 5)
        assert second.change_writer == ChangeWriter("b", 1), fault


def test_a_writer_whose_node_is_alive_recovers_in_place_before_any_failover() -> None:
    """A dead or hung mount, a crashed container, a lost GPU with another left: the agent recovers each on the
    writer's own node (its WAL is there); the coordinator waits recover_in_place_s, then fails over."""
    for fault in (
        {"mount_state": "hung", "mount_reasons": ("hung since 12:00",)},
        {"mount_state": "failed", "mount_reasons": ("transport endpoint is not connected",), "role_running": "none"},
        {"role_running": "none", "container_role": "none"},
        {"gpu_health": "failed", "gpu_reasons": ("GPU 1: GPU is lost",), "gpus_usable": 1, "milvus_gpu_failed": True},
    ):
        reports = healthy_cluster(100.0)
        reports["a"] = rep("a", 100.0, "rw", **fault)
        first = decide(durable(), settled(), reports, 100.0, T, 5)
        assert first.change_writer is None and "recovers it in place" in first.why, fault
        assert first.assignments["a"].role == "rw" and first.assignments["a"].lease_ms > 0  # still the writer
        almost = 100.0 + T.recover_in_place_s - 0.1
        reports = {n: replace(r, received_at=almost) for n, r in reports.items()}
        held = decide(durable(), first.memory, reports, almost, T, 5)
        assert held.change_writer is None, fault
        later = 100.0 + T.recover_in_place_s
        reports = {n: replace(r, received_at=later) for n, r in reports.items()}
        second = decide(durable(), held.memory, reports, later, T, 5)
        assert second.change_writer == ChangeWriter("b", 1), fault


def test_a_writer_that_recovers_in_place_keeps_its_role_and_the_clock_restarts() -> None:
    reports = {**healthy_cluster(100.0), "a": rep("a", 100.0, "none", container_role="none")}
    d = decide(durable(), settled(), reports, 100.0, T, 5)
    back = {**healthy_cluster(110.0)}
    d = decide(durable(), d.memory, back, 110.0, T, 5)
    assert d.change_writer is None and d.memory.writer_fault_since is None and "healthy" in d.why
    down_again = {**healthy_cluster(120.0), "a": rep("a", 120.0, "none", container_role="none")}
    d = decide(durable(), d.memory, down_again, 120.0, T, 5)
    assert d.change_writer is None and d.memory.writer_fault_since == 120.0


def test_a_metadata_engine_down_for_every_node_holds_the_writer() -> None:
    """The fault is not the writer's: no other node would escape it, so the writer is not moved, however long."""
    down = {"mount_state": "failed", "mount_reasons": ("metadata engine unreachable",), "meta_engine_reachable": False}
    reports = {
        "a": rep("a", 100.0, "rw", **down),
        "b": rep("b", 100.0, **down),
        "c": rep("c", 100.0, **down),
    }
    d = decide(durable(), settled(), reports, 100.0, T, 5)
    later = 100.0 + T.recover_in_place_s + 60
    reports = {n: replace(r, received_at=later) for n, r in reports.items()}
    d = decide(durable(), d.memory, reports, later, T, 5)
    assert d.change_writer is None and "unreachable from every node (a, b, c)" in d.why and not d.events
    # One reader reaches it again: the fault is the writer's own from now, with its whole in-place time.
    reports["b"] = replace(reports["b"], meta_engine_reachable=True, mount_state="healthy", mount_reasons=())
    d = decide(durable(), d.memory, reports, later, T, 5)
    assert d.change_writer is None and "recovers it in place for 30.0s more" in d.why


def test_paused_means_no_automatic_failover() -> None:
    reports = {**healthy_cluster(100.0), "a": rep("a", 90.0, "rw")}
    d = decide(durable(paused=True), settled(), reports, 100.0, T, 5)
    assert d.change_writer is None and "paused" in d.why
    assert d.assignments["b"].role == "ro"


def test_one_automatic_failover_per_window() -> None:
    reports = {**healthy_cluster(100.0), "a": rep("a", 90.0, "rw")}
    d = decide(durable(), settled(last_auto_failover_at=80.0), reports, 100.0, T, 5)
    assert d.change_writer is None and "at most one is allowed per 60s" in d.why


def test_no_candidate_says_exactly_why() -> None:
    reports = {
        "a": rep("a", 90.0, "rw"),
        "b": rep("b", 100.0, mount_state="failed"),
        "c": rep("c", 100.0),
    }
    d = decide(durable(c=NodeRecord("c", "10.0.0.3", maintenance=True)), settled(), reports, 100.0, T, 5)
    assert d.change_writer is None
    assert "b mount failed" in d.why and "c in maintenance" in d.why
    assert d.events and d.events[0].kind == "no-candidate"


# -- a role change through its phases -------------------------------------------------------------------
def test_failover_phases_fence_by_lease_then_promote_then_healthy_then_mishards() -> None:
    now = 100.0
    reports = {**healthy_cluster(now), "a": rep("a", 90.0, "rw")}
    reports["c"] = rep("c", now, hosts_mishards=True, mishards_writer="tcp://10.0.0.1:19530")
    d = decide(durable(), settled(), reports, now, T, 5)
    assert d.change_writer == ChangeWriter("b", 1)
    memory = committed(d.memory, 2, now + 0.01)
    after = durable(writer="b", epoch=2)
    d = decide(after, memory, reports, now + 0.1, T, 5)
    assert d.assignments["b"].role == "ro" and d.assignments["a"].role == "ro"  # fenced first
    assert "fencing" in d.why
    end = now + 0.01 + T.lease_s + T.fence_margin_s
    d = decide(after, d.memory, {**reports, "b": rep("b", end, epoch=2)}, end + 0.01, T, 5)
    assert d.memory.transition is not None and d.memory.transition.phase() == "promote"
    assert d.assignments["b"].role == "rw" and d.assignments["b"].lease_ms > 0
    assert "lease of a ran out" in d.why
    reports["b"] = rep("b", end + 1, "rw", 2)
    reports["c"] = rep("c", end + 1, epoch=2, hosts_mishards=True, mishards_writer="tcp://10.0.0.1:19530")
    d = decide(after, d.memory, reports, end + 1.1, T, 5)
    assert d.memory.transition is not None and d.memory.transition.phase() == "healthy"
    assert "Mishards on c" in d.why
    reports["c"] = rep("c", end + 2, epoch=2, hosts_mishards=True, mishards_writer="tcp://10.0.0.2:19530")
    d = decide(after, d.memory, reports, end + 2.1, T, 5)
    assert d.memory.transition is None
    (event,) = d.events
    assert event.kind == "failover" and [p for p, _ in event.phases] == [
        "detect",
        "decide",
        "fence",
        "promote",
        "healthy",
        "mishards",
    ]


def test_a_failover_in_progress_is_recorded_once_committed_with_its_phases_so_far() -> None:
    """What `coordinatorctl history` shows while a failover runs: nothing before the commit, then the change with
    the phases it has been through, on the wall clock, under the names MySQL's events keep."""
    now = 100.0
    reports = {**healthy_cluster(now), "a": rep("a", 90.0, "rw")}
    d = decide(durable(), settled(), reports, now, T, 5)
    assert progress_event(d.memory.transition, now, 5000.0) is None  # decided, not committed
    memory = committed(d.memory, 2, now + 0.5)
    event = progress_event(memory.transition, now + 1.0, 5001.0)
    assert event is not None and (event.kind, event.node, event.epoch) == ("failover", "b", 2)
    assert event.phases == (("detect", 5000.0), ("decide", 5000.0), ("fence", 5000.5))
    assert all(type(name) is str for name, _ in event.phases)


def test_an_acknowledged_demotion_ends_the_fence_at_once() -> None:
    now = 100.0
    memory = settled(request=Request("failover", "b", "planned"))
    d = decide(durable(), memory, healthy_cluster(now), now, T, 5)
    assert d.change_writer == ChangeWriter("b", 1)
    memory = committed(d.memory, 2, now)
    after = durable(writer="b", epoch=2)
    acked = {**healthy_cluster(now + 0.5, epoch=2), "a": rep("a", now + 0.5, "ro", 2)}
    d = decide(after, memory, acked, now + 0.6, T, 5)
    assert d.assignments["b"].role == "rw" and "acknowledged" in d.why


def test_a_failed_promotion_moves_on_to_the_next_candidate() -> None:
    now = 100.0
    reports = {**healthy_cluster(now), "a": rep("a", 90.0, "rw")}
    d = decide(durable(), settled(), reports, now, T, 5)
    memory = committed(d.memory, 2, now)
    after = durable(writer="b", epoch=2)
    late = now + T.lease_s + 1
    d = decide(after, memory, {**reports, "b": rep("b", late, epoch=2), "c": rep("c", late, epoch=2)}, late, T, 5)
    assert d.assignments["b"].role == "rw"
    hopeless = late + T.promote_timeout_s + 1
    d = decide(after, d.memory, {"b": rep("b", hopeless, epoch=2), "c": rep("c", hopeless, epoch=2)}, hopeless, T, 5)
    assert d.change_writer == ChangeWriter("c", 2)
    assert d.events[0].kind == "promote-failed"
    assert d.memory.failed_candidates["b"] > hopeless


def test_a_resumed_writer_that_never_reports_fails_after_the_detection_time_not_the_promote_timeout() -> None:
    """The old leader and the writer died together: the new leader resumes the durable writer, hears nothing
    from it, and fails over once it has been silent for detect_after_s past the resume fence."""
    readers = {"b": rep("b", 13.1), "c": rep("c", 13.1)}
    d = decide(durable(), Memory(leader_since=10.0), readers, 13.1, T, leadership_left_s=5)
    assert d.memory.transition is not None and d.memory.transition.kind == "resume"
    fenced = 10.0 + T.lease_s + T.fence_margin_s + 0.01
    d = decide(durable(), d.memory, {k: replace(r, received_at=fenced) for k, r in readers.items()}, fenced, T, 5)
    assert d.memory.transition is not None and d.memory.transition.promoted_at is not None
    waited = 10.0 + T.detect_after_s + 0.01
    now = max(fenced, waited) + 0.01
    d = decide(durable(), d.memory, {k: replace(r, received_at=now) for k, r in readers.items()}, now, T, 5)
    assert d.change_writer is not None and d.change_writer.new_writer in ("b", "c"), d.why
    assert d.events[0].kind == "promote-failed" and "has not reported" in d.events[0].reason


def test_maintenance_on_the_writer_switches_over_first() -> None:
    in_maintenance = durable(a=NodeRecord("a", "10.0.0.1", maintenance=True))
    d = decide(in_maintenance, settled(), healthy_cluster(100.0), 100.0, T, 5, now_unix=1000.0)
    t = d.memory.transition
    assert t is not None and t.kind == "switchover" and t.phase() == "drain" and d.change_writer is None
    assert d.assignments["a"].role == "rw" and d.assignments["a"].drain_id == t.drain_id
    drained = rep("a", 101.0, "none", container_role="none", last_writer_stop=WriterStop(1, t.drain_id, 0, 0.8))
    d = decide(in_maintenance, d.memory, {**healthy_cluster(101.0), "a": drained}, 101.0, T, 5, now_unix=1001.0)
    assert d.change_writer == ChangeWriter("b", 1)


def test_operator_requests_are_validated() -> None:
    reports = healthy_cluster(100.0)
    reports["c"] = rep("c", 100.0, mount_state="failed")
    check = lambda r: validate_request(durable(), settled(), reports, r, 100.0, T)  # noqa: E731
    assert check(Request("switchover", "c", "x")) == "c cannot be the writer: mount failed"
    assert check(Request("switchover", "a", "x")) == "a is already the writer"
    assert check(Request("switchover", "zz", "x")) == "zz is not a known node"
    assert check(Request("switchover", None, "x")) is None
    assert check(Request("failover", None, "x")) == "a failover needs --to NODE"


def test_a_forced_failover_skips_the_fence() -> None:
    now = 100.0
    reports = {**healthy_cluster(now), "a": rep("a", 90.0, "rw")}
    d = decide(durable(paused=True), settled(request=Request("failover", "b", "", force=True)), reports, now, T, 5)
    assert d.change_writer == ChangeWriter("b", 1)
    memory = committed(d.memory, 2, now)
    d = decide(durable("b", 2, paused=True), memory, reports, now + 0.1, T, 5)
    assert d.assignments["b"].role == "rw" and "forced" in d.why


# -- Mishards discovery ---------------------------------------------------------------------------------
def test_readers_join_the_host_list_after_settling_and_leave_when_unhealthy() -> None:
    memory = settled()
    d = decide(durable(), memory, healthy_cluster(100.0), 100.0, T, 5)
    assert d.discovery is not None and d.discovery.hosts == ("10.0.0.1",)  # nobody settled: the writer serves
    assert d.discovery.writer_address == "10.0.0.1" and d.discovery.writer_port == 19530
    d = decide(durable(), d.memory, healthy_cluster(100.0 + T.settle_s), 100.0 + T.settle_s, T, 5)
    assert d.discovery is not None and d.discovery.hosts == ("10.0.0.2", "10.0.0.3")
    reports = {**healthy_cluster(106.0), "c": rep("c", 106.0, mount_state="failed")}
    d = decide(durable(), d.memory, reports, 106.0, T, 5)
    assert d.discovery is not None and d.discovery.hosts == ("10.0.0.2",)


def test_only_nodes_hosting_mishards_are_told_the_discovery() -> None:
    reports = {**healthy_cluster(100.0), "c": rep("c", 100.0, hosts_mishards=True)}
    d = decide(durable(), settled(), reports, 100.0, T, 5)
    assert d.assignments["c"].discovery == d.discovery and d.discovery is not None
    assert d.assignments["b"].discovery is None and d.assignments["a"].discovery is None


def test_an_unchanged_assignment_is_reused_and_every_field_counts_in_the_comparison() -> None:
    from dataclasses import fields

    from coordinator.assignments import told_of
    from coordinator.model import Assignment

    compared = set(Assignment.__dataclass_fields__) - {"node", "discovery"}
    sample = Assignment("a", "ro", 1, 0, "b", "10.0.0.2", 19121, None, "r")
    assert len(told_of(sample)) == len(compared) == len(fields(Assignment)) - 2
    d = decide(durable(), settled(), healthy_cluster(100.0), 100.0, T, 5)
    again = decide(durable(), d.memory, healthy_cluster(100.5), 100.5, T, 5, 0.0, d.assignments)
    assert all(again.assignments[n] is d.assignments[n] for n in "bc")  # readers: nothing changed
    moved = decide(durable(writer="b", epoch=2), d.memory, healthy_cluster(101.0, 2), 101.0, T, 5, 0.0, d.assignments)
    assert moved.assignments["c"] is not d.assignments["c"] and moved.assignments["c"].epoch == 2


def test_a_silent_writer_is_fenced_until_its_last_grant_and_its_last_row_read_can_have_run_out() -> None:
    now = 100.0
    last = now - T.detect_after_s - 0.1  # a's last report, answered with a whole lease
    d = decide(durable(), settled(), {**healthy_cluster(now), "a": rep("a", last, "rw")}, now, T, 5)
    assert d.change_writer == ChangeWriter("b", 1)
    memory = committed(d.memory, 2, now)
    after = durable(writer="b", epoch=2)

    def promoted(at: float, old: Report) -> bool:
        reports = {"a": old, "b": rep("b", at - 0.1, epoch=2), "c": rep("c", at - 0.1, epoch=2)}
        t = decide(after, memory, reports, at, T, 5).memory.transition
        return t is not None and t.promoted_at is not None

    # Its grants ended by last + lease (before the commit); a row read sent before the commit renews for its row
    # lease, so the fence ends at commit + row lease + margin, not at commit + a whole lease.
    says = rep("a", last, "rw", row_lease_s=T.row_lease_s)
    row_end = now + T.row_lease_s + T.fence_margin_s
    assert T.row_lease_s < T.lease_s and last + T.lease_s < now + T.row_lease_s
    assert not promoted(row_end - 0.02, says) and promoted(row_end + 0.02, says)
    # An agent that does not say what a row read renews it for (an older one) is given a whole lease.
    unsaid = rep("a", last, "rw")
    full = now + T.lease_s + T.fence_margin_s
    assert not promoted(full - 0.02, unsaid) and promoted(full + 0.02, unsaid)
    # One that says more than this leader allows (an earlier leader's setting) is given what it says.
    longer = rep("a", last, "rw", row_lease_s=2.5)
    assert not promoted(now + 2.5 + T.fence_margin_s - 0.02, longer)
    assert promoted(now + 2.5 + T.fence_margin_s + 0.02, longer)
    # Even one longer than this leader's whole lease (an earlier leader with a longer lease_s granted it).
    longest = rep("a", last, "rw", row_lease_s=T.lease_s + 1)
    assert not promoted(now + T.lease_s + 1 + T.fence_margin_s - 0.02, longest)


def test_an_old_writer_that_does_not_acknowledge_is_fenced_a_whole_lease_from_its_last_report() -> None:
    now = 100.0
    memory = settled(request=Request("failover", "b", "planned"))
    d = decide(durable(), memory, healthy_cluster(now), now, T, 5)
    assert d.change_writer == ChangeWriter("b", 1)
    memory = committed(d.memory, 2, now + 0.05)
    after = durable(writer="b", epoch=2)

    def promoted(at: float) -> bool:
        # a keeps reporting its rw container after the commit: answered ro, so no grant after the commit counts
        reports = {**healthy_cluster(at - 0.1, epoch=2), "a": rep("a", at - 0.1, "rw", 1, row_lease_s=1.5)}
        t = decide(after, memory, reports, at, T, 5).memory.transition
        return t is not None and t.promoted_at is not None

    end = now + 0.05 + T.lease_s + T.fence_margin_s
    assert not promoted(end - 0.02) and promoted(end + 0.02)


def test_a_failed_gpu_is_the_writers_fault_only_while_its_milvus_holds_it() -> None:
    from coordinator.core import Timing
    from coordinator.faults import writer_faults

    timing = Timing(recover_in_place_s=30.0, fault_grace_s=2.0)
    failed = dict(gpu_health="failed", gpu_reasons=("GPU 0: fatal XID 79",))
    # A CPU image, or a GPU image already restarted on the GPU left: Milvus does not use the failed one.
    assert writer_faults(rep("a", 100.0, "rw", gpus_usable=1, **failed), timing) == []
    assert writer_faults(rep("a", 100.0, "rw", gpus_usable=0, **failed), timing) == []
    # Its Milvus holds the failed GPU: the agent restarts it on the one left, in place.
    ((text, grace),) = writer_faults(rep("a", 100.0, "rw", gpus_usable=1, milvus_gpu_failed=True, **failed), timing)
    assert "a GPU failed, 1 left to restart on" in text and grace == 30.0
    # None left: it cannot restart in place; and a GPU image that cannot start runs no container at all.
    ((text, grace),) = writer_faults(rep("a", 100.0, "rw", gpus_usable=0, milvus_gpu_failed=True, **failed), timing)
    assert text.startswith("its GPU failed") and grace == 2.0
    stopped = rep("a", 100.0, "none", gpus_usable=0, **failed)
    assert ("its GPU failed (GPU 0: fatal XID 79)", 2.0) in writer_faults(stopped, timing)


def test_the_report_says_whether_the_running_milvus_holds_a_failed_gpu() -> None:
    from jfsmilvus.v1 import coordinator_pb2, node_pb2

    from coordinator.server import report_from_pb

    def report(gpus: list[str] | None) -> Report:
        obs = node_pb2.NodeObservation(node="a", address="10.0.0.1", role_running=node_pb2.ROLE_RW)
        obs.gpus.available = True
        obs.gpus.gpus.add(index=0, uuid="GPU-0", health=node_pb2.HEALTH_FAILED, reasons=["fatal XID 79"])
        obs.gpus.gpus.add(index=1, uuid="GPU-1", health=node_pb2.HEALTH_HEALTHY)
        obs.container.CopyFrom(
            node_pb2.ContainerStatus(
                state="running", role=node_pb2.ROLE_RW, gpus=gpus or [], gpus_labelled=gpus is not None
            )
        )
        return report_from_pb(coordinator_pb2.ReportRequest(observation=obs), received_at=0.0)

    assert report(["GPU-0", "GPU-1"]).milvus_gpu_failed  # it holds the failed one
    assert not report(["GPU-1"]).milvus_gpu_failed  # restarted on the one left
    assert not report([]).milvus_gpu_failed  # a CPU image
    assert report(None).milvus_gpu_failed  # a container from before the label: any failed GPU counts
    assert report(["GPU-1"]).gpu_health == "failed" and report(["GPU-1"]).gpus_usable == 1
