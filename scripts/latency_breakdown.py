#!/usr/bin/python3
"""Where a serial commit's time goes, from the library's latency traces.

Run the serial-commit measurement with the traces on and the work directory kept, then point
this script at the leader's log and the followers' outputs:

    KEEP=1 DQLITE_VFS_LOG='dqlite_vfs::latency=trace' \\
        /usr/bin/python3 scripts/measure_serial_commits.py target/release/libdqlite_vfs.so 500 2> leader.log
    /usr/bin/python3 scripts/latency_breakdown.py leader.log WORKDIR/n2.out WORKDIR/n3.out

For each commit (from the leader's "captured" event to the next one) it takes the first
occurrence of every event and prints the median and 90th percentile of its offset from
"captured", in microseconds, in the order the events happen.
"""

import re
import sys
from datetime import datetime

LINE = re.compile(r"^(\S+Z)\s+(?:TRACE|DEBUG)\s+(\S+?):\s+(.*)$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def events(path, who):
    for raw in open(path, errors="replace"):
        match = LINE.match(ANSI.sub("", raw.strip()))
        if not match or not match.group(2).endswith(("latency", "commit")):
            continue
        stamp = datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
        message = match.group(3)
        label = re.split(r"\s\w+=", " " + message, maxsplit=1)[0].strip()
        peer = re.search(r"\b(?:to|from)=(\d+)", message)
        index = re.search(r"\b(?:last_index|index)=(\S+)", message)
        index = index.group(1) if index else None
        yield stamp, f"{who}: {label}" + (f" ({peer.group(1)})" if peer else ""), index


def main():
    leader, followers = sys.argv[1], sys.argv[2:]
    stream = list(events(leader, "leader"))
    for n, path in enumerate(followers, start=2):
        stream.extend(events(path, f"n{n}"))
    stream.sort()
    offsets, order, start, index = {}, [], None, None
    seen = set()
    for stamp, label, event_index in stream:
        if label == "leader: captured":
            start, seen, index = stamp, set(), None
        if label == "leader: log written" and index is None:
            index = event_index
        # Heartbeats, commit-index updates and the previous commit's late steps are not
        # this commit's: keep only events that name this commit's log index.
        if event_index is not None and event_index != index:
            continue
        if start is None or label in seen or (event_index is None and label != "leader: captured" and "commit" not in label):
            continue
        seen.add(label)
        if label not in offsets:
            offsets[label] = []
            order.append(label)
        offsets[label].append((stamp - start) * 1e6)
    commits = len(offsets.get("leader: captured", []))
    print(f"{commits} commits; offset from 'captured' in microseconds")
    rows = []
    for label in order:
        values = sorted(offsets[label])
        if len(values) < commits / 2:
            continue
        rows.append((values[len(values) // 2], values[int(len(values) * 0.9)], len(values), label))
    for p50, p90, count, label in sorted(rows):
        print(f"{p50:9.0f} {p90:9.0f}  {label}  (n={count})")


if __name__ == "__main__":
    main()
