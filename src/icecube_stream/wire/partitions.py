"""Which partition a keyed record goes to, as Kafka's clients choose it, for many keys at once.

Kafka's default partitioner takes murmur2 of the key bytes (the Java client's variant, seed
0x9747b28c), drops the sign bit and takes it modulo the partition count. aiokafka computes it in
pure Python per record; here it is vectorised over every key of one length at a time, so the
worker can hand the producer one record batch per partition and keys still land where a
single send would put them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

_SEED = np.uint32(0x9747B28C)
_M = np.uint32(0x5BD1E995)


def murmur2(keys: NDArray[np.uint8]) -> NDArray[np.uint32]:
    """Hashes of equal-length keys, one key per row of a (n, length) byte matrix."""
    n, length = keys.shape
    k32 = keys.astype(np.uint32)
    h = np.full(n, _SEED ^ np.uint32(length), dtype=np.uint32)
    whole = length // 4 * 4
    for i in range(0, whole, 4):
        k = k32[:, i] | k32[:, i + 1] << 8 | k32[:, i + 2] << 16 | k32[:, i + 3] << 24
        k *= _M
        k ^= k >> 24
        k *= _M
        h *= _M
        h ^= k
    extra = length - whole
    if extra >= 3:
        h ^= k32[:, whole + 2] << 16
    if extra >= 2:
        h ^= k32[:, whole + 1] << 8
    if extra >= 1:
        h ^= k32[:, whole]
        h *= _M
    h ^= h >> 13
    h *= _M
    h ^= h >> 15
    return h


def partitions_for_keys(keys: Sequence[bytes], n_partitions: int) -> NDArray[np.int64]:
    """Kafka's default partition of every key (none may be empty)."""
    result = np.empty(len(keys), dtype=np.int64)
    lengths = np.fromiter((len(key) for key in keys), dtype=np.int64, count=len(keys))
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        joined = b"".join(keys[row] for row in rows.tolist())
        matrix = np.frombuffer(joined, dtype=np.uint8).reshape(rows.size, length)
        hashes = murmur2(matrix) & np.uint32(0x7FFFFFFF)
        result[rows] = hashes.astype(np.int64) % n_partitions
    return result
