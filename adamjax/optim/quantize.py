"""Blockwise quantisation of optimizer moments: the maps, 8-bit and 4-bit codes.

The storage formats behind :mod:`adamjax.optim.lowmem`'s optimizers, as pure
functions (tests/test_lowmem.py checks every one against an independent NumPy
implementation):

* **Dynamic map** (Dettmers et al., ICLR 2022, the "dynamic tree"): a value is
  sign (signed map only), then a base-10 exponent written as a run of zeros
  ended by an indicator bit, then linear fraction bits: magnitude
  ``10**-z * (0.1 + 0.9 * (f + 0.5) / 2**F)`` with z leading zeros and
  F = bits - 1 - z (signed) or bits - z (unsigned) fraction bits holding f.
  The one redundant pattern (-0 in the signed map; the smallest magnitude in
  the unsigned one) is replaced by 1.0, as in bitsandbytes, so a block's
  positive absmax is exact. ``bits=8`` gives the 256-value maps of 8-bit Adam;
  ``bits=4`` the 16-value signed map that Li et al. (NeurIPS 2023) and
  torchao's AdamW4bit use for the first moment:
  0, +-0.0055, +-0.0325, +-0.0775, +-0.2125, +-0.4375, +-0.6625, +-0.8875, 1.
* **Linear maps** for a 4-bit second moment: ``(1, ..., 16) / 16``, without
  zero (Li et al.'s fix of the "zero-point problem": a v quantised to 0 under
  a non-zero m makes the update m / eps), or, as the contrast that fails,
  ``(0, ..., 15) / 15`` with zero.
* **Quantise**: per block of ``block_size`` consecutive elements of the
  row-major flattening, ``x / absmax`` goes to the nearest map value (the
  decision boundaries are float32 midpoints of neighbouring values; a value
  on a boundary goes down). Exception: in the unsigned dynamic map a positive
  value never rounds to 0 (the zero-point problem again; rounding up to the
  smallest code only shrinks such a step).
* **Codes** are indices into the sorted map in the array's own shape (so they
  shard like it): one uint8 per element for 8 bits; for 4 bits, two codes per
  uint8 (:func:`pack_nibbles`). Scales are float32 of shape
  ``(ceil(size / block_size),)``, the last block zero-padded.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    'BlockQuantized',
    'dequantize_4bit',
    'dequantize_blockwise',
    'dynamic_map',
    'linear_map',
    'nearest_code',
    'pack_nibbles',
    'quantize_4bit',
    'quantize_blockwise',
    'scale_blocks',
    'unpack_nibbles',
]

# ----------------------------------------------------------------------------
# The quantisation maps.


def dynamic_map(signed: bool, bits: int = 8) -> np.ndarray:
  """The dynamic quantisation map of Dettmers et al., sorted.

  Magnitudes come in ``bits - 1`` decades ending at 10**0; the k-th decade
  from the smallest (k = 0, 1, ...) holds 2**k values (signed) or 2**(k+1)
  values (unsigned) at the centres of equal bins of [0.1, 1] times the decade.
  Add 0 and 1.0, and, for the signed map, the negatives of the decade values.

  Args:
    signed: the map for signed values (first moment) or for non-negative
      ones (second moment).
    bits: 8 (256 values, 8-bit Adam) or 4 (16 values, 4-bit Adam's first
      moment); any width from 2 up is built the same way.

  Returns:
    float32 array of 2**bits increasing values.
  """
  decades = bits - 1
  values = [0.0, 1.0]
  for k in range(decades):
    count = 2**k if signed else 2**(k + 1)
    edges = np.linspace(0.1, 1.0, count + 1)
    magnitudes = 10.0**(k - decades + 1) * (edges[:-1] + edges[1:]) / 2
    values.extend(magnitudes)
    if signed:
      values.extend(-magnitudes)
  return np.sort(np.asarray(values, np.float64)).astype(np.float32)


def linear_map(zero: bool = False, bits: int = 4) -> np.ndarray:
  """A linear map for non-negative values, with or without zero.

  Args:
    zero: False gives ``(1, ..., n) / n`` (no zero: a positive second moment
      never becomes 0); True gives ``(0, ..., n - 1) / (n - 1)``, plain linear
      quantisation, which Li et al. (2023) show fails for the second moment.
    bits: the code width; n = 2**bits values.

  Returns:
    float32 array of 2**bits increasing values in [0, 1].
  """
  n = 2**bits
  if zero:
    return (np.arange(n, dtype=np.float64) / (n - 1)).astype(np.float32)
  return (np.arange(1, n + 1, dtype=np.float64) / n).astype(np.float32)


def _boundaries(qmap: np.ndarray, signed: bool) -> np.ndarray:
  """Decision boundaries: float32 midpoints between neighbouring map values."""
  mids = ((qmap[1:].astype(np.float64) + qmap[:-1]) / 2).astype(np.float32)
  if not signed:
    # A zeroed v with a non-zero m would make the update m / eps: a positive
    # value must never quantise to 0.
    mids[0] = 0.0
  return mids


_SIGNED_MAP = dynamic_map(signed=True)
_UNSIGNED_MAP = dynamic_map(signed=False)
_SIGNED_BOUNDS = _boundaries(_SIGNED_MAP, signed=True)
_UNSIGNED_BOUNDS = _boundaries(_UNSIGNED_MAP, signed=False)
# The code of 0.0, which a freshly initialised (all-zero) state holds.
_SIGNED_ZERO = int(np.flatnonzero(_SIGNED_MAP == 0)[0])
_UNSIGNED_ZERO = int(np.flatnonzero(_UNSIGNED_MAP == 0)[0])


def _map_and_bounds(signed: bool) -> tuple[np.ndarray, np.ndarray]:
  """The map and its decision boundaries for signed or unsigned values."""
  if signed:
    return _SIGNED_MAP, _SIGNED_BOUNDS
  return _UNSIGNED_MAP, _UNSIGNED_BOUNDS


# ----------------------------------------------------------------------------
# Blockwise quantisation.


class BlockQuantized(NamedTuple):
  """A float32 array stored as 8-bit codes plus one scale per block.

  Attributes:
    codes: uint8 indices into the dynamic map, in the array's own shape.
    absmax: float32 (num_blocks,), each block's largest magnitude; blocks are
      consecutive runs of the row-major flattened array (the last one
      zero-padded).
  """

  codes: jax.Array
  absmax: jax.Array


def _to_blocks(x: jax.Array, block_size: int) -> jax.Array:
  """Flattens `x`, zero-pads it to whole blocks, shapes it (blocks, size)."""
  flat = x.reshape(-1)
  pad = -flat.size % block_size
  return jnp.pad(flat, (0, pad)).reshape(-1, block_size)


def _from_blocks(blocks: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Inverse of _to_blocks: drops the padding and restores `shape`."""
  return blocks.reshape(-1)[:math.prod(shape)].reshape(shape)


def _nearest_code(normed: jax.Array, signed: bool) -> jax.Array:
  """Index of the map value nearest to each of `normed` (in [-1, 1])."""
  # Not a binary search (seven gathers, which XLA:CPU runs as scalar loops):
  # the map's own structure gives a guess within one code of the answer (the
  # decade from six comparisons, then the linear bin inside it), and one
  # comparison with the exact float32 boundary on each side corrects it, so
  # the result is exactly "the number of boundaries strictly below the
  # value" for two gathers.
  _, bounds = _map_and_bounds(signed)
  # Code i holds the values in (table[i], table[i + 1]].
  table = jnp.asarray(np.concatenate(
      [[-np.inf], bounds, [np.inf]]).astype(np.float32))
  extra = 0 if signed else 1  # The unsigned map has twice the codes/decade.
  magnitude = jnp.abs(normed)
  # Decade k (0..6) covers [10**(k-7), 10**(k-6)) and has 2**(k + extra)
  # codes at the centres of equal bins of [0.1, 1] * 10**(k-6); the bin of
  # a value is floor(magnitude * factor - offset).
  decade = jnp.zeros(normed.shape, jnp.int32)
  factor = jnp.full(normed.shape, np.float32(1e6 / 0.9 * 2**extra))
  offset = jnp.full(normed.shape, np.float32(0.1 / 0.9 * 2**extra))
  for k in range(1, 7):
    above = magnitude >= np.float32(10.0**(k - 7))
    decade = jnp.where(above, k, decade)
    factor = jnp.where(above, np.float32(10.0**(6 - k) / 0.9 * 2**(k + extra)),
                       factor)
    offset = jnp.where(above, np.float32(0.1 / 0.9 * 2**(k + extra)), offset)
  count = jnp.left_shift(1, decade + extra)
  in_decade = jnp.clip(jnp.floor(magnitude * factor - offset).astype(
      jnp.int32), 0, count - 1)
  # Rank among the positive codes (the decades before hold count - 1 or
  # count - 2 of them); the signed map mirrors it around the 0 at 127.
  rank = count - (1 + extra) + in_decade
  if signed:
    code = jnp.where(normed >= 0, 128 + rank, 126 - rank)
  else:
    code = 1 + rank
  code = (code + (normed > _lookup(table, code + 1)).astype(jnp.int32)
          - (normed <= _lookup(table, code)).astype(jnp.int32))
  return code.astype(jnp.uint8)


def _lookup(table: jax.Array, index: jax.Array) -> jax.Array:
  """table[index], laid out (sharded) like `index`."""
  # Under a mesh with explicit axes JAX cannot infer a gather's output
  # sharding from an unsharded table and sharded indices.
  return table.at[index].get(out_sharding=jax.typeof(index).sharding)


def quantize_blockwise(x: jax.Array, signed: bool,
                       block_size: int = 256) -> BlockQuantized:
  """Quantises `x` blockwise to 8-bit codes of the dynamic map.

  Args:
    x: a float array of any shape.
    signed: use the signed map (any values) or the unsigned one (x >= 0).
    block_size: elements per block sharing one float32 scale.

  Returns:
    The codes (uint8, x's shape) and each block's absmax (float32). A block
    holding NaN gets a NaN absmax, so the NaN survives dequantisation.
  """
  normed, absmax = _normalise(x, block_size)
  codes = _from_blocks(_nearest_code(normed, signed), x.shape)
  return BlockQuantized(codes=codes, absmax=absmax)


def _normalise(x: jax.Array, block_size: int) -> tuple[jax.Array, jax.Array]:
  """(x / its block's absmax as (blocks, block_size), each block's absmax)."""
  blocks = _to_blocks(x.astype(jnp.float32), block_size)
  absmax = jnp.max(jnp.abs(blocks), axis=1)
  # XLA:CPU's fused max may skip NaN; a NaN moment must stay NaN, not
  # become a number that hides the divergence.
  absmax = jnp.where(jnp.isnan(blocks).any(axis=1), jnp.nan, absmax)
  # An all-zero block keeps scale 0; dividing by 1 instead maps it to code 0.
  return blocks / jnp.where(absmax > 0, absmax, 1.0)[:, None], absmax


def dequantize_blockwise(q: BlockQuantized, signed: bool,
                         block_size: int = 256) -> jax.Array:
  """float32 values of `q`: map[code] times the block's absmax.

  Args:
    q: codes and scales from :func:`quantize_blockwise`.
    signed: which map the codes index (as when quantising).
    block_size: as when quantising.

  Returns:
    float32 array of q.codes' shape.
  """
  qmap, _ = _map_and_bounds(signed)
  return scale_blocks(_lookup(jnp.asarray(qmap), q.codes), q.absmax,
                      block_size)


def scale_blocks(values: jax.Array, absmax: jax.Array,
                 block_size: int) -> jax.Array:
  """Map values times their blocks' scales: the dequantised array.

  Args:
    values: float32 map values, in the array's shape.
    absmax: float32 (num_blocks,), each block's scale.
    block_size: elements per block of the row-major flattening.

  Returns:
    float32 array of values' shape.
  """
  blocks = _to_blocks(values, block_size) * absmax[:, None]
  return _from_blocks(blocks, values.shape)


def zeros_8bit(shape: tuple[int, ...], signed: bool,
               block_size: int) -> BlockQuantized:
  """An all-zero array, quantised (the code of 0 and zero scales)."""
  zero = _SIGNED_ZERO if signed else _UNSIGNED_ZERO
  num_blocks = -(-math.prod(shape) // block_size)
  return BlockQuantized(codes=jnp.full(shape, zero, jnp.uint8),
                        absmax=jnp.zeros((num_blocks,), jnp.float32))



# ----------------------------------------------------------------------------
# 4-bit codes.


def nearest_code(normed: jax.Array, qmap: np.ndarray) -> jax.Array:
  """Index of the value of a small sorted map nearest to each of `normed`.

  The number of decision boundaries (float32 midpoints of neighbouring map
  values) strictly below each value, so a value on a boundary goes down. One
  comparison per boundary: for a 16-value map, 15 comparisons that vectorise,
  where a table lookup (a gather) would not.

  Args:
    normed: float32 values, normally in [-1, 1].
    qmap: the sorted map, e.g. :func:`dynamic_map` (True, 4) or
      :func:`linear_map`.

  Returns:
    uint8 codes of normed's shape (NaN goes to code 0; its block's NaN scale
    keeps it NaN).
  """
  mids = ((qmap[1:].astype(np.float64) + qmap[:-1]) / 2).astype(np.float32)
  code = jnp.zeros(normed.shape, jnp.uint8)
  for boundary in mids:
    code = code + (normed > boundary).astype(jnp.uint8)
  return code


def quantize_4bit(x: jax.Array, qmap: np.ndarray,
                  block_size: int = 128) -> BlockQuantized:
  """Quantises `x` blockwise to 4-bit codes (one per uint8, unpacked).

  Args:
    x: a float array of any shape.
    qmap: a sorted 16-value map (:func:`dynamic_map` (True, 4) for signed
      values, :func:`linear_map` for non-negative ones).
    block_size: elements per block sharing one float32 scale (128 in Li et
      al. and torchao).

  Returns:
    Codes in 0..15 (uint8, x's shape) and each block's absmax (float32; NaN
    for a block holding NaN).
  """
  normed, absmax = _normalise(x, block_size)
  codes = _from_blocks(nearest_code(normed, qmap), x.shape)
  return BlockQuantized(codes=codes, absmax=absmax)


def dequantize_4bit(q: BlockQuantized, qmap: np.ndarray,
                    block_size: int = 128) -> jax.Array:
  """float32 values of 4-bit `q`: qmap[code] times the block's absmax.

  Args:
    q: unpacked codes and scales from :func:`quantize_4bit`.
    qmap: the map they index.
    block_size: as when quantising.

  Returns:
    float32 array of q.codes' shape.
  """
  return scale_blocks(_lookup(jnp.asarray(qmap), q.codes), q.absmax,
                      block_size)


def pack_nibbles(high: jax.Array, low: jax.Array) -> jax.Array:
  """Two arrays of 4-bit codes (uint8 in 0..15) as one uint8 array."""
  return jnp.left_shift(high, 4) | low


def unpack_nibbles(packed: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Inverse of :func:`pack_nibbles`: (high codes, low codes)."""
  return jnp.right_shift(packed, 4), packed & jnp.uint8(15)


def pair_table(high_map: np.ndarray, low_map: np.ndarray) -> np.ndarray:
  """(256, 2) float32: row c is (high_map[c >> 4], low_map[c & 15])."""
  codes = np.arange(256)
  return np.stack([high_map[codes >> 4], low_map[codes & 15]], axis=1)
