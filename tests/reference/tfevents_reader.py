#!/usr/bin/python3
"""An independent reader of TensorBoard event files, for teddy's tests.

TFRecord framing checked with crcmod's CRC-32C (Debian python3-crcmod), the Event and
Summary messages parsed by Google's protobuf library (python3-protobuf) from
descriptors written here after tensorflow/core/util/event.proto and
tensorflow/core/framework/summary.proto (field numbers as published), not from teddy's
code. Prints one JSON object: {"records": [...], "complete": N, "tail_bytes": K}, where
a record is {"wall_time", "step", "file_version"?, "session_status"?, "scalars": {tag:
value, or "nan" / "inf" / "-inf"}}; K bytes after the last complete record are an incomplete one (a cut file).
Exits 1 naming the record on a CRC mismatch or an unparsable message.
"""
import json
import math
import struct
import sys

import crcmod.predefined
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

crc32c = crcmod.predefined.mkCrcFun("crc-32c")


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def finite_or_name(x):
    # JSON has no NaN or infinity: name them ("nan", "inf", "-inf").
    return x if math.isfinite(x) else str(x)


def build_event_class():
    f = descriptor_pb2.FileDescriptorProto(name="tb_reader_event.proto", package="tbreader", syntax="proto3")
    T = descriptor_pb2.FieldDescriptorProto

    def field(msg, name, number, ftype, label=T.LABEL_OPTIONAL, type_name=None):
        fd = msg.field.add(name=name, number=number, type=ftype, label=label)
        if type_name:
            fd.type_name = type_name

    value = f.message_type.add(name="SummaryValue")
    field(value, "tag", 1, T.TYPE_STRING)
    field(value, "simple_value", 2, T.TYPE_FLOAT)
    summary = f.message_type.add(name="Summary")
    field(summary, "value", 1, T.TYPE_MESSAGE, T.LABEL_REPEATED, ".tbreader.SummaryValue")
    session_log = f.message_type.add(name="SessionLog")
    field(session_log, "status", 1, T.TYPE_INT32)  # enum SessionStatus on the wire: a varint
    field(session_log, "checkpoint_path", 2, T.TYPE_STRING)
    field(session_log, "msg", 3, T.TYPE_STRING)
    event = f.message_type.add(name="Event")
    field(event, "wall_time", 1, T.TYPE_DOUBLE)
    field(event, "step", 2, T.TYPE_INT64)
    field(event, "file_version", 3, T.TYPE_STRING)
    field(event, "summary", 5, T.TYPE_MESSAGE, type_name=".tbreader.Summary")
    field(event, "session_log", 6, T.TYPE_MESSAGE, type_name=".tbreader.SessionLog")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    desc = pool.FindMessageTypeByName("tbreader.Event")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def main(path):
    Event = build_event_class()
    data = open(path, "rb").read()
    pos, records = 0, []
    while pos + 12 <= len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (len_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if masked(crc32c(header)) != len_crc:
            sys.exit(f"{path}: record {len(records)} at byte {pos}: length CRC mismatch")
        end = pos + 12 + length + 4
        if end > len(data):
            break  # cut off mid-record
        payload = data[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack("<I", data[end - 4:end])
        if masked(crc32c(payload)) != data_crc:
            sys.exit(f"{path}: record {len(records)} at byte {pos}: payload CRC mismatch")
        ev = Event()
        ev.ParseFromString(payload)
        rec = {"wall_time": ev.wall_time, "step": ev.step, "scalars": {v.tag: finite_or_name(v.simple_value) for v in ev.summary.value}}
        if ev.file_version:
            rec["file_version"] = ev.file_version
        if ev.HasField("session_log"):
            rec["session_status"] = ev.session_log.status
        records.append(rec)
        pos = end
    print(json.dumps({"records": records, "complete": len(records), "tail_bytes": len(data) - pos}))


if __name__ == "__main__":
    main(sys.argv[1])
