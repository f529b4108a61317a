"""A hypothesis state machine drives two channels through every operation that does not wait
(send/recv nowait, blocking ones with timeout=0, select over both channels, close) and checks
each outcome — the item, WouldBlock, TimeoutError, ChannelClosed and its operation — and the
counters against a reference model: a deque and a closed flag per channel."""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import offload

CAPACITIES = st.sampled_from([0, 1, 3, None])
CHANNEL = st.integers(0, 1)
HOW = st.sampled_from(["nowait", "timeout=0"])


class Model:
    """What a channel must contain, when only non-waiting operations are used: no party ever
    waits, so a send happens iff there is room, a receive iff something is buffered."""

    def __init__(self, capacity: Optional[int]) -> None:
        self.capacity = capacity
        self.items: Deque[Any] = deque()
        self.closed = False
        self.sent = 0
        self.received = 0

    def has_room(self) -> bool:
        return self.capacity is None or len(self.items) < self.capacity

    def send(self, item: Any) -> None:
        self.items.append(item)
        self.sent += 1

    def recv(self) -> Any:
        self.received += 1
        return self.items.popleft()


class ChannelMachine(RuleBasedStateMachine):
    @initialize(capacities=st.tuples(CAPACITIES, CAPACITIES))
    def make_channels(self, capacities: Tuple[Optional[int], Optional[int]]) -> None:
        self.channels = [offload.Channel(c) for c in capacities]
        self.models = [Model(c) for c in capacities]
        self.counter = 0

    def fresh_item(self) -> Tuple[str, int]:
        """A new object each time: received items are checked by identity."""
        self.counter += 1
        return ("item", self.counter)

    @staticmethod
    def would_block(how: str) -> type:
        return offload.WouldBlock if how == "nowait" else TimeoutError

    # -- rules ----------------------------------------------------------------------------------

    @rule(index=CHANNEL, how=HOW)
    def send(self, index: int, how: str) -> None:
        ch, model = self.channels[index], self.models[index]
        item = self.fresh_item()

        def attempt() -> None:
            if how == "nowait":
                ch.send_nowait(item)
            else:
                ch.send_blocking(item, timeout=0)

        if model.closed:
            with pytest.raises(offload.ChannelClosed):
                attempt()
        elif model.has_room():
            attempt()
            model.send(item)
        else:
            with pytest.raises(self.would_block(how)):
                attempt()

    @rule(index=CHANNEL, how=HOW)
    def recv(self, index: int, how: str) -> None:
        ch, model = self.channels[index], self.models[index]

        def attempt() -> Any:
            if how == "nowait":
                return ch.recv_nowait()
            return ch.recv_blocking(timeout=0)

        if model.items:
            expected = model.recv()
            assert attempt() is expected
        elif model.closed:
            with pytest.raises(offload.ChannelClosed):
                attempt()
        else:
            with pytest.raises(self.would_block(how)):
                attempt()

    @rule(index=CHANNEL)
    def close(self, index: int) -> None:
        self.channels[index].close()
        self.models[index].closed = True

    @rule(
        spec=st.lists(st.tuples(CHANNEL, st.booleans()), min_size=1, max_size=4),
        how=HOW,
    )
    def select(self, spec: List[Tuple[int, bool]], how: str) -> None:
        """Operations (channel, is_send) in order: the first that can happen does, a closed
        channel's operation counts as ready and raises ChannelClosed naming it."""
        ops = []
        items = []
        for index, is_send in spec:
            item = self.fresh_item() if is_send else None
            items.append(item)
            ch = self.channels[index]
            ops.append(ch.send_op(item) if is_send else ch.recv_op())

        def attempt() -> offload.Selected:
            if how == "nowait":
                return offload.select_nowait(*ops)
            return offload.select_blocking(*ops, timeout=0)

        for k, (index, is_send) in enumerate(spec):
            model = self.models[index]
            if is_send and model.closed or not is_send and model.closed and not model.items:
                with pytest.raises(offload.ChannelClosed) as info:
                    attempt()
                assert info.value.op is ops[k]
                return
            if is_send and model.has_room():
                model.send(items[k])
                assert attempt() == (ops[k], None)
                return
            if not is_send and model.items:
                expected = model.recv()
                selected = attempt()
                assert selected.op is ops[k] and selected.value is expected
                return
        with pytest.raises(self.would_block(how)):
            attempt()

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def counters_match_the_model(self) -> None:
        for ch, model in zip(self.channels, self.models):
            assert len(ch) == len(model.items)
            assert ch.closed == model.closed
            assert ch.stats() == offload.ChannelStats(
                capacity=model.capacity,
                buffered=len(model.items),
                waiting_senders=0,
                waiting_receivers=0,
                sent=model.sent,
                received=model.received,
                closed=model.closed,
            )


ChannelMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestChannelAgainstAModel = ChannelMachine.TestCase
