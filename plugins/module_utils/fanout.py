# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Bounded concurrent fan-out, spread round-robin over regions so every region's rate limits drain at once."""

import itertools
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

# Calls queued per worker: enough to keep every worker busy, few enough that 100,000 items are never
# 100,000 futures (a Future with its lock and condition is about a kilobyte) at once.
QUEUED_PER_WORKER = 4


def by_region(item):
    return item["region"]


def interleave(items, key):
    """Items reordered round-robin over ``key`` groups: a, b, c, a, b, c, ..."""
    groups = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    queues = list(groups.values())
    ordered = []
    for index in range(max((len(queue) for queue in queues), default=0)):
        ordered.extend(queue[index] for queue in queues if index < len(queue))
    return ordered


def run_concurrently(func, items, max_workers, spread_by=None):
    """Call ``func(item)`` for each item on at most ``max_workers`` threads.

    Returns ``[(item, value, error)]``: an exception in one call is returned as its ``error``
    and never stops the others.  With ``spread_by`` (e.g. ``by_region``) the work is taken
    round-robin over its groups, so that every region's API rate limits are used at once
    instead of one region's after another; otherwise in the order of ``items``.
    """
    items = interleave(items, spread_by) if spread_by else list(items)
    if not items:
        return []

    def guarded(item):
        try:
            return item, func(item), None
        except Exception as exc:  # pylint: disable=broad-except
            return item, None, exc

    workers = max(1, min(max_workers, len(items)))
    results, queued = [], deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for item in items:
            queued.append(pool.submit(guarded, item))
            if len(queued) >= workers * QUEUED_PER_WORKER:
                results.append(queued.popleft().result())
        while queued:
            results.append(queued.popleft().result())
    return results


def run_as_produced(produce, groups, func, max_workers):
    """Call ``func(item)`` for every item that ``produce(group)`` yields, while the groups are still
    being produced: ``produce`` is a generator of lists of items, run for every group at once (at
    most ``max_workers`` groups at a time), and ``max_workers`` threads take the items as they come,
    round-robin over the groups, so the first call goes out before any group is fully produced.

    Returns ``(outcomes, failed)``: ``[(item, value, error)]`` in the order of ``groups`` and of each
    group's items, as ``run_concurrently`` returns them, and ``[(group, error)]`` for each group whose
    producer raised; what it had yielded before is still carried out.
    """
    groups = list(groups)
    ready = threading.Condition()
    queues = {group: deque() for group in groups}
    producing = set(groups)
    rotation = itertools.cycle(groups)
    done = {group: [] for group in groups}
    failed = {}

    def run_producer(group):
        count = 0
        try:
            for items in produce(group):
                with ready:
                    queues[group].extend(enumerate(items, count))
                    ready.notify_all()
                count += len(items)
        except Exception as exc:  # pylint: disable=broad-except
            failed[group] = exc
        finally:
            with ready:
                producing.discard(group)
                ready.notify_all()

    def next_item():
        with ready:
            while True:
                for _group in groups:
                    group = next(rotation)
                    if queues[group]:
                        return group, queues[group].popleft()
                if not producing:
                    return None
                ready.wait()

    def run_worker():
        taken = next_item()
        while taken:
            group, (index, item) = taken
            try:
                outcome = (item, func(item), None)
            except Exception as exc:  # pylint: disable=broad-except
                outcome = (item, None, exc)
            done[group].append((index, outcome))
            taken = next_item()

    if not groups:
        return [], []
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(groups)))) as producers:
        with ThreadPoolExecutor(max_workers=max(1, max_workers)) as workers:
            for group in groups:
                producers.submit(run_producer, group)
            for _worker in range(max(1, max_workers)):
                workers.submit(run_worker)
    outcomes = [outcome for group in groups for _index, outcome in sorted(done[group], key=lambda pair: pair[0])]
    return outcomes, [(group, failed[group]) for group in groups if group in failed]


def batches_doubling(items, largest):
    """``items`` in consecutive batches of 1, 2, 4, ... items, none larger than ``largest``."""
    batches, start, size = [], 0, 1
    while start < len(items):
        batches.append(items[start : start + size])
        start += size
        size = min(size * 2, largest)
    return batches
