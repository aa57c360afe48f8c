"""Where a run's time goes, from the proxy's timeline (tests/harness/aws_proxy.py, ``stats()["timeline"]``).

A run's wall time splits into four phases, each in seconds:

* ``startup``: process start to its first request (Ansible, Python, boto3, the service models);
* ``describe``: first request to the first successful mutating call (what must be read first);
* ``mutating``: first to last successful mutating call (the part the token buckets limit);
* ``tail``: the last request to the process's exit (the module's result, Ansible's end).

``first_mutating_at`` is the first mutating call's time from the process start.
"""


def phases(started, wall, timeline):
    """The phases of a run that started at ``started`` (``time.time()``) and took ``wall`` seconds."""
    if not timeline or timeline.get("started") is None:
        return None
    first, last = timeline["first"], timeline["last"]
    startup = max(0.0, timeline["started"] - started)
    end = last["any"]
    describe = first.get("mutating", end)
    mutating = last["mutating"] - first["mutating"] if "mutating" in first else 0.0
    return {
        "startup": round(startup, 2),
        "describe": round(describe, 2),
        "first_mutating_at": round(startup + first["mutating"], 2) if "mutating" in first else None,
        "mutating": round(mutating, 2),
        "tail": round(max(0.0, wall - startup - end), 2),
    }


def per_second_lines(timeline, every=1):
    """One line per second (or per ``every`` seconds): the requests of that second by action."""
    lines = []
    merged = {}
    for second, counts in timeline.get("per_second", []):
        bucket = merged.setdefault(second // every * every, {})
        for key, number in counts.items():
            bucket[key] = bucket.get(key, 0) + number
    for second in sorted(merged):
        counts = merged[second]
        text = "  ".join(
            "{0} {1}".format(key.split(":", 1)[-1], number)
            for key, number in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        )
        lines.append("{0:>6}s  {1:>4}  {2}".format(second, sum(counts.values()), text))
    return lines
