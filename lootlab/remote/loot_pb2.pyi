from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Point(_message.Message):
    __slots__ = ("x", "y", "z")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    z: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., z: _Optional[int] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("x", "y", "z", "item_id", "value", "quantity", "rarity", "flags", "tick")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    RARITY_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    TICK_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    z: int
    item_id: int
    value: int
    quantity: int
    rarity: int
    flags: int
    tick: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., z: _Optional[int] = ..., item_id: _Optional[int] = ..., value: _Optional[int] = ..., quantity: _Optional[int] = ..., rarity: _Optional[int] = ..., flags: _Optional[int] = ..., tick: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("at", "packed")
    AT_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    at: Point
    packed: bool
    def __init__(self, at: _Optional[_Union[Point, _Mapping]] = ..., packed: _Optional[bool] = ...) -> None: ...

class NearRequest(_message.Message):
    __slots__ = ("at", "radius", "packed")
    AT_FIELD_NUMBER: _ClassVar[int]
    RADIUS_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    at: Point
    radius: float
    packed: bool
    def __init__(self, at: _Optional[_Union[Point, _Mapping]] = ..., radius: _Optional[float] = ..., packed: _Optional[bool] = ...) -> None: ...

class BoxRequest(_message.Message):
    __slots__ = ("lo", "hi", "packed")
    LO_FIELD_NUMBER: _ClassVar[int]
    HI_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    lo: Point
    hi: Point
    packed: bool
    def __init__(self, lo: _Optional[_Union[Point, _Mapping]] = ..., hi: _Optional[_Union[Point, _Mapping]] = ..., packed: _Optional[bool] = ...) -> None: ...

class KnnRequest(_message.Message):
    __slots__ = ("at", "k", "packed")
    AT_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    at: Point
    k: int
    packed: bool
    def __init__(self, at: _Optional[_Union[Point, _Mapping]] = ..., k: _Optional[int] = ..., packed: _Optional[bool] = ...) -> None: ...

class Records(_message.Message):
    __slots__ = ("records", "packed", "generation")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[Record]
    packed: bytes
    generation: int
    def __init__(self, records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ..., packed: _Optional[bytes] = ..., generation: _Optional[int] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Stats(_message.Message):
    __slots__ = ("requests", "connections", "tls_connections", "tls_resumed", "generation", "records", "tls_requests", "resumed_requests", "cpu_seconds", "processes", "process_requests")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    TLS_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    TLS_RESUMED_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    TLS_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    RESUMED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    PROCESS_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: int
    connections: int
    tls_connections: int
    tls_resumed: int
    generation: int
    records: int
    tls_requests: int
    resumed_requests: int
    cpu_seconds: float
    processes: int
    process_requests: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, requests: _Optional[int] = ..., connections: _Optional[int] = ..., tls_connections: _Optional[int] = ..., tls_resumed: _Optional[int] = ..., generation: _Optional[int] = ..., records: _Optional[int] = ..., tls_requests: _Optional[int] = ..., resumed_requests: _Optional[int] = ..., cpu_seconds: _Optional[float] = ..., processes: _Optional[int] = ..., process_requests: _Optional[_Iterable[int]] = ...) -> None: ...
