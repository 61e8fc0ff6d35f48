"""Tests for 4-bit Adam, the tiled low-memory step and its peak memory.

The 4-bit codes are checked against an independent NumPy implementation (the
signed map built from its bit patterns, the nearest value found by brute
force), the tiled steps against the untiled ones bit for bit over 1,000
steps, the peak memory against XLA's own analysis of compiled steps, and the
second moment's map by training: plain linear quantisation (with zero) must
fail where the chosen map trains.
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

from adamjax.optim import lowmem
from adamjax.optim import quantize
from tests.test_lowmem import reference_blockwise
from tests.test_lowmem import reference_moments


# ----------------------------------------------------------------------------
# An independent NumPy reference of the 4-bit codes.


def reference_map_4bit():
  """The 4-bit signed dynamic map from its bit patterns.

  Layout: [sign] [z zeros] [indicator 1] [F fraction bits f], 3 bits after
  the sign; value = sign * 10**-z * (0.1 + 0.9 * (f + 0.5) / 2**F). The
  redundant -0 becomes 1.0.
  """
  values = []
  for code in range(16):
    sign, rest = (-1.0 if code >> 3 else 1.0), code & 0b111
    if rest == 0:
      values.append(1.0 if sign < 0 else 0.0)
      continue
    zeros = 3 - rest.bit_length()
    frac_bits = 2 - zeros
    f = rest & ((1 << frac_bits) - 1)
    values.append(sign * 10.0**-zeros * (0.1 + 0.9 * (f + 0.5) / 2**frac_bits))
  return np.sort(np.array(values)).astype(np.float32)


REFERENCE_MAPS = {
    'signed dynamic': reference_map_4bit(),
    'linear': (np.arange(1, 17) / 16).astype(np.float32),
    'linear_with_zero': (np.arange(16) / 15).astype(np.float32),
}
OUR_MAPS = {
    'signed dynamic': quantize.dynamic_map(signed=True, bits=4),
    'linear': quantize.linear_map(zero=False),
    'linear_with_zero': quantize.linear_map(zero=True),
}


def test_4bit_maps_equal_the_independent_construction():
  """The signed map is the bit-pattern map (torchao's values); linear maps
  are k/16 (no zero) and k/15."""
  for name, ref in REFERENCE_MAPS.items():
    np.testing.assert_array_equal(OUR_MAPS[name], ref, err_msg=name)
  np.testing.assert_allclose(
      OUR_MAPS['signed dynamic'][8:15],
      [0.0055, 0.0325, 0.0775, 0.2125, 0.4375, 0.6625, 0.8875], rtol=1e-6)


@pytest.mark.parametrize('name', list(REFERENCE_MAPS))
@pytest.mark.parametrize('shape,block_size', [((100, 130), 128),
                                              ((7, 3, 211), 64),
                                              ((4096,), 128)])
def test_4bit_round_trip_matches_numpy_reference(name, shape, block_size):
  """Codes, scales and dequantised values equal the NumPy reference's."""
  rng = np.random.default_rng(block_size)
  x = rng.standard_normal(shape) * 10.0**rng.uniform(-6, 2, shape)
  x = (np.abs(x) if name.startswith('linear') else x).astype(np.float32)
  x.reshape(-1)[:block_size] = 0.0  # An all-zero block.
  q = quantize.quantize_4bit(jnp.asarray(x), OUR_MAPS[name], block_size)
  back = quantize.dequantize_4bit(q, OUR_MAPS[name], block_size)
  codes, absmax, values = reference_blockwise(x, REFERENCE_MAPS[name],
                                              block_size)
  assert q.codes.dtype == jnp.uint8 and q.codes.shape == shape
  np.testing.assert_array_equal(q.absmax, absmax)
  np.testing.assert_array_equal(q.codes, codes)
  np.testing.assert_array_equal(back, values)


@pytest.mark.parametrize('name', list(REFERENCE_MAPS))
def test_4bit_values_on_and_beside_every_boundary(name):
  """At and next to each boundary (float32 midpoint) and map value, the code
  is the number of boundaries strictly below: a boundary value goes down."""
  qmap = REFERENCE_MAPS[name]
  mids = ((qmap[1:].astype(np.float64) + qmap[:-1]) / 2).astype(np.float32)
  points = np.concatenate([mids, qmap])
  points = np.concatenate([points, np.nextafter(points, np.float32(2)),
                           np.nextafter(points, np.float32(-2))])
  points = points[(points >= qmap[0]) & (points <= 1)]
  x = np.concatenate([[1.0], points]).astype(np.float32)  # absmax = 1.
  q = quantize.quantize_4bit(jnp.asarray(x), OUR_MAPS[name], x.size)
  np.testing.assert_array_equal(q.codes, np.searchsorted(mids, x))


def test_nibbles_pack_and_unpack():
  """Every pair of 4-bit codes survives one byte."""
  high, low = np.meshgrid(np.arange(16, dtype=np.uint8),
                          np.arange(16, dtype=np.uint8))
  packed = quantize.pack_nibbles(jnp.asarray(high), jnp.asarray(low))
  assert packed.dtype == jnp.uint8
  assert len(np.unique(np.asarray(packed))) == 256
  back_high, back_low = quantize.unpack_nibbles(packed)
  np.testing.assert_array_equal(back_high, high)
  np.testing.assert_array_equal(back_low, low)


# ----------------------------------------------------------------------------
# The 4-bit step.


def params_and_grads(step, dtype=jnp.float32):
  """Leaves above and below min size, sizes that do not divide into tiles."""
  params = {'w': jnp.zeros((300, 517), dtype), 'v': jnp.zeros((20_011,), dtype),
            'b': jnp.zeros((10,), dtype)}
  grads = jax.tree.map(
      lambda p: (jnp.sin(jnp.arange(p.size, dtype=jnp.float32) * 0.37 + step)
                 * (1 + step % 7)).reshape(p.shape).astype(dtype), params)
  return params, grads


def dequantized_4bit(moments):
  """(mu, nu) float32 trees from a 4-bit moments tree."""
  def leaf(m, which):
    if isinstance(m, lowmem.Float32Moments):
      return m[which]
    codes = quantize.unpack_nibbles(m.codes)[which]
    return quantize.dequantize_4bit(
        quantize.BlockQuantized(codes, (m.mu_absmax, m.nu_absmax)[which]),
        OUR_MAPS['signed dynamic' if which == 0 else 'linear'], 128)
  is_leaf = lambda x: isinstance(x, (lowmem.Packed4bit, lowmem.Float32Moments))
  return tuple(jax.tree.map(lambda m, w=w: leaf(m, w), moments,
                            is_leaf=is_leaf) for w in (0, 1))


def test_4bit_state_layout_and_bytes():
  """Large leaves: one uint8 per element for both moments plus two scales per
  128 elements (about 1.06 bytes per parameter); small leaves float32."""
  params, _ = params_and_grads(0)
  state = lowmem.scale_by_adam_4bit().init(params)
  w, b = state.moments['w'], state.moments['b']
  assert isinstance(w, lowmem.Packed4bit) and w.codes.shape == (300, 517)
  assert w.codes.dtype == jnp.uint8
  assert w.mu_absmax.shape == w.nu_absmax.shape == (-(-300 * 517 // 128),)
  assert isinstance(b, lowmem.Float32Moments) and b.mu.dtype == jnp.float32
  large = sum(x.nbytes for x in jax.tree.leaves(w))
  assert 1.06 <= large / (300 * 517) <= 1.07
  # Zero state: every code decodes to 0.
  mu, nu = dequantized_4bit(state.moments)
  assert not np.any(np.asarray(mu['w'])) and not np.any(np.asarray(nu['w']))


def test_one_4bit_step_is_float32_adam_from_the_dequantised_state():
  """The new state is exactly the NumPy float32 moments, quantised; the
  update is optax.scale_by_adam's from the dequantised moments."""
  params, _ = params_and_grads(0)
  tx = lowmem.scale_by_adam_4bit(b1=0.8, b2=0.99, eps=1e-6)
  update = jax.jit(tx.update)
  state = tx.init(params)
  for step in range(5):
    _, state = update(params_and_grads(step)[1], state)
  grads = params_and_grads(5)[1]
  updates, new_state = update(grads, state)
  mu, nu = dequantized_4bit(state.moments)
  ref_updates, _ = optax.scale_by_adam(b1=0.8, b2=0.99, eps=1e-6).update(
      grads, optax.ScaleByAdamState(state.count, mu, nu))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-6,
                                                       atol=1e-7),
               updates, ref_updates)
  for key in params:
    m_ref, v_ref = reference_moments(grads[key], mu[key], nu[key], 0.8, 0.99)
    got = new_state.moments[key]
    if isinstance(got, lowmem.Float32Moments):
      np.testing.assert_array_equal(got.mu, m_ref)
      np.testing.assert_array_equal(got.nu, v_ref)
      continue
    qm = quantize.quantize_4bit(jnp.asarray(m_ref),
                                OUR_MAPS['signed dynamic'], 128)
    qv = quantize.quantize_4bit(jnp.asarray(v_ref), OUR_MAPS['linear'], 128)
    np.testing.assert_array_equal(got.codes,
                                  quantize.pack_nibbles(qm.codes, qv.codes))
    np.testing.assert_array_equal(got.mu_absmax, qm.absmax)
    np.testing.assert_array_equal(got.nu_absmax, qv.absmax)


# ----------------------------------------------------------------------------
# Tiled = untiled, bit for bit.


def trajectory(tx, steps, dtype=jnp.float32):
  """Params and state after `steps` jitted, donated steps."""
  params, _ = params_and_grads(0, dtype)

  @jax.jit
  def step(params, state, i):
    """One step on a gradient that depends on the params and the step."""
    grads = jax.tree.map(
        lambda p, g: (g.astype(jnp.float32) + jnp.cos(p.astype(jnp.float32))
                      * (1 + i % 5)).astype(p.dtype),
        params, params_and_grads(0, dtype)[1])
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  state = tx.init(params)
  for i in range(steps):
    params, state = step(params, state, i)
  return params, state


def assert_same_bits(a, b):
  """Two pytrees of arrays equal leaf by leaf, bit for bit."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert x.dtype == y.dtype
    np.testing.assert_array_equal(np.atleast_1d(x).view(np.uint8),
                                  np.atleast_1d(y).view(np.uint8))


@pytest.mark.parametrize('make', [lowmem.adam8bit, lowmem.adam4bit])
def test_tiled_steps_equal_untiled_over_1000_steps(make):
  """Same codes, scales and parameters after 1,000 steps, for tiles of one
  block, of a few blocks, and larger than a leaf."""
  block = 256 if make is lowmem.adam8bit else 128
  untiled = trajectory(make(1e-2, tile_size=None), 1000)
  for tile in (block, 40 * block):
    assert_same_bits(trajectory(make(1e-2, tile_size=tile), 1000), untiled)
  assert not np.array_equal(untiled[0]['w'], np.zeros((300, 517)))


def test_tiled_bf16_with_kahan_equals_untiled():
  """bf16 params and gradients (the update travels through the gradient's
  buffer as raw bits): tiled = untiled over 300 steps."""
  make = lambda tile: optax.chain(lowmem.adam8bit(1e-2, tile_size=tile),
                                  lowmem.kahan_compensation())
  untiled = trajectory(make(None), 300, jnp.bfloat16)
  assert_same_bits(trajectory(make(512), 300, jnp.bfloat16), untiled)
  assert untiled[0]['w'].dtype == jnp.bfloat16


# ----------------------------------------------------------------------------
# Memory, from XLA's analysis of compiled steps.


def step_memory(tx, params):
  """(argument bytes, temporary bytes) of a compiled, donated training step
  whose gradients come from a dot, as in a model."""
  x = jax.ShapeDtypeStruct((8, params.shape[0]), jnp.float32)
  y = jax.ShapeDtypeStruct((8, params.shape[1]), jnp.float32)

  def step(params, state, x, y):
    """Gradient x^T y, optimizer update, parameter update."""
    grads = jax.grad(lambda p: jnp.sum((x @ p) * y))(params)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  state = jax.eval_shape(tx.init, params)
  analysis = jax.jit(step, donate_argnums=(0, 1)).lower(
      params, state, x, y).compile().memory_analysis()
  return analysis.argument_size_in_bytes, analysis.temp_size_in_bytes


def test_peak_of_the_quantised_steps_is_below_float32_adam():
  """A 2M-parameter matrix: temporaries beyond the gradient under 0.25 bytes
  per parameter; peak (arguments + temporaries) at most 0.65x float32 Adam's
  for 8-bit, 0.6x for 4-bit."""
  params = jax.ShapeDtypeStruct((1000, 2000), jnp.float32)
  n, grads = 2_000_000, 8_000_000
  f32_args, f32_temp = step_memory(optax.adam(1e-3), params)
  peaks = {}
  for name, tx in (('8-bit', lowmem.adam8bit(1e-3)),
                   ('4-bit', lowmem.adam4bit(1e-3))):
    args, temp = step_memory(tx, params)
    assert (temp - grads) / n <= 0.25, (name, temp)
    peaks[name] = (args + temp) / (f32_args + f32_temp)
  assert peaks['8-bit'] <= 0.65 and peaks['4-bit'] <= 0.6, peaks
  # Untiled, the float32 moments of the whole leaf are temporaries.
  _, temp = step_memory(lowmem.adam8bit(1e-3, tile_size=None), params)
  assert (temp - grads) / n > 4, temp


# ----------------------------------------------------------------------------
# Training, and the map that fails.


def least_squares(tx, steps=500):
  """(start, final) loss of `steps` jitted steps on a fixed least squares."""
  k1, k2 = jax.random.split(jax.random.key(3))
  a = jax.random.normal(k1, (256, 64 * 128)) / 90
  target = jax.random.normal(k2, (256,))
  loss = lambda p: jnp.mean((a @ p['w'].reshape(-1) - target) ** 2)
  params = {'w': jnp.zeros((64, 128))}

  @jax.jit
  def step(params, state):
    """One step."""
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return optax.apply_updates(params, updates), state

  start, state = float(loss(params)), tx.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return start, float(loss(params))


def test_least_squares_500_steps_float32_8bit_4bit_and_the_failing_map():
  """8-bit ends within 10% of float32 Adam's loss, 4-bit cuts the loss 50x;
  4-bit with plain linear quantisation of v (a map with zero) diverges: a
  v rounded to 0 under a non-zero m makes the step m / eps."""
  start, f32 = least_squares(optax.adam(1e-3))
  _, q8 = least_squares(lowmem.adam8bit(1e-3))
  _, q4 = least_squares(lowmem.adam4bit(1e-3))
  _, zero = least_squares(optax.chain(
      lowmem.scale_by_adam_4bit(nu_map='linear_with_zero'),
      optax.scale(-1e-3)))
  assert f32 < start / 1000
  assert abs(q8 - f32) < 0.1 * f32
  assert q4 < start / 50
  assert not zero < start, zero  # Worse than not training (or NaN).


# ----------------------------------------------------------------------------
# Sharded leaves.


def test_sharded_4bit_and_8bit_steps_equal_unsharded_and_misfits_refused():
  """On 4 host devices with explicit axes, leaves split on their first axis
  in whole blocks step shard by shard with the single-device result; a leaf
  split on another axis, or in pieces that are not whole blocks, is refused
  with its shape and sharding named. The trainer's ZeRO-1 split (Auto axes)
  gives the single-device result too."""
  script = textwrap.dedent("""
      import jax, jax.numpy as jnp, numpy as np, optax
      from jax.sharding import NamedSharding, PartitionSpec as P
      from adamjax.optim import lowmem
      mesh = jax.make_mesh((4,), ('x',))
      put = lambda t, spec: jax.tree.map(
          lambda a: jax.device_put(a, NamedSharding(mesh, spec(a))), t)
      rows = lambda a: P('x') if a.ndim and a.shape[0] % 4 == 0 else P()
      for tx in (lowmem.adam4bit(1e-3, tile_size=1024),
                 lowmem.adam8bit(1e-3, tile_size=1024)):
        params = {'w': jnp.linspace(-1, 1, 512 * 64).reshape(512, 64),
                  'b': jnp.ones(64)}
        grads = jax.tree.map(lambda p: jnp.sin(p * 7) + 0.1, params)
        step = jax.jit(lambda g, s, p: tx.update(g, s, p))
        want = step(grads, tx.init(params), params)
        got = step(put(grads, rows), put(tx.init(params), rows),
                   put(params, rows))
        jax.tree.map(np.testing.assert_array_equal, got, want)
        codes = [x for x in jax.tree.leaves(got[1]) if x.dtype == jnp.uint8]
        assert codes and all(c.shape == (512, 64) for c in codes), codes
        assert all(len(c.sharding.device_set) == 4 for c in codes)
      # The trainer's ZeRO-1: Auto axes, state split on its largest divisible
      # axis; XLA partitions the loop itself, and the result is the same.
      from adamjax.trainer import distributed
      auto = distributed.make_mesh(4)
      for tx in (lowmem.adam4bit(1e-3), lowmem.adam8bit(1e-3)):
        params = {'w': jnp.linspace(-1, 1, 64 * 512).reshape(64, 512)}
        grads = jax.tree.map(lambda p: jnp.sin(p * 7) + 0.1, params)
        step = jax.jit(lambda g, s, p: tx.update(g, s, p))
        want = step(grads, tx.init(params), params)
        zero1 = jax.tree.map(lambda a: jax.device_put(
            a, distributed._split_one_axis(a, auto)), tx.init(params))
        jax.tree.map(np.testing.assert_array_equal,
                     step(grads, zero1, params), want)
      tx = lowmem.adam4bit(1e-3)
      for shape, spec, words in (((64, 512), P(None, 'x'), 'first axis only'),
                                 ((4 * 100, 41), P('x'), 'straddle shards')):
        p = {'w': jnp.ones(shape)}
        s = put(tx.init(p), lambda a: spec if a.shape == shape else P())
        try:
          jax.jit(lambda g, s: tx.update(g, s))(put(p, lambda a: spec), s)
        except ValueError as e:
          assert words in str(e) and str(shape) in str(e), e
        else:
          raise AssertionError(f'{shape} {spec} was not refused')
      print('OK')
  """)
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
             JAX_PLATFORMS='cpu')
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, '-c', script], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.startswith('OK')
