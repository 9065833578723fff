"""The scheduling of a running process's threads, as the kernel reports it."""
import os
from pathlib import Path


def thread_scheduling(pid: int) -> list[tuple[int, int]]:
    """(policy, real-time priority) of each thread of process `pid`, from
    /proc/<pid>/task/*/stat (fields 41 and 40; the name before them, in
    parentheses, may hold spaces)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:             # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()      # fields[0] is field 3
        found.append((int(fields[41 - 3]), int(fields[40 - 3])))
    return found


def real_time_threads(pid: int) -> list[int]:
    """The SCHED_FIFO priorities of process `pid`'s threads."""
    return sorted(priority for policy, priority in thread_scheduling(pid) if policy == os.SCHED_FIFO)
