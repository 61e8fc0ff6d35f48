"""Tests for adam_lowmem: 8-bit blockwise Adam, Kahan and stochastic rounding.

The quantisation is checked against an independent NumPy implementation (the
map built from the paper's bit patterns, the nearest value found by brute
force in float64), one 8-bit step against optax.scale_by_adam started from
the dequantised state, and the compensated bf16 updates against a float32
trajectory.
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adam_optax
from adamjax.optim import lowmem
from adamjax import models


# ----------------------------------------------------------------------------
# An independent NumPy reference of the quantisation.


def reference_map(signed):
  """The dynamic map built from its bit patterns (Dettmers et al. 2022).

  Byte layout: [sign bit (signed map only)] [z zeros] [indicator 1] [F
  fraction bits f]; value = sign * 10**-z * (0.1 + 0.9 * (f + 0.5) / 2**F).
  The one redundant pattern (-0 when signed; the single z = 7 value when
  unsigned) becomes 1.0.
  """
  nbits = 7 if signed else 8
  values = []
  for byte in range(256):
    sign, rest = (-1.0 if byte >> 7 else 1.0, byte & 0x7F) if signed else (
        1.0, byte)
    if rest == 0:
      values.append(1.0 if sign < 0 else 0.0)  # -0 is the redundant one.
      continue
    zeros = nbits - rest.bit_length()
    frac_bits = nbits - 1 - zeros
    if frac_bits == 0 and not signed:
      values.append(1.0)  # 10**-7 * 0.55 is the redundant one.
      continue
    f = rest & ((1 << frac_bits) - 1)
    values.append(sign * 10.0**-zeros * (0.1 + 0.9 * (f + 0.5) / 2**frac_bits))
  return np.sort(np.array(values)).astype(np.float32)


def flush_subnormals(x):
  """Subnormal float32 values as 0, as XLA computes on CPU and GPU."""
  return np.where(np.abs(x) < np.finfo(np.float32).tiny, np.float32(0), x)


def reference_quantize(x, signed, block_size):
  """(codes, absmax, dequantised) by brute-force nearest value in float64."""
  return reference_blockwise(x, reference_map(signed), block_size,
                             never_zero=not signed)


def reference_blockwise(x, qmap, block_size, never_zero=False):
  """(codes, absmax, dequantised) of x on `qmap` by brute force in float64;
  with never_zero, positive values keep a positive code."""
  flat = flush_subnormals(np.asarray(x, np.float32).reshape(-1))
  n = flat.size
  blocks = np.pad(flat, (0, -n % block_size)).reshape(-1, block_size)
  absmax = np.abs(blocks).max(axis=1)
  normed = flush_subnormals(
      blocks / np.where(absmax > 0, absmax, np.float32(1))[:, None])
  dist = np.abs(normed[..., None].astype(np.float64) - qmap.astype(np.float64))
  codes = dist.argmin(axis=-1)  # Ties go to the first, i.e. the lower value.
  if never_zero:  # A positive second moment never becomes 0.
    codes = np.where((normed > 0) & (codes == 0), 1, codes)
  values = qmap[codes] * absmax[:, None]
  unblock = lambda b: b.reshape(-1)[:n].reshape(np.shape(x))
  return unblock(codes).astype(np.uint8), absmax, unblock(values)


def awkward_values(rng, shape, signed):
  """Values over 12 decades, with an all-zero block and a negative absmax."""
  x = rng.standard_normal(shape) * 10.0**rng.uniform(-9, 3, shape)
  flat = x.reshape(-1)
  flat[:256] = 0.0  # One whole zero block (block_size 256).
  flat[256:512] *= 1e-30  # Tiny, all below the map's resolution...
  flat[300] = 1e-3  # ...but one.
  flat[600] = -1e6  # The absmax of its block is negative.
  return (flat if signed else np.abs(flat)).reshape(shape).astype(np.float32)


# ----------------------------------------------------------------------------
# The map and the round trip.


@pytest.mark.parametrize('signed', [True, False])
def test_map_equals_bit_pattern_construction(signed):
  """The module's decade-loop map is the paper's bit-pattern map."""
  ours = lowmem.dynamic_map(signed)
  np.testing.assert_array_equal(ours, reference_map(signed))
  assert ours.dtype == np.float32 and ours.shape == (256,)
  assert np.all(np.diff(ours) > 0)
  assert ours[-1] == 1.0 and (ours[0] == 0.0) != signed


@pytest.mark.parametrize('signed', [True, False])
@pytest.mark.parametrize('shape,block_size', [((100, 130), 256), ((7, 3, 211), 64),
                                              ((4096,), 256), ((1000,), 1000)])
def test_round_trip_matches_numpy_reference(signed, shape, block_size):
  """Codes, scales and dequantised values equal the NumPy reference's."""
  x = awkward_values(np.random.default_rng(len(shape) + block_size), shape,
                     signed)
  q = jax.jit(lowmem.quantize_blockwise, static_argnums=(1, 2))(
      x, signed, block_size)
  values = lowmem.dequantize_blockwise(q, signed, block_size)
  codes, absmax, ref_values = reference_quantize(x, signed, block_size)
  assert q.codes.dtype == jnp.uint8 and q.codes.shape == shape
  assert q.absmax.dtype == jnp.float32
  assert q.absmax.shape == (-(-x.size // block_size),)
  np.testing.assert_array_equal(q.absmax, absmax)
  np.testing.assert_array_equal(q.codes, codes)
  np.testing.assert_array_equal(values, ref_values)


@pytest.mark.parametrize('signed', [True, False])
def test_values_on_and_beside_every_boundary(signed):
  """At, just above and just below each decision boundary (float32
  midpoints of the reference map), each map value and each decade edge, the
  code is the number of boundaries strictly below the value."""
  qmap = reference_map(signed).astype(np.float64)
  mids = ((qmap[1:] + qmap[:-1]) / 2).astype(np.float32)
  if not signed:
    mids[0] = 0.0  # Positive values never round to 0.
  edges = np.float32(10.0)**np.arange(-7, 1, dtype=np.float32)
  points = np.concatenate([mids, qmap.astype(np.float32), edges])
  points = np.concatenate([points, np.nextafter(points, np.float32(np.inf)),
                           np.nextafter(points, np.float32(-np.inf))])
  points = points[(points >= (-1 if signed else 0)) & (points <= 1)]
  if signed:
    points = np.concatenate([points, -points])
  x = np.concatenate([[1.0], points]).astype(np.float32)  # absmax = 1.
  q = lowmem.quantize_blockwise(jnp.asarray(x), signed, block_size=x.size)
  want = np.searchsorted(mids, flush_subnormals(x), side='left')
  np.testing.assert_array_equal(q.codes, want)


def test_round_trip_error_is_bounded_by_the_map_spacing():
  """Large values in a block come back to within ~0.7% of the block max."""
  x = np.random.default_rng(0).standard_normal(65536).astype(np.float32)
  q = lowmem.quantize_blockwise(jnp.asarray(x), True)
  err = np.abs(np.asarray(lowmem.dequantize_blockwise(q, True)) - x)
  blockmax = np.repeat(np.asarray(q.absmax), 256)
  # The widest gap of the top decade is 0.9/64 (the map's resolution there).
  assert np.max(err / blockmax) <= 0.9 / 128 + 1e-6
  # The block's positive absmax is exact (1.0 is in the map).
  top = x.reshape(-1, 256).max(axis=1) == np.abs(x).reshape(-1, 256).max(1)
  got = np.asarray(lowmem.dequantize_blockwise(q, True)).reshape(-1, 256)
  np.testing.assert_array_equal(got.max(axis=1)[top],
                                np.asarray(q.absmax)[top])


def test_positive_second_moment_never_quantises_to_zero():
  """A v far below its block's max keeps the smallest positive code."""
  v = jnp.asarray([1.0] + [1e-12] * 255, jnp.float32)
  q = lowmem.quantize_blockwise(v, signed=False)
  back = lowmem.dequantize_blockwise(q, signed=False)
  assert np.all(np.asarray(back) > 0)
  np.testing.assert_allclose(back[1:], 3.25e-7, rtol=1e-6)


def test_nan_survives_quantisation():
  """A NaN moment comes back as NaN (its block's scale), not as a number."""
  x = jnp.ones(512).at[3].set(jnp.nan)
  back = lowmem.dequantize_blockwise(lowmem.quantize_blockwise(
      x, True), True)
  assert np.all(np.isnan(back[:256])) and np.all(np.isfinite(back[256:]))


# ----------------------------------------------------------------------------
# The 8-bit Adam step.


def make_params(rng=0):
  """A pytree with leaves above and below min_8bit_size (4096)."""
  k = jax.random.split(jax.random.key(rng), 4)
  return {'dense': {'w': jax.random.normal(k[0], (300, 70)),
                    'b': jax.random.normal(k[1], (70,))},
          'conv': jax.random.normal(k[2], (5, 5, 16, 32)),
          'scale': jax.random.normal(k[3], ())}


def random_grads(params, step):
  """Gradients of widely different scales per leaf, fixed by `step`."""
  keys = jax.random.split(jax.random.key(1000 + step), len(jax.tree.leaves(
      params)))
  leaves, treedef = jax.tree.flatten(params)
  scales = [10.0**(i - 2) for i in range(len(leaves))]
  return treedef.unflatten([s * jax.random.normal(k, x.shape)
                            for x, k, s in zip(leaves, keys, scales)])


def test_state_layout_large_leaves_8bit_small_float32():
  """Leaves >= min_8bit_size get uint8 codes + scales; the rest float32."""
  state = lowmem.scale_by_adam_8bit().init(make_params())
  assert isinstance(state.mu['dense']['w'], lowmem.BlockQuantized)
  assert isinstance(state.nu['conv'], lowmem.BlockQuantized)
  assert state.mu['conv'].codes.shape == (5, 5, 16, 32)
  assert state.mu['conv'].absmax.shape == (5 * 5 * 16 * 32 // 256,)
  assert state.nu['dense']['w'].absmax.shape == (83,)  # ceil(21000 / 256)
  for small in (state.mu['dense']['b'], state.nu['scale']):
    assert small.dtype == jnp.float32
  # Zero initial moments dequantise to exactly zero.
  for q in (state.mu['conv'], state.nu['conv']):
    assert not np.any(lowmem.dequantize_blockwise(
        q, q is state.mu['conv']))


def dequantized(tree, signed):
  """A moment tree with every BlockQuantized leaf as float32."""
  return jax.tree.map(
      lambda m: (lowmem.dequantize_blockwise(m, signed)
                 if isinstance(m, lowmem.BlockQuantized) else m),
      tree, is_leaf=lambda m: isinstance(m, lowmem.BlockQuantized))


def reference_moments(g, m, v, b1, b2):
  """Adam's new moments in NumPy float32, each product rounded (no FMA)."""
  g, m, v = (np.asarray(x, np.float32) for x in (g, m, v))
  f = np.float32
  return (flush_subnormals(f(1 - b1) * g) + flush_subnormals(f(b1) * m),
          flush_subnormals(f(1 - b2) * (g * g)) + flush_subnormals(f(b2) * v))


def test_one_8bit_step_equals_float32_adam_from_the_dequantised_state():
  """Update = optax.scale_by_adam's from the dequantised moments; the new
  state is exactly the NumPy float32 moments, quantised (same codes, same
  scales; float32 leaves equal)."""
  params = make_params()
  tx = lowmem.scale_by_adam_8bit(b1=0.8, b2=0.99, eps=1e-6)
  update = jax.jit(tx.update)
  state = tx.init(params)
  for step in range(5):  # A non-trivial quantised state first.
    _, state = update(random_grads(params, step), state)
  grads = random_grads(params, 5)
  updates, new_state = update(grads, state)

  ref_tx = optax.scale_by_adam(b1=0.8, b2=0.99, eps=1e-6)
  ref_state = optax.ScaleByAdamState(count=state.count,
                                     mu=dequantized(state.mu, True),
                                     nu=dequantized(state.nu, False))
  ref_updates, _ = jax.jit(ref_tx.update)(grads, ref_state)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-6,
                                                       atol=1e-7),
               updates, ref_updates)
  assert int(new_state.count) == 6
  is_q = lambda x: isinstance(x, lowmem.BlockQuantized)
  for ours_m, ours_v, g, m, v in zip(
      jax.tree.leaves(new_state.mu, is_leaf=is_q),
      jax.tree.leaves(new_state.nu, is_leaf=is_q), jax.tree.leaves(grads),
      jax.tree.leaves(ref_state.mu), jax.tree.leaves(ref_state.nu)):
    m_ref, v_ref = reference_moments(g, m, v, 0.8, 0.99)
    for ours, ref, signed in ((ours_m, m_ref, True), (ours_v, v_ref, False)):
      if is_q(ours):  # The quantiser itself is checked against NumPy above.
        want = lowmem.quantize_blockwise(jnp.asarray(ref), signed)
        np.testing.assert_array_equal(ours.absmax, want.absmax)
        np.testing.assert_array_equal(ours.codes, want.codes)
      else:
        np.testing.assert_array_equal(ours, ref)


def test_8bit_adam_trains_like_float32_adam():
  """On least squares, 8-bit Adam's loss curve tracks float32 Adam's."""
  k1, k2 = jax.random.split(jax.random.key(3))
  a = jax.random.normal(k1, (256, 64 * 128)) / 90
  target = jax.random.normal(k2, (256,))
  loss = lambda p: jnp.mean((a @ p['w'].reshape(-1) - target) ** 2)

  def run(tx):
    """Final loss after 300 jitted steps."""
    params = {'w': jnp.zeros((64, 128))}

    @jax.jit
    def step(params, state):
      """One step."""
      updates, state = tx.update(jax.grad(loss)(params), state, params)
      return optax.apply_updates(params, updates), state

    state = tx.init(params)
    for _ in range(300):
      params, state = step(params, state)
    return float(loss(params))

  start = float(loss({'w': jnp.zeros((64, 128))}))
  f32, q8 = run(optax.adam(1e-3)), run(lowmem.adam8bit(1e-3))
  assert f32 < start / 20
  assert q8 < start / 20 and abs(q8 - f32) < 0.1 * f32


def test_nan_gradient_reaches_the_update():
  """A NaN gradient gives a NaN update (so training stops), not a number."""
  params = {'w': jnp.ones((64, 64))}
  tx = lowmem.adam8bit(1e-3)
  updates, state = tx.update({'w': jnp.ones((64, 64)).at[0, 0].set(jnp.nan)},
                             tx.init(params))
  assert np.isnan(updates['w'][0, 0]) and np.isfinite(updates['w'][1:]).all()
  assert np.isnan(state[0].mu['w'].absmax[0])


def test_adamw8bit_decays_only_where_masked():
  """AdamW decay, lr-scaled, on masked leaves; Adam direction otherwise."""
  params = {'w': jnp.full((64, 64), 2.0), 'b': jnp.full((8,), 2.0)}
  grads = jax.tree.map(jnp.zeros_like, params)
  tx = lowmem.adamw8bit(0.1, weight_decay=0.5,
                             mask={'w': True, 'b': False})
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates['w'], -0.1 * 0.5 * 2.0, rtol=1e-6)
  np.testing.assert_array_equal(updates['b'], 0.0)


def test_bf16_gradients_give_bf16_updates_and_float32_arithmetic():
  """bf16 gradients: bf16 updates, moments computed and stored as float32."""
  params = {'w': jnp.ones((64, 64), jnp.bfloat16), 'b': jnp.ones(4,
                                                                jnp.bfloat16)}
  tx = lowmem.scale_by_adam_8bit()
  grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)
  updates, state = tx.update(grads, tx.init(params))
  assert updates['w'].dtype == jnp.bfloat16
  assert state.nu['b'].dtype == jnp.float32
  np.testing.assert_allclose(updates['w'].astype(jnp.float32), 1.0, rtol=1e-2)


# ----------------------------------------------------------------------------
# Transformations: jit, vmap, scan, checkpointing, sharding, composition.


def test_jit_compiles_once_and_scan_keeps_the_state():
  """Many jitted steps: one compilation; lax.scan carries the state."""
  params = make_params()
  tx = lowmem.adam8bit(1e-3)
  traces = []

  def step(state, g):
    """One update."""
    traces.append(1)
    updates, state = tx.update(g, state, params)
    return state, updates

  jitted = jax.jit(step)
  state = tx.init(params)
  for i in range(4):
    state, _ = jitted(state, random_grads(params, i))
  assert len(traces) == 1
  grads = jax.tree.map(lambda *g: jnp.stack(g),
                       *[random_grads(params, i) for i in range(4)])
  scanned, _ = jax.lax.scan(step, tx.init(params), grads)
  assert jax.tree.structure(scanned) == jax.tree.structure(state)
  for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(state)):
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.dtype == jnp.uint8:  # XLA may round a boundary value differently.
      assert np.mean(np.asarray(a) == np.asarray(b)) > 0.999
    else:
      np.testing.assert_allclose(a, b, rtol=1e-5)


def test_vmap_equals_separate_runs():
  """vmap over 3 independent problems gives each problem's own result."""
  tx = lowmem.adam8bit(1e-2)
  params = jnp.stack([jnp.full((4096,), float(i)) for i in range(3)])
  grads = jax.random.normal(jax.random.key(0), (3, 4096))
  batched, _ = jax.vmap(lambda p, g: tx.update(g, tx.init(p)))(params, grads)
  for i in range(3):
    single, _ = tx.update(grads[i], tx.init(params[i]))
    np.testing.assert_array_equal(batched[i], single)


def test_orbax_checkpoint_round_trip(tmp_path):
  """Orbax saves and restores the state exactly, uint8 codes included."""
  ocp = pytest.importorskip('orbax.checkpoint')
  params = make_params()
  tx = optax.chain(lowmem.adam8bit(1e-3), lowmem.kahan_compensation())
  params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
  state = tx.init(params)
  _, state = tx.update(random_grads(params, 0), state, params)
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(tmp_path / 'state', state)
    ckpt.wait_until_finished()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    restored = ckpt.restore(tmp_path / 'state', abstract)
  assert jax.tree.structure(restored) == jax.tree.structure(state)
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


def test_sharded_step_equals_unsharded():
  """On 4 (host) devices, params and codes sharded on the first axis: the
  jitted step gives the single-device result and keeps the sharding."""
  script = textwrap.dedent("""
      import jax, jax.numpy as jnp, numpy as np, optax
      from jax.sharding import NamedSharding, PartitionSpec as P
      from adamjax.optim import lowmem
      mesh = jax.make_mesh((4,), ('x',))
      rows = NamedSharding(mesh, P('x'))
      tx = lowmem.adam8bit(1e-3)
      params = {'w': jnp.linspace(-1, 1, 512 * 64).reshape(512, 64),
                'b': jnp.ones(64)}
      grads = jax.tree.map(lambda p: jnp.sin(p * 7) + 0.1, params)
      step = jax.jit(lambda g, s, p: tx.update(g, s, p))
      want, want_state = step(grads, tx.init(params), params)
      shard = lambda t: jax.tree.map(
          lambda x: jax.device_put(x, rows if x.ndim and x.shape[0] % 4 == 0
                                   else NamedSharding(mesh, P())), t)
      sp, sg = shard(params), shard(grads)
      state = shard(tx.init(sp))
      got, got_state = step(sg, state, sp)
      np.testing.assert_array_equal(got['w'], want['w'])
      jax.tree.map(np.testing.assert_array_equal, got_state, want_state)
      codes = got_state[0].mu['w'].codes
      assert len(codes.sharding.device_set) == 4, codes.sharding
      print('OK', codes.sharding.spec)
  """)
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
             JAX_PLATFORMS='cpu')
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, '-c', script], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.startswith('OK')


def test_inject_hyperparams_and_schedules():
  """The learning rate can live in the state or be a schedule."""
  params = {'w': jnp.ones((64, 64))}
  grads = {'w': jnp.ones((64, 64))}
  with pytest.raises(ValueError, match="static_args=.'block_size'"):
    optax.inject_hyperparams(lowmem.adam8bit)(learning_rate=0.5).init(
        params)
  tx = optax.inject_hyperparams(lowmem.adam8bit, static_args=(
      'block_size', 'min_8bit_size', 'tile_size'))(learning_rate=0.5)
  state = tx.init(params)
  state.hyperparams['learning_rate'] = jnp.asarray(0.25)
  updates, _ = tx.update(grads, state)
  np.testing.assert_allclose(updates['w'], -0.25, rtol=1e-5)
  tx = lowmem.adam8bit(optax.linear_schedule(1.0, 0.0, 10))
  state = tx.init(params)
  first, state = tx.update(grads, state)
  second, _ = tx.update(grads, state)
  np.testing.assert_allclose(first['w'], -1.0, rtol=1e-5)
  np.testing.assert_allclose(second['w'], -0.9, rtol=2e-5)


# ----------------------------------------------------------------------------
# Memory.


def nbytes(tree):
  """Bytes held by a pytree's array leaves."""
  return sum(x.nbytes for x in jax.tree.leaves(tree))


def test_cnn_state_is_under_0_3x_of_float32_adam():
  """Measured on the real CNN's state arrays: 8-bit <= 0.3x float32."""
  params = models.CNN().init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))[
      'params']
  assert sum(x.size for x in jax.tree.leaves(params)) == 62_346
  f32 = nbytes(optax.adam(1e-3).init(params))
  q8 = nbytes(lowmem.adam8bit(1e-3).init(params))
  assert f32 == 8 * 62_346 + 4
  assert q8 <= 0.3 * f32
  # Exactly: 1 byte per moment element of the two large kernels (51,200 and
  # 10,240 elements), a float32 per block, float32 for the 906 small ones.
  assert q8 == 2 * (61_440 + 4 * (200 + 40)) + 8 * 906 + 4


# ----------------------------------------------------------------------------
# bf16 parameters: Kahan compensation and stochastic rounding.


def bf16_trajectories(steps=1000):
  """Params after `steps` Adam steps (lr 1e-3) on a fixed gradient stream.

  Variants: float32, plain bf16, bf16 + Kahan (bf16 buffer), bf16 + Kahan
  (float32 buffer), bf16 + stochastic rounding, all from the same bf16-exact
  start. The gradients (a per-coordinate drift plus noise, float32) depend
  on the step only, so every variant computes the same updates and the
  differences are the parameters' rounding alone.
  """
  n = 4096
  p0 = jax.random.normal(jax.random.key(0), (n,)).astype(jnp.bfloat16)
  drift = jax.random.normal(jax.random.key(1), (n,))
  grads = lambda t: drift + jax.random.normal(
      jax.random.fold_in(jax.random.key(2), t), (n,))
  adam = lambda: lowmem.adam8bit(1e-3, min_8bit_size=10**9)  # float32.
  variants = {
      'float32': (jnp.float32, adam()),
      'bf16': (jnp.bfloat16, adam()),
      'kahan': (jnp.bfloat16, optax.chain(adam(),
                                          lowmem.kahan_compensation())),
      'kahan_f32': (jnp.bfloat16, optax.chain(
          adam(), lowmem.kahan_compensation('float32'))),
      'stochastic': (jnp.bfloat16, optax.chain(
          adam(), lowmem.stochastic_rounding(seed=0))),
  }
  out = {}
  for name, (dtype, tx) in variants.items():

    def body(carry, t, tx=tx):
      """One step."""
      params, state = carry
      updates, state = tx.update(grads(t), state, params)
      return (optax.apply_updates(params, updates), state), None

    params = p0.astype(dtype)
    (params, _), _ = jax.jit(lambda c, tx=tx, body=body: jax.lax.scan(
        body, c, jnp.arange(steps)))((params, tx.init(params)))
    out[name] = np.asarray(params, np.float32)
  return out


def test_kahan_bf16_follows_float32_far_more_closely_than_plain_bf16():
  """Over 1,000 steps of <= 1e-3, mostly below bf16's spacing (2**-8 at
  |p| = 0.5): plain bf16 stalls, Kahan stays within rounding of float32."""
  runs = bf16_trajectories()
  ref = runs['float32']
  err = {k: np.abs(v - ref) for k, v in runs.items()}
  # bf16's spacing at each reference value (8 significant bits).
  spacing = 2.0**(np.floor(np.log2(np.maximum(np.abs(ref), 2.0**-126))) - 7)
  print('max / mean abs error vs float32 after 1,000 steps:',
        {k: (float(e.max()), float(e.mean())) for k, e in err.items()})
  # Float32 buffer: the bf16 rounding of the float32 value (plus float32
  # rounding of the compensation sums).
  assert np.all(err['kahan_f32'] <= 0.5 * spacing * (1 + 2.0**-7))
  # bf16 buffer: rounding each residue (<= half a spacing, ~2**-9 at
  # |p| = 0.5) to bf16 loses up to 2**-9 of it per step, a small absolute
  # error that matters only for parameters that end near 0.
  assert np.all(err['kahan'] <= 0.5 * spacing + 2.0**-12)
  assert np.median(err['kahan'] / spacing) < 0.3
  assert err['kahan'].max() < err['bf16'].max() / 20
  assert err['kahan'].mean() < err['bf16'].mean() / 20
  # Stochastic rounding is unbiased but noisy: between the two.
  assert err['stochastic'].mean() < err['bf16'].mean() / 2
  assert err['stochastic'].mean() > err['kahan'].mean()


def test_kahan_leaves_float32_leaves_alone_and_needs_params():
  """float32 leaves pass through with no buffer; bf16 leaves get one."""
  params = {'w': jnp.ones(4, jnp.bfloat16), 'f': jnp.ones(4)}
  tx = lowmem.kahan_compensation()
  state = tx.init(params)
  assert isinstance(state.compensation['f'], optax.MaskedNode)
  assert state.compensation['w'].dtype == jnp.bfloat16
  updates = {'w': jnp.full(4, 1e-3, jnp.bfloat16), 'f': jnp.full(4, 1e-3)}
  out, state = tx.update(updates, state, params)
  np.testing.assert_array_equal(out['f'], updates['f'])
  np.testing.assert_array_equal(out['w'], 0.0)  # 1 + 1e-3 rounds to 1...
  np.testing.assert_allclose(state.compensation['w'].astype(jnp.float32),
                             1e-3, rtol=1e-2)  # ...and 1e-3 is kept.
  with pytest.raises(ValueError, match='kahan_compensation needs params'):
    tx.update(updates, state)


def test_stochastic_rounding_is_unbiased_and_reproducible():
  """Each value lands on a bf16 neighbour, on average on itself; one seed,
  one stream."""
  x = jnp.full((200_000,), 1.0 + 2.0**-10)  # A quarter of the way up.
  low, high = 1.0, 1.0 + 2.0**-7
  rounded = lowmem._round_stochastically(x, jax.random.key(0))
  values = np.asarray(rounded, np.float32)
  assert set(np.unique(values)) == {low, high}
  assert abs(values.mean() - float(x[0])) < 3 * 2.0**-7 * 0.433 / 447
  params = jnp.ones(1000, jnp.bfloat16)
  updates = jnp.full(1000, 2.0**-10)

  def run(seed):
    """Two steps' outputs."""
    tx = lowmem.stochastic_rounding(seed)
    state = tx.init(params)
    first, state = tx.update(updates, state, params)
    second, _ = tx.update(updates, state, params)
    return np.asarray(first), np.asarray(second)

  a, b, c = run(0), run(0), run(1)
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert np.any(a[0] != a[1]) and np.any(a[0] != c[0])
  assert set(np.unique(a[0])) == {0.0, 2.0**-7}


def test_stochastic_rounding_keeps_nan_and_rejects_float16():
  """Non-finite values are not turned into numbers; fp16 is refused."""
  tx = lowmem.stochastic_rounding()
  params = jnp.ones(3, jnp.bfloat16)
  updates, _ = tx.update(jnp.array([jnp.nan, jnp.inf, 0.0]), tx.init(params),
                         params)
  new = optax.apply_updates(params, updates)
  assert np.isnan(new[0]) and np.isinf(new[1]) and new[2] == 1
  with pytest.raises(ValueError, match='dtype float16'):
    tx.init(jnp.ones(3, jnp.float16))


# ----------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize('kwargs,match', [
    ({'b1': 1.0}, r'b1=1.0 is invalid: it must be in \[0, 1\)'),
    ({'b2': -0.1}, r'b2=-0.1 is invalid'),
    ({'eps': -1e-8}, r'eps=-1e-08 is invalid: it must be >= 0'),
    ({'block_size': 0}, r'block_size=0 is invalid: it must be a Python '
     r'integer >= 1'),
    ({'min_8bit_size': 2.5}, r'min_8bit_size=2.5 is invalid'),
    ({'learning_rate': -1.0}, r'learning_rate=-1.0 is invalid'),
])
def test_bad_hyperparameters_are_named(kwargs, match):
  """Each out-of-range argument is named with its value and the range."""
  kwargs = {'learning_rate': 1e-3, **kwargs}
  with pytest.raises(ValueError, match=match):
    lowmem.adam8bit(**kwargs)


def test_bad_dtypes_and_seeds_are_named():
  """Non-float params, buffer dtypes and seeds are refused clearly."""
  with pytest.raises(ValueError, match='dtype int32'):
    lowmem.adam8bit(1e-3).init({'w': jnp.ones(3, jnp.int32)})
  with pytest.raises(ValueError, match="dtype='int8' is not a floating"):
    lowmem.kahan_compensation('int8')
  with pytest.raises(ValueError, match='seed=0.5 is invalid'):
    lowmem.stochastic_rounding(0.5)
  with pytest.raises(ValueError, match='weight_decay=-1 is invalid'):
    lowmem.adamw8bit(1e-3, weight_decay=-1)


@pytest.mark.parametrize('kwargs', [
    {'b1': 1.0}, {'b2': -0.1}, {'eps': -1e-8}, {'eps_root': -1.0},
    {'learning_rate': -1.0}, {'weight_decay': -1},
], ids=lambda kwargs: next(iter(kwargs)))
def test_range_checks_are_adam_optax_s(kwargs):
  """The shared rules: the message is adam_optax.adamw's, word for word."""
  kwargs = {'learning_rate': 1e-3, **kwargs}
  with pytest.raises(ValueError) as ours:
    lowmem.adamw8bit(**kwargs)
  with pytest.raises(ValueError) as reference:
    adam_optax.adamw(**kwargs)
  assert str(ours.value) == str(reference.value)
  assert not [name for name, value in vars(lowmem).items()
              if getattr(value, '__module__', None) == 'adam_optax'
              and name.startswith('_')]
