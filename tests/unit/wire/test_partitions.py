import random

import numpy as np
import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from icecube_stream.wire.partitions import murmur2, partitions_for_keys


def test_murmur2_matches_kafkas_reference_values() -> None:
    # Values from the Java client's own test (UtilsTest.testMurmur2), as unsigned 32-bit.
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, signed in cases.items():
        matrix = np.frombuffer(key, dtype=np.uint8).reshape(1, len(key))
        assert int(murmur2(matrix)[0]) == signed & 0xFFFFFFFF, key


@pytest.mark.parametrize("n_partitions", [1, 6, 7, 12])
def test_partitions_are_those_a_single_send_chooses(n_partitions: int) -> None:
    rng = random.Random(n_partitions)
    keys = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 25))) for _ in range(2000)]
    keys += [str(rng.randrange(10**16)).encode() for _ in range(2000)]
    expected = [(aiokafka_murmur2(key) & 0x7FFFFFFF) % n_partitions for key in keys]
    assert partitions_for_keys(keys, n_partitions).tolist() == expected
