#!/usr/bin/env python3
"""Reads TensorBoard event files with libraries fme did not write: Debian's python3-crcmod checks every TFRecord
CRC-32C, Debian's python3-protobuf parses every record as tensorflow.Event. The messages are declared here with
the field numbers of TensorFlow's tensorflow/core/util/event.proto and core/framework/summary.proto (the subset
scalars use).

    tfevents_reader.py FILE...   prints one JSON line per event: {"file", "step", "wall_time"} plus
                                 "file_version", "scalars" ({tag: value}) or "session_log" (status)
Exits non-zero naming the file and offset on a bad length, CRC or proto."""

import json
import struct
import sys

import crcmod.predefined
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def messages():
    fd = descriptor_pb2.FileDescriptorProto(name="fme_test_event.proto", package="tensorflow", syntax="proto3")

    def msg(name, fields):
        m = fd.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
        return m

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg("SummaryValue", [("node_name", 7, F.TYPE_STRING, opt, None), ("tag", 1, F.TYPE_STRING, opt, None),
                         ("simple_value", 2, F.TYPE_FLOAT, opt, None)])
    msg("Summary", [("value", 1, F.TYPE_MESSAGE, rep, ".tensorflow.SummaryValue")])
    msg("SessionLog", [("status", 1, F.TYPE_INT32, opt, None), ("checkpoint_path", 2, F.TYPE_STRING, opt, None),
                       ("msg", 3, F.TYPE_STRING, opt, None)])
    msg("Event", [("wall_time", 1, F.TYPE_DOUBLE, opt, None), ("step", 2, F.TYPE_INT64, opt, None),
                  ("file_version", 3, F.TYPE_STRING, opt, None), ("graph_def", 4, F.TYPE_BYTES, opt, None),
                  ("summary", 5, F.TYPE_MESSAGE, opt, ".tensorflow.Summary"),
                  ("session_log", 6, F.TYPE_MESSAGE, opt, ".tensorflow.SessionLog")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    desc = pool.FindMessageTypeByName("tensorflow.Event")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def main(paths):
    Event = messages()
    crc = crcmod.predefined.mkCrcFun("crc-32c")

    def masked(data):
        c = crc(data)
        return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    for path in paths:
        data = open(path, "rb").read()
        at = 0
        while at < len(data):
            if at + 12 > len(data):
                sys.exit(f"{path}: offset {at}: truncated record header")
            (n,) = struct.unpack_from("<Q", data, at)
            (len_crc,) = struct.unpack_from("<I", data, at + 8)
            if len_crc != masked(data[at:at + 8]):
                sys.exit(f"{path}: offset {at}: length CRC-32C mismatch")
            body = data[at + 12:at + 12 + n]
            if len(body) != n or at + 16 + n > len(data):
                sys.exit(f"{path}: offset {at}: truncated record")
            (body_crc,) = struct.unpack_from("<I", data, at + 12 + n)
            if body_crc != masked(body):
                sys.exit(f"{path}: offset {at}: data CRC-32C mismatch")
            e = Event()
            e.ParseFromString(body)
            out = {"file": path, "step": e.step, "wall_time": e.wall_time}
            if e.file_version:
                out["file_version"] = e.file_version
            if e.HasField("summary"):
                out["scalars"] = {v.tag: v.simple_value for v in e.summary.value}
            if e.HasField("session_log"):
                out["session_log"] = e.session_log.status
            print(json.dumps(out))
            at += 16 + n
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
