#!/usr/bin/python3
"""Serial single-row autocommit INSERTs at the leader of a 3-node cluster, against plain SQLite.

A stopgap until the benchmark program of issue #4: it prints commits/s, p50 and p99 for a
3-node cluster (the leader in this process, two followers as `sqlite3` shell processes, all on
127.0.0.1:17901-17903) and for plain SQLite (WAL, synchronous=FULL) on the same disk, in the
same run, through the same host SQLite (Debian's python3 sqlite3 module).

    cargo build --release
    /usr/bin/python3 scripts/measure_serial_commits.py target/release/libdqlite_vfs.so [COUNT]
"""

import os
import sqlite3
import subprocess
import sys
import tempfile
import time

PORTS = (17901, 17902, 17903)


def timed_inserts(conn: sqlite3.Connection, count: int) -> tuple[float, list[float]]:
    """Runs `count` autocommit INSERTs; returns the elapsed seconds and each one's latency."""
    latencies = []
    started = time.perf_counter()
    for i in range(count):
        before = time.perf_counter()
        conn.execute("INSERT INTO t(v) VALUES (?)", (f"row {i}",))
        latencies.append(time.perf_counter() - before)
    return time.perf_counter() - started, sorted(latencies)


def report(name: str, count: int, elapsed: float, latencies: list[float]) -> None:
    p50, p99 = latencies[count // 2] * 1000, latencies[int(count * 0.99)] * 1000
    print(f"{name}: {count / elapsed:.0f} commits/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")


def main() -> None:
    library, count = os.path.abspath(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    work = tempfile.mkdtemp(prefix="dqlite-vfs-measure-")
    loader = sqlite3.connect(":memory:")
    loader.enable_load_extension(True)
    loader.load_extension(library)
    leader = sqlite3.connect(f"file:{work}/n1.db?vfs=ha", uri=True, isolation_level=None)
    leader.execute(f"SELECT ha_init('127.0.0.1:{PORTS[0]}')").fetchone()
    followers = []
    try:
        for node, port in ((2, PORTS[1]), (3, PORTS[2])):
            follower = subprocess.Popen(
                ["sqlite3"], stdin=subprocess.PIPE, text=True, cwd=work,
                stdout=open(os.path.join(work, f"n{node}.out"), "w"), stderr=subprocess.STDOUT,
            )
            follower.stdin.write(f".load {library}\n.open file:n{node}.db?vfs=ha\n"
                                 f"SELECT ha_join('127.0.0.1:{port}', '127.0.0.1:{PORTS[0]}');\n")
            follower.stdin.flush()
            followers.append(follower)
        deadline = time.monotonic() + 60
        while leader.execute("SELECT json_array_length(ha_status(), '$.members')").fetchone()[0] < 3:
            if time.monotonic() > deadline:
                raise SystemExit("the followers did not join within 60 s")
            time.sleep(0.1)
        leader.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        elapsed, latencies = timed_inserts(leader, count)
        report("3-node cluster", count, elapsed, latencies)
        plain = sqlite3.connect(os.path.join(work, "plain.db"), isolation_level=None)
        plain.execute("PRAGMA journal_mode=WAL")
        plain.execute("PRAGMA synchronous=FULL")
        plain.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        plain_elapsed, plain_latencies = timed_inserts(plain, count)
        report("plain SQLite (WAL, synchronous=FULL)", count, plain_elapsed, plain_latencies)
        print(f"ratio to plain SQLite: {plain_elapsed / elapsed:.2f}")
    finally:
        for follower in followers:
            follower.kill()
            follower.wait()
        if os.environ.get("KEEP"): print("kept", work)
        else: subprocess.run(["rm", "-rf", work], check=False)


if __name__ == "__main__":
    main()
