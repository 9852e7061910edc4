"""Oracle for tests/track_wandb.rs: reads an offline W&B run back and prints it as JSON.

usage: read_wandb.py OFFLINE_RUN_DIR     (RUN/wandb/offline-run-<time>-<id>/)

The records of `run-<id>.wandb` are W&B's own protobuf messages (`wandb.proto.wandb_internal_pb2
.Record`, from the pinned wandb package), framed as a LevelDB log behind W&B's 7-byte header
(":W&B", magic 0xBEE1, version 0). wandb 0.31 reads these files in its Go core only, so the
framing is read here (checksums verified as the SDK writes them); the messages are parsed by
wandb's own classes. Output: {"run_id", "project", "config": {key: value}, "history": [{...,
"_step": N}], "files": [...], "exit_code", "media": [...]} where media lists the image files
written under files/media/.
"""
import json
import os
import struct
import sys
import zlib

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = 7


def records(path):
    data = open(path, "rb").read()
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER])
    assert ident == b":W&B" and magic == 0xBEE1 and version == 0, (ident, magic, version)
    pos, pending = HEADER, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left  # block trailer
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left  # zero padding to the block's end
            continue
        body = data[pos + 7:pos + 7 + length]
        want = zlib.crc32(body, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF
        assert checksum == want, f"bad checksum at {pos}"
        pos += 7 + length
        if kind == 1:  # FULL
            yield body
        elif kind == 2:  # FIRST
            pending = body
        elif kind == 3:  # MIDDLE
            pending += body
        elif kind == 4:  # LAST
            yield pending + body
            pending = b""


def key_of(item):
    return item.key or "/".join(item.nested_key)


def main(run_dir):
    (log,) = [f for f in os.listdir(run_dir) if f.endswith(".wandb")]
    out = {"config": {}, "history": [], "files": [], "exit_code": None}
    for raw in records(os.path.join(run_dir, log)):
        r = pb.Record()
        r.ParseFromString(raw)
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["run_id"], out["project"] = r.run.run_id, r.run.project
            for u in r.run.config.update:
                out["config"][key_of(u)] = json.loads(u.value_json)
        elif kind == "config":
            for u in r.config.update:
                out["config"][key_of(u)] = json.loads(u.value_json)
        elif kind == "history":
            out["history"].append({key_of(i): json.loads(i.value_json) for i in r.history.item})
        elif kind == "files":
            out["files"] += [f.path for f in r.files.files]
        elif kind == "exit":
            out["exit_code"] = r.exit.exit_code
    media = os.path.join(run_dir, "files", "media")
    out["media"] = sorted(os.path.relpath(os.path.join(d, f), run_dir) for d, _, fs in os.walk(media) for f in fs)
    print(json.dumps(out))


main(sys.argv[1])
