#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (docs/fuzzing.md).

Seeds are small, meaningful inputs: valid and malformed hostfiles, include/exclude specs, argv
sets, and store byte streams (each command encoded, and the torch 2.11 worker traffic recorded in
research/tcpstore-2.11.md). Running this again rewrites the seed files (names seed_*); it never
touches other files there, such as crash reproducers (named repro_*) or inputs a fuzzer saved.
"""
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, "seed_" + name), "wb") as f:
        f.write(data)


# ---- hostfile ---------------------------------------------------------------------------------
def hostfiles():
    good = {
        "two_workers": "worker-0 slots=4\nworker-1 slots=4\n",
        "indented_with_comments": "\n    node-a slots=2\n    node-b slots=2\n\n  # spare\n    #node-c slots=8\n  127.0.0.1 slots=1\n\n  ",
        "trailing_comment": "gpu-host slots=8 # rack 2\nother slots=1#tight\n",
        "mpi_extras": "w0 slots=4 max_slots=8\nw1 slots=2 max_slots=2\n",
        "tabs_and_crlf": "w0\tslots=2\r\nw1  slots=1\r\n",
        "ipv6_and_fqdn": "fe80::1 slots=2\nnode7.cluster.example.org slots=8\n10.1.2.3 slots=1\n",
        "localhost": "localhost slots=1",
        "max_slots": "big slots=65536\n",
        "many_hosts": "".join(f"node-{i:03d} slots={1 + i % 8}\n" for i in range(64)),
    }
    bad = {
        "host_only": "worker-0\n",
        "no_value": "worker-0 slots=\n",
        "not_a_number": "worker-0 slots=four\n",
        "glued_digits": "worker-0 slots=4abc\n",
        "slot_spelling": "worker-0 slot=4\n",
        "no_host": "slots=4\n",
        "duplicate": "w0 slots=1\nw1 slots=1\nw0 slots=2\n",
        "zero_slots": "w0 slots=0\n",
        "too_many_slots": "w0 slots=65537\n",
        "huge_number": "w0 slots=99999999999999999999999999\n",
        "empty": "",
        "only_comments": "# nothing here\n\n   # still nothing\n",
        "binary": b"w0 slots=2\n\x00\xff\xfe slots=\x01\n",
        "nul_in_host": b"w\x00 slots=2\n",
        "bad_line_after_good": "w0 slots=2\nw1 slots=2\nw2 = 3\n",
    }
    for name, text in good.items():
        write("hostfile", "good_" + name, text)
    for name, text in bad.items():
        write("hostfile", "bad_" + name, text)


# ---- resource_filter: first line the spec, the rest an optional hostfile ------------------------
def resource_filters():
    specs = {
        "one_host": "worker-0",
        "host_slots": "worker-1:0,1",
        "two_hosts": "worker-0@worker-1:1",
        "three_hosts": "localhost:0,2,4@worker-0:3@worker-1",
        "merged_lists": "localhost:1@localhost:3,5@localhost",
        "repeated_slots": "localhost:0,0,7,7",
        "no_slots": "worker-0:",
        "no_host": ":1",
        "two_colons": "worker-0:1:2",
        "letter_slot": "worker-0:a",
        "negative_slot": "worker-0:-1",
        "missing_slot": "worker-1:5",
        "unknown_host": "worker-9",
        "empty_between_ats": "worker-0@@worker-1",
        "trailing_at": "worker-0@",
        "empty": "",
        "visible_devices": "0,2",
        "huge_slot": "localhost:2147483648",
    }
    for name, spec in specs.items():
        write("resource_filter", name, spec)
    with_hostfile = {
        "derived_include": "n1:0\nn0 slots=2\nn1 slots=3\n",
        "derived_bare_and_listed": "n0@n0:1\nn0 slots=4\n",
        "derived_exclude_all": "n0@n1\nn0 slots=1\nn1 slots=1\n",
        "derived_bad_hostfile": "n0\nn0 slots=x\n",
        "derived_unknown": "worker-0\nn0 slots=2\n",
    }
    for name, text in with_hostfile.items():
        write("resource_filter", name, text)


# ---- options: byte 0 the host mode, then argv words separated by NUL ---------------------------
def options():
    gpus = {0: 0, 2: 1, 4: 2, 8: 3}

    def argv(name, words, gpu_count=0, extra_bits=0):
        mode = gpus[gpu_count] | extra_bits
        write("options", name, bytes([mode]) + b"\0".join(w.encode() for w in words))

    argv("python_script", ["train.py"])
    argv("cpu_ranks_with_config", ["--num_gpus", "2", "train.py", "--deepspeed_config", "ds.json"])
    argv("hostfile_include", ["-H", "one", "-i", "localhost:1,3", "train.py"], 4)
    argv("hostfile_two_nodes_first", ["-H", "two", "--num_nodes", "1", "train.py"], 2)
    argv("hostfile_two_nodes", ["-H", "two", "train.py"], 2)
    argv("hostfile_malformed", ["-H", "bad", "train.py"])
    argv("hostfile_duplicate", ["--hostfile=dup", "train.py"])
    argv("hostfile_missing", ["-H", "nowhere/at/all", "train.py"])
    argv("include_merged", ["--include", "localhost:0@localhost:1", "train.py"], 4)
    argv("exclude_one", ["--exclude", "localhost:0", "train.py", "--lr", "3e-4"], 4)
    argv("exclude_everything", ["-e", "localhost", "train.py"], 2)
    argv("bind_cores", ["--bind_cores_to_rank", "--bind_core_list", "0-3", "--num_gpus", "2", "trainer"])
    argv("bind_core_ranges", ["--bind_cores_to_rank", "--bind_core_list", "1,3-5,7", "trainer"], 2)
    argv("bind_cores_kmp", ["--bind_cores_to_rank", "trainer"], 0, 0x10)
    argv("torchrun_flags", ["--nproc_per_node", "auto", "--nnodes", "1:1", "--rdzv_endpoint", "[::1]:29400",
                            "--rdzv_backend", "c10d", "--rdzv_id", "job7", "trainer"])
    argv("supervision", ["--standalone", "--max_restarts", "3", "--monitor_interval", "0.5", "--redirects", "0:1,1:2",
                         "--tee", "3", "--log_dir", "/tmp/x", "--nproc-per-node", "2", "trainer"])
    argv("module", ["--module", "pkg.train", "--no_local_rank", "--epochs", "2"])
    argv("no_python", ["--no_python", "trainer", "--local_rank", "x"])
    argv("help", ["--help"])
    argv("version", ["--version"])
    argv("master", ["--master_addr", "10.0.0.5", "--master_port", "0", "train.py"])
    argv("ours", ["--enable_each_rank_log", "/tmp/logs", "--save_pid", "--debug_rank", "0", "--rdzv_timeout", "0",
                  "--kill_grace", "1.5", "--log_level", "debug", "--dry_run", "train.py"])
    argv("quiet_conflict", ["-q", "--log_level", "info", "train.py"])
    argv("refused", ["--elastic_training", "--autotuning", "tune", "train.py"])
    argv("dash_program", ["--", "-weird-program"])
    argv("multi_node_flags", ["--launcher", "OpenMPI", "--launcher_args", "-x A", "--ssh_port", "2222", "--force_multi",
                              "train.py"])
    argv("gpu_without_gpus", ["--nproc_per_node", "gpu", "trainer"])
    argv("visible_devices", ["train.py"], 4, 0x04)
    argv("visible_devices_empty", ["train.py"], 4, 0x08)
    argv("all_counts", ["--num_gpus", "-1", "--num_nodes", "-1", "train.py"], 8, 0x20)
    argv("deepspeed_configs", ["train.py", "--deepspeed", "a.json", "--deepspeed_config=b.json"])
    argv("no_program", ["--num_gpus", "2"])
    argv("plus_minus_number", ["--num_gpus", "+-1", "--redirects", "+-0:1", "train.py"])


# ---- store streams ------------------------------------------------------------------------------
Q = {name: i for i, name in enumerate(
    "VALIDATE SET COMPARE_SET GET ADD CHECK WAIT GETNUMKEYS DELETE_KEY APPEND MULTI_GET MULTI_SET "
    "CANCEL_WAIT PING QUEUE_PUSH QUEUE_POP QUEUE_LEN LIST_KEYS".split())}
Q["AUTH_CHALLENGE"] = 0xA0
Q["AUTH_RESPONSE"] = 0xA1
MAGIC = 0x3C85F7CE


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack("<Q", len(b)) + b


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def i64(v):
    return struct.pack("<q", v)


def q(name, *parts):
    return bytes([Q[name]]) + b"".join(parts)


VALIDATE = q("VALIDATE", u32(MAGIC))

# One of each command, as a client encodes it.
COMMANDS = {
    "set": q("SET", s("k"), s("v")),
    "compare_set": q("COMPARE_SET", s("k"), s("v"), s("w")),
    "get": q("GET", s("k")),
    "add": q("ADD", s("counter"), i64(3)),
    "check": q("CHECK", u64(2), s("k"), s("counter")),
    "wait": q("WAIT", u64(1), s("k")),
    "get_num_keys": q("GETNUMKEYS"),
    "delete_key": q("DELETE_KEY", s("k")),
    "append": q("APPEND", s("k"), s("+more")),
    "multi_get": q("MULTI_GET", u64(2), s("k"), s("missing")),
    "multi_set": q("MULTI_SET", u64(2), s("a"), s("1"), s("b"), s("2")),
    "cancel_wait": q("CANCEL_WAIT"),
    "ping": q("PING", u32(0x223)),
    "queue_push": q("QUEUE_PUSH", s("queue"), s("item")),
    "queue_pop": q("QUEUE_POP", s("queue")),
    "queue_len": q("QUEUE_LEN", s("queue")),
    "list_keys": q("LIST_KEYS"),
    "auth_challenge": q("AUTH_CHALLENGE"),
    "auth_response": q("AUTH_RESPONSE", s(bytes(range(32)))),
}

# research/tcpstore-2.11.md: what one torch 2.11 worker sent (its gloo address blob is 170 bytes).
ADDRESS_KEY = "/default_pg/0//cpu//0/0"
PEER_KEY = "/default_pg/0//cpu//0/1"
BLOB = bytes((i * 37 + 11) % 256 for i in range(170))
TORCH_WORKER = (VALIDATE + q("PING", u32(0x223)) + q("ADD", s("init/"), i64(1)) + q("SET", s(ADDRESS_KEY), s(BLOB))
                + q("WAIT", u64(1), s(ADDRESS_KEY)) + q("GET", s(ADDRESS_KEY))
                + q("WAIT", u64(1), s(PEER_KEY)) + q("GET", s(PEER_KEY))
                + q("SET", s("/default_pg/0//probe/key"), s("value"))
                + q("WAIT", u64(1), s("/default_pg/0//probe/key")) + q("GET", s("/default_pg/0//probe/key")))
# The same worker after its peer registered: every WAIT is answered.
TORCH_WORKER_WITH_PEER = TORCH_WORKER.replace(q("WAIT", u64(1), s(PEER_KEY)),
                                              q("SET", s(PEER_KEY), s(BLOB)) + q("WAIT", u64(1), s(PEER_KEY)))


def store_protocol():
    for name, data in COMMANDS.items():
        write("store_protocol", "cmd_" + name, b"\x00" + data)
    write("store_protocol", "torch_worker", b"\x01" + TORCH_WORKER)
    write("store_protocol", "all_commands", b"\x02" + VALIDATE + b"".join(COMMANDS.values()))
    write("store_protocol", "validate", b"\x03" + VALIDATE)
    write("store_protocol", "bad_unknown_command", b"\x04" + VALIDATE + b"\x42rest")
    write("store_protocol", "bad_key_over_limit", b"\x05" + q("GET", u64(8 * 1024 + 1)) + b"x" * 16)
    write("store_protocol", "bad_count_over_limit", b"\x06" + q("MULTI_GET", u64(128 * 1024 + 1)))
    write("store_protocol", "bad_value_over_limit", b"\x07" + q("SET", s("k"), u64(8 * 1024 * 1024 + 1)))
    write("store_protocol", "bad_proof_over_limit", b"\x08" + q("AUTH_RESPONSE", s(bytes(33))))
    write("store_protocol", "partial_set", b"\x09" + q("SET", s("key"), u64(100)) + b"only part")
    write("store_protocol", "empty_multi", b"\x0a" + q("MULTI_SET", u64(0)) + q("WAIT", u64(0)) + q("CHECK", u64(0)))
    write("store_protocol", "binary_key", b"\x0b" + q("SET", s(b"\x00\xff/dslaunch/x"), s(b"\x00" * 40)))


def store_server():
    validate, auth = 0x01, 0x02
    no_token, require_auth = 0x04, 0x08
    pieces_1, pieces_7, pieces_64 = 0x00, 0x10, 0x20
    whole = 0x30

    def stream(name, mode, data):
        write("store_server", name, bytes([mode]) + data)

    stream("torch_worker", whole, TORCH_WORKER_WITH_PEER)
    stream("torch_worker_left_waiting", pieces_7, TORCH_WORKER)
    stream("torch_worker_no_token", whole | no_token, TORCH_WORKER_WITH_PEER)
    for name, data in COMMANDS.items():
        if name.startswith("auth"):
            continue
        stream("cmd_" + name, validate | whole, data)
    stream("all_commands", validate | pieces_64, b"".join(d for n, d in COMMANDS.items() if not n.startswith("auth")))
    stream("wait_then_cancel", validate | pieces_1, q("WAIT", u64(2), s("x"), s("y")) + q("SET", s("x"), s("1"))
           + q("CANCEL_WAIT") + q("SET", s("y"), s("2")))
    stream("wait_again_replaces", validate | whole, q("WAIT", u64(1), s("x")) + q("WAIT", u64(1), s("y"))
           + q("SET", s("x"), s("1")))
    stream("queue_waits", validate | pieces_7, q("WAIT", u64(1), s("jobs")) + q("QUEUE_PUSH", s("jobs"), s("a"))
           + q("QUEUE_PUSH", s("jobs"), s("b")) + q("QUEUE_POP", s("jobs")) + q("QUEUE_LEN", s("jobs"))
           + q("QUEUE_POP", s("jobs")) + q("QUEUE_POP", s("jobs")))
    stream("protected_unauthenticated", validate | whole, q("SET", s("dslaunch/plan"), s("x")))
    stream("protected_authenticated", auth | whole, q("SET", s("dslaunch/plan"), s("x")) + q("GET", s("dslaunch/plan"))
           + q("LIST_KEYS") + q("GETNUMKEYS"))
    stream("require_auth_refused", validate | require_auth | whole, q("PING", u32(7)) + q("SET", s("k"), s("v")))
    stream("require_auth_authenticated", auth | require_auth | pieces_7, COMMANDS["set"] + COMMANDS["get"])
    stream("no_token_challenge", validate | no_token | whole, q("AUTH_CHALLENGE") + q("SET", s("dslaunch/x"), s("open")))
    stream("response_without_challenge", validate | whole, q("AUTH_RESPONSE", s(bytes(32))))
    stream("wrong_proof", validate | pieces_1, q("AUTH_CHALLENGE") + q("AUTH_RESPONSE", s(bytes(32))))
    stream("validate_twice", validate | whole, VALIDATE)
    stream("no_validate", whole, q("GET", s("k")))
    stream("wrong_magic", whole, q("VALIDATE", u32(0xDEADBEEF)) + q("GET", s("k")))
    stream("add_not_a_number", validate | whole, q("SET", s("n"), s("twelve")) + q("ADD", s("n"), i64(1)))
    stream("add_overflow", validate | whole, q("ADD", s("n"), i64(2**63 - 1)) + q("ADD", s("n"), i64(1)))
    stream("big_replies", validate | pieces_64, q("SET", s("big"), s(b"x" * 2000)) + q("GET", s("big")) * 50)
    stream("unknown_command_after_replies", validate | pieces_7, q("PING", u32(1)) + b"\x42" + q("PING", u32(2)))
    stream("partial_request_at_eof", validate | whole, q("SET", s("k"), u64(1000)) + b"short")
    # Under tight caps (bit 6): 4 KiB replies, 8 KiB stored, 2 connections, 16 KiB requests.
    tight = 0x40
    stream("caps_giant_multi_get", validate | tight | whole,
           q("SET", s("big"), s(b"x" * 3000)) + q("MULTI_GET", u64(1000), *([s("big")] * 1000)))
    stream("caps_list_keys_over_reply", validate | tight | pieces_64,
           b"".join(q("SET", s(b"k%03d" % i + b"x" * 60), s("1")) for i in range(80)) + q("LIST_KEYS"))
    stream("caps_get_grown_by_append", validate | tight | pieces_7,
           q("APPEND", s("a"), s(b"y" * 3000)) + q("APPEND", s("a"), s(b"y" * 3000)) + q("GET", s("a")))
    stream("caps_stored_bytes_full", validate | tight | whole,
           q("SET", s("a"), s(b"1" * 5000)) + q("SET", s("b"), s(b"2" * 5000)) + q("GET", s("a")))
    stream("caps_store_filled_to_the_brim", validate | tight | whole, q("SET", s("a"), s(b"1" * 8000)))
    stream("caps_multi_set_over_stored", validate | tight | pieces_64,
           q("MULTI_SET", u64(2), s("m1"), s(b"1" * 5000), s("m2"), s(b"2" * 5000)) + q("GETNUMKEYS"))
    stream("caps_queue_over_stored", validate | tight | whole,
           q("QUEUE_PUSH", s("q"), s(b"1" * 5000)) + q("QUEUE_PUSH", s("q"), s(b"2" * 5000)))
    stream("caps_request_over_limit", validate | tight | pieces_64, q("SET", s("k"), u64(20000)) + b"z" * 100)
    stream("caps_partial_request_at_eof", validate | tight | pieces_1, q("MULTI_GET", u64(3), s("a")) + b"\x05")
    stream("caps_protected_dsworker_unauthenticated", validate | whole,
           q("GET", s("dsworker/run/attempt_0/dp/gloo/1")))
    stream("caps_protected_dsworker_list", auth | tight | whole,
           q("SET", s("dsworker/run/attempt_0/start/count"), s("2")) + q("LIST_KEYS") + q("GETNUMKEYS"))
    stream("caps_unread_replies", validate | tight | whole, q("SET", s("v"), s(b"v" * 3000)) + q("GET", s("v")) * 40)


def main():
    hostfiles()
    resource_filters()
    options()
    store_protocol()
    store_server()
    total = 0
    for folder, _, files in os.walk(ROOT):
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    print(f"corpus under {ROOT}: {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
