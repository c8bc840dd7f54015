from jfsmilvus.v1 import node_pb2 as _node_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AssignRequest(_message.Message):
    __slots__ = ("assignment", "coordinator", "leader_term")
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    LEADER_TERM_FIELD_NUMBER: _ClassVar[int]
    assignment: _node_pb2.Assignment
    coordinator: str
    leader_term: int
    def __init__(self, assignment: _Optional[_Union[_node_pb2.Assignment, _Mapping]] = ..., coordinator: _Optional[str] = ..., leader_term: _Optional[int] = ...) -> None: ...

class AssignResponse(_message.Message):
    __slots__ = ("accepted", "reason", "role_running", "highest_epoch_seen")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ROLE_RUNNING_FIELD_NUMBER: _ClassVar[int]
    HIGHEST_EPOCH_SEEN_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    role_running: _node_pb2.Role
    highest_epoch_seen: int
    def __init__(self, accepted: _Optional[bool] = ..., reason: _Optional[str] = ..., role_running: _Optional[_Union[_node_pb2.Role, str]] = ..., highest_epoch_seen: _Optional[int] = ...) -> None: ...
