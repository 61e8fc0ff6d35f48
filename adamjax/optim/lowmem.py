"""Adam in a quarter of the memory: 8-bit moments, compensated bf16 params.

Two independent tools, both plain Optax gradient transformations (pure
``init``/``update`` functions over pytrees, NamedTuple states):

1. **8-bit blockwise moments** (Dettmers et al., "8-bit Optimizers via
   Block-wise Quantization", ICLR 2022, https://arxiv.org/abs/2110.02861).
   :func:`scale_by_adam_8bit`, :func:`adam8bit` and :func:`adamw8bit` store
   each large moment as one byte per element plus one float32 scale (the
   block's absolute maximum) per block of ``block_size`` elements: about
   2.03 bytes per parameter for both moments instead of 8. The first moment
   uses the signed dynamic (non-linear) map, the second the unsigned one.
   Every step dequantises to float32, runs Adam's arithmetic in float32 and
   quantises again. Leaves with fewer than ``min_8bit_size`` elements (biases,
   norms) stay float32, as in bitsandbytes: their state is a rounding error in
   the total and they are the most sensitive to quantisation.

2. **Low-precision parameters that train like float32**:
   :func:`kahan_compensation` keeps, per bf16 (or fp16) parameter, the part of
   each update that rounding to bf16 threw away and adds it back next step
   (Kahan summation); :func:`stochastic_rounding` instead rounds the new
   parameter up or down at random with probabilities that make it unbiased,
   at no memory cost, from a seeded key carried in the state. Either goes last
   in a chain after any optimizer, e.g.
   ``optax.chain(adam8bit(1e-3), kahan_compensation())``.

Why separate functions and not ``adam_optax.scale_by_adam(..., state_bits=8)``:
the 8-bit state has a different structure (codes plus scales, and float32 for
small leaves), so one function would return two unrelated state types behind
a flag; Optax itself gives structurally different states their own
transformations (``scale_by_adam`` / ``scale_by_amsgrad``). Separate names
also keep ``adam_optax`` the plain, Optax-identical reference, and this module
standalone (it imports only jax, numpy and optax).

The quantisation map and rule, precisely (tests/test_adam_lowmem.py checks
them against an independent NumPy implementation):

* Dynamic map (the paper's "dynamic tree"): a value is sign (signed map only),
  then a base-10 exponent written as a run of zeros ended by an indicator bit,
  then linear fraction bits: magnitude ``10**-z * (0.1 + 0.9 * (f + 0.5) /
  2**F)`` with z leading zeros and F = (7 or 8) - 1 - z fraction bits holding
  f. The one redundant pattern (-0 in the signed map; the smallest magnitude,
  ~5.5e-8, in the unsigned one) is replaced by 1.0, as in bitsandbytes, so a
  block's positive absmax is exact (a negative one maps to -0.993).
* Quantise: per block, ``x / absmax`` goes to the nearest map value (the
  decision boundaries are float32 midpoints of neighbouring values; a value
  on a boundary goes down). Exception: in the unsigned (second-moment) map a
  positive value never rounds to 0. A zeroed v with a non-zero m would make
  the update m / eps, i.e. explode; rounding up to the smallest code (3.25e-7
  of the block's maximum) only shrinks such a step.
* Codes are uint8 indices into the sorted 256-value map, stored in the
  parameter's shape (so they shard like it); scales are float32 of shape
  (ceil(size / block_size),), blocks running over the row-major flattening.
"""

import math
import numbers
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adam_optax import check_updates_like
from adam_optax import check_hyperparameters

__all__ = [
    'BlockQuantized',
    'KahanCompensationState',
    'ScaleByAdam8bitState',
    'StochasticRoundingState',
    'adam8bit',
    'adamw8bit',
    'dequantize_blockwise',
    'dynamic_map',
    'kahan_compensation',
    'quantize_blockwise',
    'scale_by_adam_8bit',
    'stochastic_rounding',
]

ScalarOrSchedule = Union[float, jax.Array, optax.Schedule]


# ----------------------------------------------------------------------------
# The quantisation maps.


def dynamic_map(signed: bool) -> np.ndarray:
  """The 256-value dynamic quantisation map of Dettmers et al., sorted.

  Magnitudes come in 7 decades, 10**-6 to 10**0; decade 10**(k-6) holds
  2**k values (signed) or 2**(k+1) values (unsigned) at the centres of equal
  bins of [0.1, 1] times the decade. Add 0 and 1.0, and, for the signed map,
  the negatives of the decade values: 256 values in [-0.993, 1] or [0, 1].

  Args:
    signed: the map for signed values (first moment) or for non-negative
      ones (second moment).

  Returns:
    float32 array of 256 increasing values.
  """
  values = [0.0, 1.0]
  for k in range(7):
    count = 2**k if signed else 2**(k + 1)
    edges = np.linspace(0.1, 1.0, count + 1)
    magnitudes = 10.0**(k - 6) * (edges[:-1] + edges[1:]) / 2
    values.extend(magnitudes)
    if signed:
      values.extend(-magnitudes)
  return np.sort(np.asarray(values, np.float64)).astype(np.float32)


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
  blocks = _to_blocks(x.astype(jnp.float32), block_size)
  absmax = jnp.max(jnp.abs(blocks), axis=1)
  # XLA:CPU's fused max may skip NaN; a NaN moment must stay NaN, not
  # become a number that hides the divergence.
  absmax = jnp.where(jnp.isnan(blocks).any(axis=1), jnp.nan, absmax)
  # An all-zero block keeps scale 0; dividing by 1 instead maps it to code 0.
  normed = blocks / jnp.where(absmax > 0, absmax, 1.0)[:, None]
  codes = _from_blocks(_nearest_code(normed, signed), x.shape)
  return BlockQuantized(codes=codes, absmax=absmax)


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
  values = _lookup(jnp.asarray(qmap), q.codes)
  blocks = _to_blocks(values, block_size) * q.absmax[:, None]
  return _from_blocks(blocks, q.codes.shape)


def _zeros_quantized(shape: tuple[int, ...], signed: bool,
                     block_size: int) -> BlockQuantized:
  """An all-zero array, quantised (the code of 0 and zero scales)."""
  zero = _SIGNED_ZERO if signed else _UNSIGNED_ZERO
  num_blocks = -(-math.prod(shape) // block_size)
  return BlockQuantized(codes=jnp.full(shape, zero, jnp.uint8),
                        absmax=jnp.zeros((num_blocks,), jnp.float32))


# ----------------------------------------------------------------------------
# Argument checks beyond adam_optax.check_hyperparameters.


def _check_positive_int(name: str, value: Any) -> None:
  """Raises ValueError unless `value` is a Python int >= 1."""
  if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
      or value < 1):
    raise ValueError(
        f'{name}={value!r} is invalid: it must be a Python integer >= 1 (it '
        'fixes array shapes; with optax.inject_hyperparams pass '
        "static_args=('block_size', 'min_8bit_size')).")


def _reject_non_float(params: optax.Params) -> None:
  """Raises if a leaf is not a real floating array (e.g. complex, int)."""
  for leaf in jax.tree.leaves(params):
    dtype = jnp.asarray(leaf).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(
          f'adam_lowmem supports real floating parameters only; got a leaf '
          f'of dtype {dtype} and shape {jnp.shape(leaf)}.')


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
) -> optax.GradientTransformation:
  r"""Adam's direction with both moments stored blockwise in 8 bits.

  Each step, per leaf: dequantise :math:`m_{t-1}, v_{t-1}` to float32;
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

  Returns:
    An ``optax.GradientTransformation`` whose state is a
    :class:`ScaleByAdam8bitState`; updates come back in the gradients' dtype.

  Raises:
    ValueError: on b1/b2 outside [0, 1), negative eps/eps_root, or a
      block_size/min_8bit_size that is not a positive integer.
  """
  check_hyperparameters(b1=b1, b2=b2, eps=eps, eps_root=eps_root)
  _check_positive_int('block_size', block_size)
  _check_positive_int('min_8bit_size', min_8bit_size)

  def init_moment(p, signed):
    """A zero moment for leaf `p`: quantised if large, else float32."""
    if jnp.size(p) >= min_8bit_size:
      return _zeros_quantized(jnp.shape(p), signed, block_size)
    return jnp.zeros(jnp.shape(p), jnp.float32)

  def init_fn(params):
    _reject_non_float(params)
    return ScaleByAdam8bitState(
        count=jnp.zeros([], jnp.int32),
        mu=jax.tree.map(lambda p: init_moment(p, True), params),
        nu=jax.tree.map(lambda p: init_moment(p, False), params))

  def load(stored, signed):
    """A stored moment as float32."""
    if isinstance(stored, BlockQuantized):
      return dequantize_blockwise(stored, signed, block_size)
    return stored

  def store(value, like, signed):
    """A float32 moment in the storage format of `like`."""
    if isinstance(like, BlockQuantized):
      return quantize_blockwise(value, signed, block_size)
    return value

  def update_fn(updates, state, params=None):
    del params
    # A BlockQuantized moment stands for one param leaf of its codes' shape.
    check_updates_like(
        updates, state.mu, 'scale_by_adam_8bit',
        is_leaf=lambda x: isinstance(x, BlockQuantized),
        shape=lambda m: (m.codes.shape if isinstance(m, BlockQuantized)
                         else jnp.shape(m)))
    count = optax.safe_increment(state.count)
    # Bias corrections in float32 whatever the gradients' dtype: in bf16,
    # 1 - 0.999**t rounds to 0 for small t.
    bc1 = 1 - jnp.float32(b1)**count.astype(jnp.float32)
    bc2 = 1 - jnp.float32(b2)**count.astype(jnp.float32)

    grads, treedef = jax.tree.flatten(updates)
    mus = treedef.flatten_up_to(state.mu)
    nus = treedef.flatten_up_to(state.nu)
    directions, new_mus, new_nus = [], [], []
    for g, mu, nu in zip(grads, mus, nus):
      g32 = g.astype(jnp.float32)
      m = (1 - b1) * g32 + b1 * load(mu, True)
      v = (1 - b2) * (g32 * g32) + b2 * load(nu, False)
      u = (m / bc1) / (jnp.sqrt(v / bc2 + eps_root) + eps)
      directions.append(u.astype(g.dtype))
      new_mus.append(store(m, mu, True))
      new_nus.append(store(v, nu, False))
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
                         min_8bit_size=min_8bit_size),
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

  Returns:
    An Optax gradient transformation; ``update`` needs ``params``.

  Raises:
    ValueError: on an out-of-range concrete hyperparameter.
  """
  check_hyperparameters(learning_rate=learning_rate, weight_decay=weight_decay)
  return optax.chain(
      scale_by_adam_8bit(b1, b2, eps, eps_root, block_size=block_size,
                         min_8bit_size=min_8bit_size),
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
