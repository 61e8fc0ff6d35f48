"""Library-argument faults (issue 24): bad arguments get a clear error.

adam_optax, adamjax.optim.lowmem and the registry raise ValueError/TypeError
(the registry: ConfigError, a ValueError) naming the argument and what is
accepted, at construction; gradients that do not match the params fail at
update time naming the mismatch, never deep inside XLA or jax.tree.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adam_optax
from adamjax.common import errors
from adamjax.optim import lowmem
from adamjax.optim import registry

# Constructors taking (learning_rate, b1, b2, eps, ...) by keyword.
ADAM_FAMILY = {
    'adam': adam_optax.adam,
    'adamw': adam_optax.adamw,
    'nadam': adam_optax.nadam,
    'nadamw': adam_optax.nadamw,
    'amsgrad': adam_optax.amsgrad,
    'adamax': adam_optax.adamax,
    'adamaxw': adam_optax.adamaxw,
    'adam8bit': lowmem.adam8bit,
    'adamw8bit': lowmem.adamw8bit,
    'adam4bit': lowmem.adam4bit,
    'adamw4bit': lowmem.adamw4bit,
}

# (argument, bad value, exception type, the accepted range named).
BAD_ARGUMENTS = [
    ('learning_rate', -1e-3, ValueError, '>= 0'),
    ('learning_rate', float('nan'), ValueError, '>= 0'),
    ('learning_rate', float('inf'), ValueError, 'finite'),
    ('learning_rate', '0.001', TypeError, 'a number, an array or a schedule'),
    ('learning_rate', None, TypeError, 'a number, an array or a schedule'),
    ('learning_rate', [1e-3], TypeError, 'a number, an array or a schedule'),
    ('b1', 1.0, ValueError, 'in [0, 1)'),
    ('b1', -0.1, ValueError, 'in [0, 1)'),
    ('b2', 1.0, ValueError, 'in [0, 1)'),
    ('b2', 1.5, ValueError, 'in [0, 1)'),
    ('b2', float('nan'), ValueError, 'in [0, 1)'),
    ('b2', '0.999', TypeError, 'in [0, 1)'),
    ('eps', -1e-8, ValueError, '>= 0'),
    ('eps', float('inf'), ValueError, 'finite'),
]


def _build(factory, argument, value):
  kwargs = {'learning_rate': 1e-3, argument: value}
  return factory(**kwargs)


@pytest.mark.parametrize('argument, value, error, accepted', BAD_ARGUMENTS)
@pytest.mark.parametrize('name', sorted(ADAM_FAMILY))
def test_bad_hyperparameter_is_named_at_construction(name, argument, value,
                                                     error, accepted):
  """Each bad value: the right type, naming the argument and the range."""
  with pytest.raises(error) as info:
    _build(ADAM_FAMILY[name], argument, value)
  message = str(info.value)
  assert message.startswith(f'{argument}={value!r} is invalid'), message
  assert accepted in message, message


@pytest.mark.parametrize('argument, value, error, accepted', BAD_ARGUMENTS)
@pytest.mark.parametrize('name', sorted(registry.OPTIMIZERS))
def test_registry_refuses_bad_hyperparameters(name, argument, value, error,
                                              accepted):
  """Every registry optimizer (Optax's too) refuses with a ConfigError."""
  del error, accepted  # The registry words its own accepted ranges.
  if argument != 'learning_rate' and argument not in registry.hyperparameters(
      name):
    pytest.skip(f'{name} has no {argument}')
  kwargs = {'learning_rate': 1e-3, argument: value}
  with pytest.raises(errors.ConfigError, match=re.escape(f'{argument}=')):
    registry.create_optimizer(name, **kwargs)


@pytest.mark.parametrize('name, value, accepted', [
    ('block_size', 0, '>= 1'),
    ('block_size', -256, '>= 1'),
    ('block_size', 2.5, 'integer'),
    ('min_size', -1, '>= 1'),
    ('min_size', '4096', 'integer'),
    ('tile_size', 0, '>= 1'),
    ('tile_size', 1000, 'multiple of block_size'),
])
@pytest.mark.parametrize('factory, bits', [
    (lowmem.adam8bit, 8), (lowmem.adamw8bit, 8), (lowmem.scale_by_adam_8bit, 8),
    (lowmem.adam4bit, 4), (lowmem.adamw4bit, 4), (lowmem.scale_by_adam_4bit, 4)])
def test_lowmem_sizes_are_checked_at_construction(factory, bits, name, value,
                                                  accepted):
  name = f'min_{bits}bit_size' if name == 'min_size' else name
  scale_only = factory in (lowmem.scale_by_adam_8bit,
                           lowmem.scale_by_adam_4bit)
  args = () if scale_only else (1e-3,)
  with pytest.raises(ValueError) as info:
    factory(*args, **{name: value})
  assert str(info.value).startswith(f'{name}={value!r} is invalid')
  assert accepted in str(info.value)


def test_4bit_second_moment_map_is_checked():
  with pytest.raises(ValueError, match=r"nu_map='dynamic' is invalid; "
                     r"accepted: 'linear', 'linear_with_zero'"):
    lowmem.scale_by_adam_4bit(nu_map='dynamic')


@pytest.mark.parametrize('argument, value, accepted', [
    ('mu_dtype', 'int32', 'floating or complex dtype'),
    ('mu_dtype', 'no_such_dtype', 'floating or complex dtype'),
    ('nu_dtype', 'complex64', 'floating dtype'),
    ('nu_dtype', 'uint8', 'floating dtype'),
])
@pytest.mark.parametrize('factory', [adam_optax.adam, adam_optax.adamw,
                                     adam_optax.amsgrad])
def test_bad_moment_dtype_is_named(factory, argument, value, accepted):
  with pytest.raises(ValueError) as info:
    factory(1e-3, **{argument: value})
  assert str(info.value).startswith(f'{argument}={value!r}')
  assert accepted in str(info.value)


@pytest.mark.parametrize('value', ['int32', 'no_such_dtype'])
def test_registry_refuses_bad_moment_dtype(value):
  with pytest.raises(errors.ConfigError, match=r'optimizer\.mu_dtype='):
    registry.create_optimizer('adam', 1e-3, mu_dtype=value)


@pytest.mark.parametrize('name', ['adam', 'adamw', 'nadam', 'amsgrad',
                                  'adamax'])
def test_integer_params_get_finite_float_updates(name):
  """jnp.arange(3) as params: float moments, finite sign-like first step."""
  tx = ADAM_FAMILY[name](0.1)
  params = jnp.arange(3)
  state = tx.init(params)
  updates, state = jax.jit(tx.update)(jnp.array([1, -2, 0]), state, params)
  assert jnp.issubdtype(updates.dtype, jnp.floating)
  assert bool(jnp.all(jnp.isfinite(updates)))
  for moment in jax.tree.leaves(state):
    assert bool(jnp.all(jnp.isfinite(moment)))
  # The first Adam-style step is about -lr * sign(g) (0 where g is 0);
  # NAdam's look-ahead makes it up to about 1.5 lr.
  np.testing.assert_array_equal(jnp.sign(updates[:2]), [-1.0, 1.0])
  assert bool(jnp.all((jnp.abs(updates[:2]) >= 0.09)
                      & (jnp.abs(updates[:2]) <= 0.16)))
  assert abs(float(updates[2])) < 1e-3


@pytest.mark.parametrize('factory', [lowmem.adam8bit, lowmem.adamw8bit,
                                     lowmem.adam4bit, lowmem.adamw4bit])
def test_lowmem_refuses_integer_params_at_init(factory):
  with pytest.raises(ValueError,
                     match=r'real floating parameters only.*dtype int32'):
    factory(0.1).init(jnp.arange(3))


# Large enough that the 8-bit optimizers quantise 'b' (BlockQuantized state).
_PARAMS = {'a': jnp.ones(3), 'b': jnp.ones(5000)}
_MISMATCHES = {
    'missing_leaf': ({'a': jnp.ones(3)}, r"lack \['b'\]"),
    'extra_leaf': ({'a': jnp.ones(3), 'b': jnp.ones(5000), 'c': jnp.ones(1)},
                   r"extra \['c'\]"),
    'renamed_leaf': ({'a': jnp.ones(3), 'z': jnp.ones(5000)},
                     r"lack \['b'\] and have extra \['z'\]"),
    'wrong_shape': ({'a': jnp.ones(3), 'b': jnp.ones(7)},
                    r"at \['b'\] has shape \(7,\) but the param has shape "
                    r'\(5000,\)'),
    'transposed': ({'a': jnp.ones((3, 1)), 'b': jnp.ones(5000)},
                   r"at \['a'\] has shape \(3, 1\) but the param has shape "
                   r'\(3,\)'),
    'list_not_dict': ([jnp.ones(3), jnp.ones(5000)], r'do not match'),
}


@pytest.mark.parametrize('jit', [False, True], ids=['eager', 'jit'])
@pytest.mark.parametrize('case', sorted(_MISMATCHES))
@pytest.mark.parametrize('name', sorted(ADAM_FAMILY))
def test_mismatched_gradients_are_named_at_update(name, case, jit):
  """Gradients unlike the params: a ValueError naming the mismatch."""
  grads, problem = _MISMATCHES[case]
  tx = ADAM_FAMILY[name](1e-3)
  state = tx.init(_PARAMS)
  update = jax.jit(tx.update) if jit else tx.update
  with pytest.raises(ValueError, match=problem) as info:
    update(grads, state, _PARAMS)
  assert 'gradient' in str(info.value)
  assert 'params' in str(info.value)


def test_matching_gradients_still_equal_optax():
  """The check adds no ops: one jitted step is bit-identical to Optax's."""
  grads = {'a': jnp.array([0.1, -0.2, 0.3]), 'b': jnp.linspace(-1, 1, 5000)}
  ours, theirs = adam_optax.adam(1e-3), optax.adam(1e-3)
  u1, _ = jax.jit(ours.update)(grads, ours.init(_PARAMS))
  u2, _ = jax.jit(theirs.update)(grads, theirs.init(_PARAMS))
  for x, y in zip(jax.tree.leaves(u1), jax.tree.leaves(u2)):
    np.testing.assert_array_equal(x, y)


def test_schedules_and_arrays_still_pass():
  """A schedule or jax array rate is not mistaken for a non-number."""
  adam_optax.adam(optax.linear_schedule(1e-3, 0.0, 10))
  adam_optax.adam(jnp.float32(1e-3), b1=jnp.float32(0.9))
  lowmem.adam8bit(np.float32(1e-3))
  with pytest.raises(TypeError, match='b1=.*a number or an array'):
    adam_optax.adam(1e-3, b1=lambda step: 0.9)


@pytest.mark.parametrize('case', sorted(_MISMATCHES))
@pytest.mark.parametrize('name', sorted(registry.OPTIMIZERS))
def test_every_registry_optimizer_names_mismatched_gradients(name, case):
  """Optax's own optimizers too: the registry checks before their update."""
  grads, problem = _MISMATCHES[case]
  tx = registry.create_optimizer(name, 1e-3)
  state = tx.init(_PARAMS)
  with pytest.raises(ValueError, match=problem) as info:
    jax.jit(tx.update)(grads, state, _PARAMS)
  assert f'optimizer {name!r}' in str(info.value)
