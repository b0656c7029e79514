"""Wall time per pipeline stage, for benchmarks: `stage("unet")` is a no-op unless a `Profile` is active.

    with Profile(cuda_sync=True) as prof:
        lipsync(...)
    prof.seconds  # {"decode": 1.2, "detect": 0.8, "unet": 30.1, ...}

Times are exclusive: a stage entered inside another pauses the outer one, so the stages of one
thread never add up to more than that thread's wall time (what is left is glue). Each thread keeps
its own stack. `seconds` counts every thread; `main_seconds` only the thread that entered the
Profile: stages that ran in other threads (`background`, e.g. prefetched decoding) overlap the main
thread's work, so only `main_seconds` is bounded by the run's wall time.
On CUDA, kernels are asynchronous: with `cuda_sync` each stage boundary synchronises the device so
GPU work is charged to the stage that queued it (this costs a little overlap; off, GPU time lands
on whichever stage next waits for the device).
"""
from __future__ import annotations

import functools
import threading
import time
from collections import defaultdict
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

_active: "Profile | None" = None


class Profile:
    """Collects stage times while active (`with Profile() as p:`); one may be active at a time."""

    def __init__(self, cuda_sync: bool = False):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.main_seconds: dict[str, float] = defaultdict(float)
        self.background: set[str] = set()  # stages seen outside the main thread
        self._main = threading.get_ident()
        self._sync = _cuda_synchronizer() if cuda_sync else None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._previous: Profile | None = None

    def __enter__(self) -> "Profile":
        global _active
        self._previous, _active = _active, self
        self._main = threading.get_ident()
        return self

    def __exit__(self, *exc) -> None:
        global _active
        _active = self._previous

    def total(self) -> float:
        return sum(self.seconds.values())

    # ------------------------------------------------------------------ stack of the calling thread
    def _stack(self) -> list:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _charge(self, name: str, seconds: float) -> None:
        main = threading.get_ident() == self._main
        with self._lock:
            self.seconds[name] += seconds
            if main:
                self.main_seconds[name] += seconds
            else:
                self.background.add(name)

    def enter(self, name: str) -> None:
        if self._sync is not None:
            self._sync()
        now = time.perf_counter()
        stack = self._stack()
        if stack:  # pause the enclosing stage
            outer = stack[-1]
            self._charge(outer[0], now - outer[1])
        stack.append([name, now])
        with self._lock:
            self.calls[name] += 1

    def exit(self) -> None:
        if self._sync is not None:
            self._sync()
        now = time.perf_counter()
        stack = self._stack()
        name, started = stack.pop()
        self._charge(name, now - started)
        if stack:  # resume the enclosing stage
            stack[-1][1] = now


def _cuda_synchronizer() -> Callable[[], None] | None:
    import torch

    return torch.cuda.synchronize if torch.cuda.is_available() else None


class stage:  # noqa: N801 - reads as a keyword at the call sites
    """`with stage("unet"):` or `@stage("unet")`: charge the enclosed wall time to a stage name."""

    __slots__ = ("name", "_profile")

    def __init__(self, name: str):
        self.name = name
        self._profile: Profile | None = None

    def __enter__(self) -> "stage":
        self._profile = _active
        if self._profile is not None:
            self._profile.enter(self.name)
        return self

    def __exit__(self, *exc) -> None:
        if self._profile is not None:
            self._profile.exit()
            self._profile = None

    def __call__(self, func: Callable[..., T]) -> Callable[..., T]:
        name = self.name

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            profile = _active
            if profile is None:
                return func(*args, **kwargs)
            profile.enter(name)
            try:
                return func(*args, **kwargs)
            finally:
                profile.exit()

        return wrapper


def timed_iter(name: str, items: Iterable[T]) -> Iterator[T]:
    """Yield from `items`, charging the time spent producing each item (not consuming it) to `name`."""
    iterator = iter(items)
    while True:
        profile = _active
        if profile is not None:
            profile.enter(name)
        try:
            item = next(iterator)
        except StopIteration:
            return
        finally:
            if profile is not None:
                profile.exit()
        yield item
