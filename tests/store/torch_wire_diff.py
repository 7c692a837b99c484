#!/usr/bin/env python3
"""Sends a fixed script of raw TCPStore requests to a store and prints each reply as hex.

  torch_wire_diff.py --port P     talk to the store at 127.0.0.1:P (ours)
  torch_wire_diff.py --torch      start torch's own TCPStore server (libuv) and talk to it

Run both and compare the outputs: every line must match. The script covers every command's
reply format and the protocol errors where torch closes the connection. It leaves out the one
place where our server differs on purpose: a connection that does not start with VALIDATE (torch
ignores it, we close it). Used by tests/store_torch/torch_interop.cpp.
"""
import argparse
import socket
import struct
import sys

MAGIC = struct.pack("<BI", 0, 0x3C85F7CE)


def s(data: bytes) -> bytes:
    return struct.pack("<Q", len(data)) + data


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


class Conn:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(MAGIC)
        self.nonce = 1

    def sync(self) -> bytes:
        """Everything the server sent before answering a PING (which proves it read what came before)."""
        self.nonce += 1
        token = struct.pack("<I", self.nonce)
        self.sock.sendall(b"\x0d" + token)
        data = b""
        while not data.endswith(token):
            chunk = self.sock.recv(65536)
            if not chunk:
                return data + b"<closed>"
            data += chunk
        return data[: -len(token)]

    def request(self, payload: bytes) -> str:
        try:
            self.sock.sendall(payload)
            reply = self.sync()
        except (ConnectionResetError, BrokenPipeError):
            return "<closed>"
        if reply.endswith(b"<closed>"):
            return reply[: -len(b"<closed>")].hex() + "<closed>"
        return reply.hex()


def script(port: int):
    c = Conn(port)
    steps = [
        ("ping", b"\x0d" + struct.pack("<I", 0x223)),
        ("compare_set missing, expected x", b"\x02" + s(b"cs") + s(b"x") + s(b"y")),
        ("compare_set missing, expected ''", b"\x02" + s(b"cs") + s(b"") + s(b"y")),
        ("compare_set present, mismatch", b"\x02" + s(b"cs") + s(b"z") + s(b"w")),
        ("compare_set present, match", b"\x02" + s(b"cs") + s(b"y") + s(b"w")),
        ("list_keys", b"\x11"),
        ("getnumkeys", b"\x07"),
        ("queue_push (no reply)", b"\x0e" + s(b"q") + s(b"a")),
        ("queue_len", b"\x10" + s(b"q")),
        ("queue_pop", b"\x0f" + s(b"q")),
        ("queue_pop empty", b"\x0f" + s(b"q")),
        ("check empty queue", b"\x05" + u64(1) + s(b"q")),
        ("delete present", b"\x08" + s(b"cs")),
        ("delete missing", b"\x08" + s(b"cs")),
        ("get missing", b"\x03" + s(b"missing")),
        ("wait pending (no reply yet)", b"\x06" + u64(1) + s(b"w1")),
        ("cancel_wait", b"\x0c"),
        ("wait then set", b"\x06" + u64(1) + s(b"w2") + b"\x01" + s(b"w2") + s(b"v")),
        ("multi_get missing", b"\x0a" + u64(2) + s(b"cs") + s(b"nope")),
        ("add -5", b"\x04" + s(b"n") + struct.pack("<q", -5)),
        ("append + get", b"\x09" + s(b"n") + s(b"7") + b"\x03" + s(b"n")),
        ("add to appended", b"\x04" + s(b"n") + struct.pack("<q", 1)),
        ("check no keys", b"\x05" + u64(0)),
        ("wait no keys", b"\x06" + u64(0)),
        ("multi_set + multi_get", b"\x0b" + u64(2) + s(b"m1") + s(b"v1") + s(b"m2") + s(b"v2")
         + b"\x0a" + u64(2) + s(b"m2") + s(b"m1")),
        ("check mixed", b"\x05" + u64(2) + s(b"m1") + s(b"absent")),
        ("getnumkeys after", b"\x07"),
        ("set binary + get", b"\x01" + s(b"bin") + s(bytes(range(256))) + b"\x03" + s(b"bin")),
    ]
    for name, payload in steps:
        print(f"{name}: {c.request(payload)}")
    # Protocol errors: each on a fresh connection, which the server must close.
    errors = [
        ("second validate", MAGIC),
        ("command byte 18", b"\x12"),
        ("command byte 0x7f", b"\x7f"),
        ("key over 8 KiB", b"\x03" + u64(8193)),
        ("value over 8 MiB", b"\x01" + s(b"k") + u64(8 * 1024 * 1024 + 1)),
        ("wait over 128 Ki keys", b"\x06" + u64(128 * 1024 + 1)),
        ("add to non-number", b"\x01" + s(b"t") + s(b"abc") + b"\x04" + s(b"t") + struct.pack("<q", 1)),
    ]
    for name, payload in errors:
        print(f"{name}: {Conn(port).request(payload)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int)
    where.add_argument("--torch", action="store_true")
    args = parser.parse_args()
    if args.torch:
        import datetime
        import torch.distributed as dist

        server = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, use_libuv=True,
                               timeout=datetime.timedelta(seconds=30))
        script(server.port)
    else:
        script(args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
