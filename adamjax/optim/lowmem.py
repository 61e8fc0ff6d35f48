"""Adam in a quarter or an eighth of the memory, and bf16 params that train.

Plain Optax gradient transformations (pure ``init``/``update`` functions over
pytrees, NamedTuple states):

1. **8-bit blockwise moments** (Dettmers et al., "8-bit Optimizers via
   Block-wise Quantization", ICLR 2022, https://arxiv.org/abs/2110.02861).
   :func:`scale_by_adam_8bit`, :func:`adam8bit` and :func:`adamw8bit` store
   each large moment as one byte per element plus one float32 scale per
   block of ``block_size`` elements: about 2.03 bytes per parameter for both
   moments instead of 8. The first moment uses the signed dynamic map, the
   second the unsigned one.
2. **4-bit moments** (Li et al., "Memory Efficient Optimizers with 4-bit
   States", NeurIPS 2023; torchao's AdamW4bit). :func:`scale_by_adam_4bit`,
   :func:`adam4bit` and :func:`adamw4bit` keep both moments' 4-bit codes in
   one byte per element plus two float32 scales per block of 128: about 1.06
   bytes per parameter. The first moment uses the 4-bit signed dynamic map,
   the second a linear map without zero.

   Both step a leaf tile by tile (:mod:`adamjax.optim.tiles`): dequantise,
   run Adam's arithmetic in float32, quantise again, a bounded number of
   blocks at a time, so the step's float32 working set is one tile, not the
   model. Leaves with fewer than ``min_size`` elements (biases, norms) keep
   float32 moments, as in bitsandbytes and torchao: their state is a rounding
   error in the total and they are the most sensitive to quantisation.

3. **Low-precision parameters that train like float32**:
   :func:`kahan_compensation` keeps, per bf16 (or fp16) parameter, the part of
   each update that rounding to bf16 threw away and adds it back next step
   (Kahan summation); :func:`stochastic_rounding` instead rounds the new
   parameter up or down at random with probabilities that make it unbiased,
   at no memory cost, from a seeded key carried in the state. Either goes last
   in a chain after any optimizer, e.g.
   ``optax.chain(adam8bit(1e-3), kahan_compensation())``.

Why separate functions and not ``adam_optax.scale_by_adam(..., state_bits=8)``:
the quantised states have different structures (codes plus scales, and
float32 for small leaves), so one function would return unrelated state types
behind a flag; Optax itself gives structurally different states their own
transformations (``scale_by_adam`` / ``scale_by_amsgrad``). Separate names
also keep ``adam_optax`` the plain, Optax-identical reference. The maps and
the quantisation rule are in :mod:`adamjax.optim.quantize`.
"""

import functools
import numbers
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adam_optax import check_updates_like
from adam_optax import check_hyperparameters
from adamjax.optim import quantize
from adamjax.optim import tiles
# The 8-bit format's names, kept importable from here.
from adamjax.optim.quantize import BlockQuantized
from adamjax.optim.quantize import dequantize_blockwise
from adamjax.optim.quantize import dynamic_map
from adamjax.optim.quantize import quantize_blockwise

__all__ = [
    'BlockQuantized',
    'Float32Moments',
    'KahanCompensationState',
    'Packed4bit',
    'ScaleByAdam4bitState',
    'ScaleByAdam8bitState',
    'StochasticRoundingState',
    'adam4bit',
    'adam8bit',
    'adamw4bit',
    'adamw8bit',
    'dequantize_blockwise',
    'dynamic_map',
    'kahan_compensation',
    'quantize_blockwise',
    'scale_by_adam_4bit',
    'scale_by_adam_8bit',
    'stochastic_rounding',
]

ScalarOrSchedule = Union[float, jax.Array, optax.Schedule]


# ----------------------------------------------------------------------------
# Argument checks beyond adam_optax.check_hyperparameters.


def _check_sizes(**sizes: Any) -> None:
  """Raises ValueError unless each size is a Python int >= 1 (tile_size may
  be None, else a multiple of block_size)."""
  for name, value in sizes.items():
    if value is None and name == 'tile_size':
      continue
    if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
        or value < 1):
      raise ValueError(
          f'{name}={value!r} is invalid: it must be a Python integer >= 1 '
          '(it fixes array shapes; with optax.inject_hyperparams pass '
          f'static_args={tuple(sizes)}).')
  tile, block = sizes.get('tile_size'), sizes['block_size']
  if tile is not None and tile % block:
    raise ValueError(f'tile_size={tile!r} is invalid: it must be a multiple '
                     f'of block_size={block!r} (or None).')


def _reject_non_float(params: optax.Params) -> None:
  """Raises if a leaf is not a real floating array (e.g. complex, int)."""
  for leaf in jax.tree.leaves(params):
    dtype = jnp.asarray(leaf).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(
          f'adam_lowmem supports real floating parameters only; got a leaf '
          f'of dtype {dtype} and shape {jnp.shape(leaf)}.')


# ----------------------------------------------------------------------------
# What the quantised Adams share.

# Elements per tile. The step's temporaries are a few float32 copies of a
# tile, and XLA may keep two leaves' tiles at once: at 4,096 they stay under
# 0.25 bytes per parameter from 1M parameters up (benchmarks/adam_memory.py);
# larger tiles only save loop overhead.
DEFAULT_TILE_SIZE = 2**12


def _adam_arithmetic(b1: float, b2: float, eps: float, eps_root: float,
                     count: jax.Array, g: jax.Array, m: jax.Array,
                     v: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(direction in g's dtype, float32 m_t, v_t) from m_{t-1}, v_{t-1}."""
  # Bias corrections in float32 whatever the gradients' dtype: in bf16,
  # 1 - 0.999**t rounds to 0 for small t.
  bc1 = 1 - jnp.float32(b1)**count.astype(jnp.float32)
  bc2 = 1 - jnp.float32(b2)**count.astype(jnp.float32)
  # XLA:CPU contracts a * b + c * d into a fused multiply-add on one product
  # or the other depending on what else shares the fusion, so the same code
  # in a loop and outside it differed in the last bit. Rounding each product
  # on its own (through an integer XOR with a zero XLA cannot see) makes the
  # moments plain IEEE float32 arithmetic, the same bits in every context.
  zero = jnp.minimum(count, 0).astype(jnp.uint32)
  rounded = lambda x: jax.lax.bitcast_convert_type(
      jax.lax.bitcast_convert_type(x, jnp.uint32) ^ zero, jnp.float32)
  g32 = g.astype(jnp.float32)
  m = rounded((1 - b1) * g32) + rounded(b1 * m)
  v = rounded((1 - b2) * (g32 * g32)) + rounded(b2 * v)
  u = (m / bc1) / (jnp.sqrt(v / bc2 + eps_root) + eps)
  return u.astype(g.dtype), m, v


def _zero_padding(x: jax.Array, valid: Optional[int]) -> jax.Array:
  """`x` with the elements from index `valid` on set to 0 (None: all kept)."""
  if valid is None:
    return x
  return jnp.where(jnp.arange(x.size) < valid, x, 0.0)


# ----------------------------------------------------------------------------
# Adam with 8-bit moments.


class ScaleByAdam8bitState(NamedTuple):
  """State of :func:`scale_by_adam_8bit`.

  Attributes:
    count: int32 scalar, the number of updates so far (saturating).
    mu: first moment, a pytree like the params whose leaves are
      :class:`BlockQuantized` (signed map) or, for leaves with fewer than
      min_8bit_size elements, float32 arrays.
    nu: second moment, likewise (unsigned map).
  """

  count: jax.Array
  mu: Any
  nu: Any


def scale_by_adam_8bit(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    block_size: int = 256,
    min_8bit_size: int = 4096,
    tile_size: Optional[int] = DEFAULT_TILE_SIZE,
) -> optax.GradientTransformation:
  r"""Adam's direction with both moments stored blockwise in 8 bits.

  Each step, per leaf and tile by tile: dequantise
  :math:`m_{t-1}, v_{t-1}` to float32;
  :math:`m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t`,
  :math:`v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2`;
  output :math:`\hat m_t / (\sqrt{\hat v_t + \bar\varepsilon} + \varepsilon)`
  from these float32 moments (bias-corrected in float32); store
  :math:`m_t, v_t` quantised. So one step equals a float32 Adam step started
  from the dequantised state; the only error is the re-quantisation of the
  stored moments.

  Args:
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    block_size: elements per block sharing one float32 scale (bitsandbytes
      uses 256: smaller blocks isolate outliers better, larger ones store
      fewer scales).
    min_8bit_size: leaves with fewer elements keep float32 moments.
    tile_size: elements updated at a time, a multiple of block_size; the
      step's float32 working memory is a few tiles. None updates a leaf at
      once. Results are the same bits for every tile size.

  Returns:
    An ``optax.GradientTransformation`` whose state is a
    :class:`ScaleByAdam8bitState`; updates come back in the gradients' dtype.
    The update of a quantised leaf is written into its gradient's buffer, so
    inside a jitted step that buffer is reused, not copied.

  Raises:
    ValueError: on b1/b2 outside [0, 1), negative eps/eps_root, or a
      block_size/min_8bit_size/tile_size that is not a positive integer
      (tile_size a multiple of block_size).
  """
  check_hyperparameters(b1=b1, b2=b2, eps=eps, eps_root=eps_root)
  _check_sizes(block_size=block_size, min_8bit_size=min_8bit_size,
               tile_size=tile_size)

  def init_moment(p, signed):
    """A zero moment for leaf `p`: quantised if large, else float32."""
    if jnp.size(p) >= min_8bit_size:
      return quantize.zeros_8bit(jnp.shape(p), signed, block_size)
    return jnp.zeros(jnp.shape(p), jnp.float32)

  def init_fn(params):
    _reject_non_float(params)
    return ScaleByAdam8bitState(
        count=jnp.zeros([], jnp.int32),
        mu=jax.tree.map(lambda p: init_moment(p, True), params),
        nu=jax.tree.map(lambda p: init_moment(p, False), params))

  def update_fn(updates, state, params=None):
    del params
    # A BlockQuantized moment stands for one param leaf of its codes' shape.
    check_updates_like(
        updates, state.mu, 'scale_by_adam_8bit',
        is_leaf=lambda x: isinstance(x, BlockQuantized),
        shape=lambda m: (m.codes.shape if isinstance(m, BlockQuantized)
                         else jnp.shape(m)))
    count = optax.safe_increment(state.count)
    adam = functools.partial(_adam_arithmetic, b1, b2, eps, eps_root)

    def tile_step(g, codes, scales, valid, count):
      """One tile: dequantise, Adam in float32, quantise."""
      (mu_codes, nu_codes), (mu_absmax, nu_absmax) = codes, scales
      # The update stays float32: map_tiles writes it in g's dtype.
      u, m, v = adam(count, g.astype(jnp.float32), dequantize_blockwise(
          BlockQuantized(mu_codes, mu_absmax), True, block_size),
                     dequantize_blockwise(
                         BlockQuantized(nu_codes, nu_absmax), False,
                         block_size))
      m, v = _zero_padding(m, valid), _zero_padding(v, valid)
      qm = quantize_blockwise(m, True, block_size)
      qv = quantize_blockwise(v, False, block_size)
      return u, (qm.codes, qv.codes), (qm.absmax, qv.absmax)

    grads, treedef = jax.tree.flatten(updates)
    directions, new_mus, new_nus = [], [], []
    for g, mu, nu in zip(grads, treedef.flatten_up_to(state.mu),
                         treedef.flatten_up_to(state.nu)):
      if isinstance(mu, BlockQuantized):
        u, (mc, vc), (ma, va) = tiles.map_tiles(
            tile_step, g, (mu.codes, nu.codes), (mu.absmax, nu.absmax),
            block_size=block_size, tile_size=tile_size, count=count)
        mu, nu = BlockQuantized(mc, ma), BlockQuantized(vc, va)
      else:
        u, mu, nu = adam(count, g, mu, nu)
      directions.append(u)
      new_mus.append(mu)
      new_nus.append(nu)
    return (treedef.unflatten(directions),
            ScaleByAdam8bitState(count, treedef.unflatten(new_mus),
                                 treedef.unflatten(new_nus)))

  return optax.GradientTransformation(init_fn, update_fn)


def adam8bit(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    block_size: int = 256,
    min_8bit_size: int = 4096,
    tile_size: Optional[int] = DEFAULT_TILE_SIZE,
) -> optax.GradientTransformationExtraArgs:
  """Adam with 8-bit blockwise moments (see :func:`scale_by_adam_8bit`).

  Args:
    learning_rate: a float >= 0 or a schedule (step -> learning rate).
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    block_size: elements per block sharing one float32 scale.
    min_8bit_size: leaves with fewer elements keep float32 moments.
    tile_size: elements updated at a time (None: a leaf at once).

  Returns:
    An Optax gradient transformation; apply its updates with
    ``optax.apply_updates``.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter.

  Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> from adamjax.optim import lowmem
    >>> tx = lowmem.adam8bit(learning_rate=0.1)
    >>> params = jnp.linspace(-1.0, 1.0, 10_000)
    >>> state = tx.init(params)
    >>> adam_state = state[0]  # the chain's first part: scale_by_adam_8bit
    >>> adam_state.mu.codes.dtype, adam_state.mu.absmax.shape
    (dtype('uint8'), (40,))
  """
  check_hyperparameters(learning_rate=learning_rate)
  return optax.chain(
      scale_by_adam_8bit(b1, b2, eps, eps_root, block_size=block_size,
                         min_8bit_size=min_8bit_size, tile_size=tile_size),
      optax.scale_by_learning_rate(learning_rate))


def adamw8bit(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    *,
    block_size: int = 256,
    min_8bit_size: int = 4096,
    tile_size: Optional[int] = DEFAULT_TILE_SIZE,
) -> optax.GradientTransformationExtraArgs:
  """AdamW (decoupled weight decay, as ``optax.adamw``) with 8-bit moments.

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    weight_decay: a float >= 0 or a schedule, multiplied by the learning rate.
    mask: a pytree of bools like the params (or a callable returning one);
      weight decay applies where True. None decays every leaf.
    block_size: elements per block sharing one float32 scale.
    min_8bit_size: leaves with fewer elements keep float32 moments.
    tile_size: elements updated at a time (None: a leaf at once).

  Returns:
    An Optax gradient transformation; ``update`` needs ``params``.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter.
  """
  check_hyperparameters(learning_rate=learning_rate, weight_decay=weight_decay)
  return optax.chain(
      scale_by_adam_8bit(b1, b2, eps, eps_root, block_size=block_size,
                         min_8bit_size=min_8bit_size, tile_size=tile_size),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate))


# ----------------------------------------------------------------------------
# Adam with 4-bit moments.

# The first moment's map (Li et al. 2023; torchao's AdamW4bit): the 4-bit
# signed dynamic map. The second moment's: linear, and without zero, or (the
# contrast Li et al. show failing) with it.
_MU_MAP_4BIT = quantize.dynamic_map(signed=True, bits=4)
_NU_MAPS_4BIT = {'linear': quantize.linear_map(zero=False),
                 'linear_with_zero': quantize.linear_map(zero=True)}


class Packed4bit(NamedTuple):
  """Both Adam moments of one leaf, 4 bits each.

  Attributes:
    codes: uint8 in the leaf's shape: the first moment's code (an index into
      the 4-bit signed dynamic map) in the high 4 bits, the second moment's
      (into its linear map) in the low 4.
    mu_absmax: float32 (num_blocks,), the first moment's block scales.
    nu_absmax: float32 (num_blocks,), the second moment's.
  """

  codes: jax.Array
  mu_absmax: jax.Array
  nu_absmax: jax.Array


class Float32Moments(NamedTuple):
  """Both Adam moments of a leaf too small to quantise, in float32."""

  mu: jax.Array
  nu: jax.Array


class ScaleByAdam4bitState(NamedTuple):
  """State of :func:`scale_by_adam_4bit`.

  Attributes:
    count: int32 scalar, the number of updates so far (saturating).
    moments: a pytree like the params whose leaves are :class:`Packed4bit`
      or, for leaves with fewer than min_4bit_size elements,
      :class:`Float32Moments`.
  """

  count: jax.Array
  moments: Any


def scale_by_adam_4bit(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    block_size: int = 128,
    min_4bit_size: int = 4096,
    tile_size: Optional[int] = DEFAULT_TILE_SIZE,
    nu_map: str = 'linear',
) -> optax.GradientTransformation:
  r"""Adam's direction with both moments stored blockwise in 4 bits.

  Li et al., "Memory Efficient Optimizers with 4-bit States" (NeurIPS 2023),
  as torchao's AdamW4bit: blocks of 128, the first moment on the 4-bit
  signed dynamic map, the second on a linear map without zero (a second
  moment quantised to 0 under a non-zero first moment would make the step
  m / eps). Each step, per leaf and tile by tile, exactly as
  :func:`scale_by_adam_8bit`: dequantise, Adam's arithmetic in float32,
  quantise. Both codes of an element share one byte, so the state is about
  1.06 bytes per parameter (8-bit: 2.03; float32: 8).

  Args:
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    block_size: elements per block sharing one float32 scale per moment.
    min_4bit_size: leaves with fewer elements keep float32 moments.
    tile_size: elements updated at a time, a multiple of block_size; None
      updates a leaf at once. Results are the same bits for every tile size.
    nu_map: the second moment's map: 'linear' ((1..16) / 16, no zero), or
      'linear_with_zero' ((0..15) / 15), plain linear quantisation, kept as
      the contrast that fails (Li et al., Table 1).

  Returns:
    An ``optax.GradientTransformation`` whose state is a
    :class:`ScaleByAdam4bitState`; updates come back in the gradients' dtype
    (a quantised leaf's written into its gradient's buffer).

  Raises:
    ValueError: on b1/b2 outside [0, 1), negative eps/eps_root, sizes that
      are not positive integers (tile_size a multiple of block_size), or an
      unknown nu_map.
  """
  check_hyperparameters(b1=b1, b2=b2, eps=eps, eps_root=eps_root)
  _check_sizes(block_size=block_size, min_4bit_size=min_4bit_size,
               tile_size=tile_size)
  if nu_map not in _NU_MAPS_4BIT:
    raise ValueError(f'nu_map={nu_map!r} is invalid; accepted: '
                     f'{", ".join(map(repr, _NU_MAPS_4BIT))}.')
  pairs = quantize.pair_table(_MU_MAP_4BIT, _NU_MAPS_4BIT[nu_map])
  # Codes of 0 in each map (the linear map has none: its smallest value,
  # under a zero scale, is 0 as well).
  zero_code = quantize.pack_nibbles(
      np.uint8(np.flatnonzero(_MU_MAP_4BIT == 0)[0]), np.uint8(0))
  adam = functools.partial(_adam_arithmetic, b1, b2, eps, eps_root)

  def init_leaf(p):
    """Zero moments for leaf `p`: packed 4-bit if large, else float32."""
    shape = jnp.shape(p)
    if jnp.size(p) >= min_4bit_size:
      blocks = -(-jnp.size(p) // block_size)
      return Packed4bit(codes=jnp.full(shape, zero_code, jnp.uint8),
                        mu_absmax=jnp.zeros((blocks,), jnp.float32),
                        nu_absmax=jnp.zeros((blocks,), jnp.float32))
    return Float32Moments(jnp.zeros(shape, jnp.float32),
                          jnp.zeros(shape, jnp.float32))

  def init_fn(params):
    _reject_non_float(params)
    return ScaleByAdam4bitState(count=jnp.zeros([], jnp.int32),
                                moments=jax.tree.map(init_leaf, params))

  def tile_step(g, codes, scales, valid, count):
    """One tile: one lookup for both moments, Adam in float32, quantise."""
    (packed,), (mu_absmax, nu_absmax) = codes, scales
    values = jnp.asarray(pairs)[packed]
    u, m, v = adam(count, g.astype(jnp.float32),
                   quantize.scale_blocks(values[:, 0], mu_absmax, block_size),
                   quantize.scale_blocks(values[:, 1], nu_absmax, block_size))
    m, v = _zero_padding(m, valid), _zero_padding(v, valid)
    qm = quantize.quantize_4bit(m, _MU_MAP_4BIT, block_size)
    qv = quantize.quantize_4bit(v, _NU_MAPS_4BIT[nu_map], block_size)
    return (u, (quantize.pack_nibbles(qm.codes, qv.codes),),
            (qm.absmax, qv.absmax))

  is_moments = lambda x: isinstance(x, (Packed4bit, Float32Moments))

  def update_fn(updates, state, params=None):
    del params
    check_updates_like(
        updates, state.moments, 'scale_by_adam_4bit', is_leaf=is_moments,
        shape=lambda m: (m.codes.shape if isinstance(m, Packed4bit)
                         else m.mu.shape))
    count = optax.safe_increment(state.count)
    grads, treedef = jax.tree.flatten(updates)
    directions, moments = [], []
    for g, leaf in zip(grads, treedef.flatten_up_to(state.moments)):
      if isinstance(leaf, Packed4bit):
        u, (codes,), (mu_absmax, nu_absmax) = tiles.map_tiles(
            tile_step, g, (leaf.codes,), (leaf.mu_absmax, leaf.nu_absmax),
            block_size=block_size, tile_size=tile_size, count=count)
        leaf = Packed4bit(codes, mu_absmax, nu_absmax)
      else:
        u, mu, nu = adam(count, g, leaf.mu, leaf.nu)
        leaf = Float32Moments(mu, nu)
      directions.append(u)
      moments.append(leaf)
    return (treedef.unflatten(directions),
            ScaleByAdam4bitState(count, treedef.unflatten(moments)))

  return optax.GradientTransformation(init_fn, update_fn)


def adam4bit(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    block_size: int = 128,
    min_4bit_size: int = 4096,
    tile_size: Optional[int] = DEFAULT_TILE_SIZE,
) -> optax.GradientTransformationExtraArgs:
  """Adam with 4-bit blockwise moments (see :func:`scale_by_adam_4bit`).

  Args:
    learning_rate: a float >= 0 or a schedule (step -> learning rate).
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    block_size: elements per block sharing one float32 scale per moment.
    min_4bit_size: leaves with fewer elements keep float32 moments.
    tile_size: elements updated at a time (None: a leaf at once).

  Returns:
    An Optax gradient transformation; apply its updates with
    ``optax.apply_updates``.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter.

  Example:
    >>> import jax.numpy as jnp
    >>> from adamjax.optim import lowmem
    >>> tx = lowmem.adam4bit(learning_rate=0.1)
    >>> state = tx.init(jnp.linspace(-1.0, 1.0, 10_000))
    >>> moments = state[0].moments  # the chain's first part
    >>> moments.codes.dtype, moments.codes.shape, moments.mu_absmax.shape
    (dtype('uint8'), (10000,), (79,))
  """
  check_hyperparameters(learning_rate=learning_rate)
  return optax.chain(
      scale_by_adam_4bit(b1, b2, eps, eps_root, block_size=block_size,
                         min_4bit_size=min_4bit_size, tile_size=tile_size),
      optax.scale_by_learning_rate(learning_rate))


def adamw4bit(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    *,
    block_size: int = 128,
    min_4bit_size: int = 4096,
    tile_size: Optional[int] = DEFAULT_TILE_SIZE,
) -> optax.GradientTransformationExtraArgs:
  """AdamW (decoupled weight decay, as ``optax.adamw``) with 4-bit moments.

  Args:
    learning_rate: a float >= 0 or a schedule.
    b1: decay rate of the first moment, in [0, 1).
    b2: decay rate of the second moment, in [0, 1).
    eps: added to the denominator outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    weight_decay: a float >= 0 or a schedule, multiplied by the learning rate.
    mask: a pytree of bools like the params (or a callable returning one);
      weight decay applies where True. None decays every leaf.
    block_size: elements per block sharing one float32 scale per moment.
    min_4bit_size: leaves with fewer elements keep float32 moments.
    tile_size: elements updated at a time (None: a leaf at once).

  Returns:
    An Optax gradient transformation; ``update`` needs ``params``.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter.
  """
  check_hyperparameters(learning_rate=learning_rate, weight_decay=weight_decay)
  return optax.chain(
      scale_by_adam_4bit(b1, b2, eps, eps_root, block_size=block_size,
                         min_4bit_size=min_4bit_size, tile_size=tile_size),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate))


# ----------------------------------------------------------------------------
# Low-precision parameters: Kahan compensation and stochastic rounding.
#
# Both compute the new parameter themselves and return the exact difference
# new - old in float32. optax.apply_updates adds a float32 update to a bf16
# parameter in float32 (exact: both are bf16 values within 2**16 of each
# other in magnitude) and casts back, landing exactly on the chosen bf16
# value. So they must come last in a chain, right before apply_updates.


def _is_low_precision(p: jax.Array) -> bool:
  """Whether leaf `p` is a float narrower than 32 bits (bf16, fp16)."""
  dtype = jnp.asarray(p).dtype
  return jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize < 4


class KahanCompensationState(NamedTuple):
  """State of :func:`kahan_compensation`.

  Attributes:
    compensation: per low-precision parameter leaf, what rounding the
      parameter has lost so far and not yet added back; ``optax.MaskedNode()``
      for float32 (or wider) leaves, which need none.
  """

  compensation: Any


def kahan_compensation(
    dtype: Optional[Any] = None) -> optax.GradientTransformation:
  """Kahan-compensated updates for bf16/fp16 parameters; the last transform.

  With a bf16 parameter, an update smaller than half its spacing (2**-8
  relative) is rounded away entirely: plain bf16 training stalls once steps
  get small. Here each step computes, in float32,
  ``y = update + c``, ``new = bf16(p + y)``, ``c = y - (new - p)``: what was
  rounded off is carried to the next step, so the parameter follows the
  float32 trajectory to within about one bf16 spacing instead of drifting.

  Args:
    dtype: storage dtype of the compensation buffer; None uses each
      parameter's own dtype (as torchdistx's AnyPrecisionAdamW and optimi do:
      the buffer only holds sub-spacing residues, so bf16 keeps ~16 bits of
      the parameter in total). 'float32' is more exact and costs 2 bytes more
      per parameter.

  Returns:
    An ``optax.GradientTransformation`` that needs ``params`` in ``update``
    and returns float32 updates for low-precision leaves (others pass
    through). Put it last in the chain; apply with ``optax.apply_updates``.

  Raises:
    ValueError: if dtype is not a floating dtype.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from adamjax.optim import lowmem
    >>> tx = optax.chain(optax.sgd(1e-4), lowmem.kahan_compensation())
    >>> params = jnp.ones(3, jnp.bfloat16)
    >>> state = tx.init(params)
    >>> for _ in range(100):  # each step is 1e-4, below bf16's 2**-8 spacing
    ...   grads = -jnp.ones(3, jnp.bfloat16)
    ...   updates, state = tx.update(grads, state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> print(params.astype(jnp.float32))  # plain bf16 would still be at 1
    [1.0078125 1.0078125 1.0078125]
  """
  if dtype is not None:
    name = dtype
    try:
      dtype = jnp.dtype(dtype)
    except TypeError as e:
      raise ValueError(f'dtype={dtype!r} is not a dtype; accepted: None or a '
                       "floating dtype such as 'bfloat16' or 'float32'.") from e
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(f'dtype={name!r} is not a floating dtype; accepted: '
                       "None or e.g. 'bfloat16' or 'float32'.")

  def init_fn(params):
    _reject_non_float(params)
    return KahanCompensationState(compensation=jax.tree.map(
        lambda p: (jnp.zeros(jnp.shape(p), dtype or jnp.asarray(p).dtype)
                   if _is_low_precision(p) else optax.MaskedNode()),
        params))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError('kahan_compensation needs params: call '
                       'update(updates, state, params).')

    def leaf(u, c, p):
      """(float32 update landing on the compensated value, new residue)."""
      if isinstance(c, optax.MaskedNode):
        return u, c
      p32 = p.astype(jnp.float32)
      y = u.astype(jnp.float32) + c.astype(jnp.float32)
      new = (p32 + y).astype(p.dtype).astype(jnp.float32)
      step = new - p32
      return step, (y - step).astype(c.dtype)

    flat_u, treedef = jax.tree.flatten(updates)
    flat_c = treedef.flatten_up_to(state.compensation)
    flat_p = treedef.flatten_up_to(params)
    out = [leaf(u, c, p) for u, c, p in zip(flat_u, flat_c, flat_p)]
    return (treedef.unflatten([o[0] for o in out]),
            KahanCompensationState(treedef.unflatten([o[1] for o in out])))

  return optax.GradientTransformation(init_fn, update_fn)


class StochasticRoundingState(NamedTuple):
  """State of :func:`stochastic_rounding`.

  Attributes:
    key: uint32 PRNG key data (jax.random.key_data), split every step; raw
      data rather than a typed key so any checkpointer can store it.
  """

  key: jax.Array


def _round_stochastically(x: jax.Array, key: jax.Array) -> jax.Array:
  """Rounds float32 `x` to bf16 up or down, unbiased (E[result] = x)."""
  # bf16 is float32 with the low 16 bits cut off: adding 16 uniform random
  # bits before cutting carries into the kept bits with probability
  # (cut-off part) / 2**16.
  bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
  noise = jax.random.bits(key, x.shape, jnp.uint32) >> 16
  rounded = jax.lax.bitcast_convert_type(
      (bits + noise) & jnp.uint32(0xFFFF0000), jnp.float32)
  # Non-finite values round to nearest: the carry could turn the largest NaN
  # pattern into -0.
  return jnp.where(jnp.isfinite(x), rounded, x).astype(jnp.bfloat16)


def stochastic_rounding(seed: int = 0) -> optax.GradientTransformation:
  """Stochastically rounded updates for bf16 parameters; the last transform.

  The new parameter ``p + update`` (computed in float32) is rounded to one
  of its two neighbouring bf16 values with probabilities that make it
  unbiased, so updates far below bf16's spacing still move the parameter in
  expectation. It costs no memory per parameter (only the key), but each
  step adds noise of up to one bf16 spacing, where
  :func:`kahan_compensation` carries the exact residue instead.

  Args:
    seed: seed of the random stream (the same seed, the same trajectory).

  Returns:
    An ``optax.GradientTransformation`` that needs ``params`` in ``update``
    and returns float32 updates for bf16 leaves (float32 or wider leaves pass
    through). Put it last in the chain; apply with ``optax.apply_updates``.

  Raises:
    ValueError: if seed is not an integer, or (at init) if a leaf is float16,
      whose rounding this does not implement.
  """
  if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
    raise ValueError(f'seed={seed!r} is invalid: it must be an integer.')

  def init_fn(params):
    _reject_non_float(params)
    for p in jax.tree.leaves(params):
      if _is_low_precision(p) and jnp.asarray(p).dtype != jnp.bfloat16:
        raise ValueError(
            f'stochastic_rounding supports bfloat16 (and float32 or wider, '
            f'left unchanged) parameters; got a leaf of dtype '
            f'{jnp.asarray(p).dtype}. Use kahan_compensation for float16.')
    return StochasticRoundingState(
        key=jax.random.key_data(jax.random.key(seed)))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError('stochastic_rounding needs params: call '
                       'update(updates, state, params).')
    key, step_key = jax.random.split(jax.random.wrap_key_data(state.key))
    flat_u, treedef = jax.tree.flatten(updates)
    flat_p = treedef.flatten_up_to(params)
    keys = jax.random.split(step_key, max(len(flat_u), 1))
    out = []
    for u, p, k in zip(flat_u, flat_p, keys):
      if not _is_low_precision(p):
        out.append(u)
        continue
      p32 = p.astype(jnp.float32)
      new = _round_stochastically(p32 + u.astype(jnp.float32), k)
      out.append(new.astype(jnp.float32) - p32)
    return (treedef.unflatten(out),
            StochasticRoundingState(jax.random.key_data(key)))

  return optax.GradientTransformation(init_fn, update_fn)
