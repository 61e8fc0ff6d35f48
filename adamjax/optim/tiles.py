"""A quantised optimizer's step, one tile at a time, in place.

Updating a blockwise-quantised moment needs its float32 values block by block
(a new scale is the block's largest magnitude), so a step written over whole
leaves makes XLA hold float32 copies of every moment at once: the stored
state is a quarter of float32 Adam's, but the peak of the step is above it.
:func:`map_tiles` instead runs the update over a bounded number of blocks at a
time (``lax.fori_loop``), so the float32 working set is one tile, and writes
its results back in place: the update into the gradient's buffer, the codes
into the state's. Blocks never straddle tiles (and lowmem rounds each product
of its arithmetic on its own, so XLA's fusion choices cannot change the
bits), so results do not depend on the tile size.

A loop-carried buffer is updated in place only if every read of it happens
before the write. A tile read with ``dynamic_slice`` is fused into each of its
consumers, which XLA:CPU cannot order before the write, so it copies the whole
buffer every iteration; a tile read with a gather is computed once into a
tile-sized buffer, and the write can be in place.
"""

import functools
import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

# (gradient tile, code tiles, old scale tiles, valid, step count) ->
# (update tile, new code tiles, new scale tiles).
TileStep = Callable[
    [jax.Array, tuple[jax.Array, ...], tuple[jax.Array, ...], Optional[int],
     jax.Array],
    tuple[jax.Array, tuple[jax.Array, ...], tuple[jax.Array, ...]]]


def _read(flat: jax.Array, start: jax.Array, size: int,
          in_bounds: bool) -> jax.Array:
  """flat[start:start + size] as a gather, zero past the end."""
  index = start + jnp.arange(size, dtype=jnp.int32)
  mode = 'promise_in_bounds' if in_bounds else 'fill'
  return flat.at[index].get(mode=mode, fill_value=0, indices_are_sorted=True,
                            unique_indices=True)


def _sharded_leaf(grad: jax.Array, block_size: int):
  """(mesh, spec, scales' spec) of an explicitly sharded leaf, else None."""
  sharding = jax.typeof(grad).sharding
  spec = getattr(sharding, 'spec', None)
  if spec is None or all(axis is None for axis in spec):
    return None
  if any(axis is not None for axis in spec[1:]):
    raise ValueError(
        f'a quantised leaf of shape {grad.shape} is sharded as {spec}; its '
        'blocks run along the row-major flattening, so shard it on its first '
        'axis only.')
  shards = math.prod(sharding.mesh.shape[a] for a in
                     (spec[0] if isinstance(spec[0], tuple) else (spec[0],)))
  if grad.size % (shards * block_size):
    raise ValueError(
        f'a quantised leaf of shape {grad.shape} split {shards} ways has '
        f'{grad.size / shards:g} elements per shard, not a multiple of '
        f'block_size={block_size}: its blocks would straddle shards.')
  return sharding.mesh, spec, P(spec[0])


def map_tiles(step: TileStep, grad: jax.Array, codes: tuple[jax.Array, ...],
              scales: tuple[jax.Array, ...], *, block_size: int,
              tile_size: Optional[int], count: jax.Array,
              ) -> tuple[jax.Array, tuple[jax.Array, ...],
                         tuple[jax.Array, ...]]:
  """Runs `step` over a leaf tile by tile; results written in place.

  Args:
    step: the update of one tile: ``step(g, codes, scales, valid, count)``
      with
      ``g`` (t,) in the gradient's dtype, ``codes`` a tuple of (t,) uint8,
      ``scales`` a tuple of (t / block_size,) float32 (the old scales), and
      ``valid`` the number of real elements (None when all t are; the rest
      is padding, which must be zero in the new moments), and ``count`` as
      given here (a step must not close over traced values: under
      ``shard_map`` they would be out of place). It returns the update tile
      (t,) in float32 (converted here into the gradient's dtype), the new
      code tiles and the new scale tiles.
    grad: the gradient leaf; its buffer receives the update (any shape).
    codes: uint8 arrays of grad's shape, updated in place.
    scales: float32 (ceil(grad.size / block_size),) arrays, one per moment.
    block_size: elements per scale.
    tile_size: elements per tile, a multiple of block_size; None processes
      the leaf as one tile.
    count: the step counter, passed on to `step`.

  Returns:
    (update of grad's shape and dtype, new codes, new scales).

  Raises:
    ValueError: if the leaf is explicitly sharded so that a block would span
      two shards (sharded on another axis than the first, or shards that are
      not whole blocks). A leaf sharded on its first axis in whole blocks is
      updated shard by shard on its own devices (``jax.shard_map``).
  """
  sharded = _sharded_leaf(grad, block_size)
  if sharded is not None:
    mesh, spec, blocks_spec = sharded
    local = functools.partial(map_tiles, step, block_size=block_size,
                              tile_size=tile_size)
    return jax.shard_map(
        lambda g, c, s, n: local(g, c, s, count=n), mesh=mesh,
        in_specs=(spec, (spec,) * len(codes), (blocks_spec,) * len(scales),
                  P()),
        out_specs=(spec, (spec,) * len(codes), (blocks_spec,) * len(scales)),
    )(grad, codes, scales, count)
  size = grad.size
  padded = -(-size // block_size) * block_size
  tile = padded if tile_size is None else min(tile_size, padded)
  full, rest = divmod(size, tile)
  # A narrower gradient's buffer travels as raw bits: XLA rewrites a float32
  # update converted into it (DUS(g, convert(u)) -> convert(DUS(convert(g),
  # u))), and a bfloat16 one rounded by hand is not written in place either;
  # either copies the whole buffer per tile. The bitcasts cost one copy of
  # the gradient, so float32 goes as is.
  dtype = grad.dtype
  bits = dtype if dtype == jnp.float32 else jnp.dtype(
      f'uint{8 * dtype.itemsize}')
  as_bits = lambda x: x if bits == dtype else lax.bitcast_convert_type(x, bits)
  from_bits = lambda x: (x if bits == dtype
                         else lax.bitcast_convert_type(x, dtype))
  flat = (as_bits(grad.reshape(-1)),
          tuple(c.reshape(-1) for c in codes),
          tuple(jnp.zeros_like(s) for s in scales))

  def run(carry, first, length, valid, trips):
    """`trips` tiles of `length` elements from element `first` on."""

    def body(i, carry):
      g, cs, new_scales = carry
      start = first + i * length
      in_bounds = valid is None
      u, tile_codes, tile_scales = step(
          from_bits(_read(g, start, length, in_bounds)),
          tuple(_read(c, start, length, in_bounds) for c in cs),
          tuple(lax.dynamic_slice(s, (start // block_size,),
                                  (length // block_size,)) for s in scales),
          valid, count)
      keep = length if valid is None else valid
      return (lax.dynamic_update_slice(
          g, as_bits(u[:keep].astype(dtype)), (start,)),
              tuple(lax.dynamic_update_slice(c, t[:keep], (start,))
                    for c, t in zip(cs, tile_codes)),
              tuple(lax.dynamic_update_slice(s, t, (start // block_size,))
                    for s, t in zip(new_scales, tile_scales)))

    return lax.fori_loop(0, trips, body, carry)

  if full:
    flat = run(flat, 0, tile, None, full)
  if rest:
    flat = run(flat, full * tile, -(-rest // block_size) * block_size,
               None if rest % block_size == 0 else rest, 1)
  g, cs, new_scales = flat
  return (from_bits(g).reshape(grad.shape),
          tuple(c.reshape(grad.shape) for c in cs),
          new_scales)
