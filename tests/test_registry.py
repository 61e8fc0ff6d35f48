"""Tests for the optimizer registry and its factory."""

import inspect
import math
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from adamjax.optim import lowmem
from configs import default
from adamjax.common import errors
from adamjax.optim import registry
from adamjax.optim import schedules


def _from_config(config, total_steps=10):
  """The optimizer the trainer builds from `config` (trainer.setup's call)."""
  return registry.from_config(
      config.optimizer, total_steps=total_steps, schedule=config.schedule,
      warmup_steps=config.warmup_steps, grad_clip_norm=config.grad_clip_norm,
      param_rounding=config.param_rounding, seed=config.seed)

# (registry name, hyperparameters, the Optax optimizer it must equal). Every
# registry name appears with {} (its defaults), and every settable float or
# bool hyperparameter of every optimizer appears at a non-default value, so a
# name bound to the wrong function, or a hyperparameter dropped or passed to
# the wrong argument, changes the updates.
_REFERENCES = [
    ('adam', {}, optax.adam),
    ('adam', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4), optax.adam),
    ('adam', dict(nesterov=True), lambda nesterov, **kw: optax.nadam(**kw)),
    ('adam', dict(amsgrad=True), lambda amsgrad, **kw: optax.amsgrad(**kw)),
    ('adamw', {}, optax.adamw),
    ('adamw', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4,
                   weight_decay=0.3), optax.adamw),
    ('adamw', dict(nesterov=True, weight_decay=0.3), optax.adamw),
    ('adamw', dict(amsgrad=True, weight_decay=0.3),
     lambda amsgrad, weight_decay, **kw: optax.chain(
         optax.scale_by_amsgrad(), optax.add_decayed_weights(weight_decay),
         optax.scale_by_learning_rate(kw['learning_rate']))),
    ('nadam', {}, optax.nadam),
    ('nadam', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4), optax.nadam),
    ('nadamw', {}, optax.nadamw),
    ('nadamw', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4,
                    weight_decay=0.3), optax.nadamw),
    ('nadamw', dict(nesterov=False, weight_decay=0.3), optax.adamw),
    ('amsgrad', {}, optax.amsgrad),
    ('amsgrad', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4), optax.amsgrad),
    ('adamax', {}, optax.adamax),
    ('adamax', dict(b1=0.5, b2=0.9, eps=1e-3), optax.adamax),
    ('adamaxw', {}, optax.adamaxw),
    ('adamaxw', dict(b1=0.5, b2=0.9, eps=1e-3, weight_decay=0.3),
     optax.adamaxw),
    ('optax_adam', {}, optax.adam),
    ('optax_adam', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4,
                        nesterov=True), optax.adam),
    ('sgd', {}, optax.sgd),
    ('sgd', dict(momentum=0.5, nesterov=True), optax.sgd),
    ('momentum', {}, lambda **kw: optax.sgd(momentum=0.9, **kw)),
    ('momentum', dict(momentum=0.5), optax.sgd),
    ('momentum', dict(nesterov=True),
     lambda **kw: optax.sgd(momentum=0.9, **kw)),
    ('nesterov', {}, lambda **kw: optax.sgd(momentum=0.9, nesterov=True, **kw)),
    ('nesterov', dict(momentum=0.5, nesterov=False), optax.sgd),
    ('rmsprop', {}, optax.rmsprop),
    ('rmsprop', dict(decay=0.5, eps=1e-3, initial_scale=1.0), optax.rmsprop),
    ('rmsprop', dict(centered=True, momentum=0.5, nesterov=True),
     optax.rmsprop),
    ('adagrad', {}, optax.adagrad),
    ('adagrad', dict(initial_accumulator_value=1.0, eps=1e-3), optax.adagrad),
    ('adadelta', {}, optax.adadelta),
    ('adadelta', dict(rho=0.5, eps=1e-3, weight_decay=0.3), optax.adadelta),
    # 3 parameters are below min_8bit_size (min_4bit_size): float32 moments,
    # so plain Adam(W).
    ('adam8bit', {}, optax.adam),
    ('adam8bit', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4), optax.adam),
    ('adamw8bit', {}, optax.adamw),
    ('adamw8bit', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4,
                       weight_decay=0.3), optax.adamw),
    ('adam4bit', {}, optax.adam),
    ('adam4bit', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4), optax.adam),
    ('adamw4bit', {}, optax.adamw),
    ('adamw4bit', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4,
                       weight_decay=0.3), optax.adamw),
    ('adopt', {}, optax.contrib.adopt),
    ('adopt', dict(b1=0.5, b2=0.9, eps=1e-3, nesterov=True,
                   use_clipping=False), optax.contrib.adopt),
    ('ademamix', {}, optax.contrib.ademamix),
    ('ademamix', dict(b1=0.5, b2=0.9, b3=0.99, alpha=2.0, eps=1e-3,
                      eps_root=1e-4, weight_decay=0.3), optax.contrib.ademamix),
    ('radam', {}, optax.radam),
    ('radam', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4, threshold=4.5,
                   nesterov=True), optax.radam),
    ('cautious_adam', {}, lambda **kw: _cautious_reference(**kw)),
    ('cautious_adam', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4,
                           nesterov=True), lambda **kw: _cautious_reference(
                               **kw)),
    ('cautious_adamw', {}, lambda **kw: _cautious_reference(
        weight_decay=1e-4, **kw)),
    ('cautious_adamw', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4,
                            weight_decay=0.3), lambda **kw: (
                                _cautious_reference(**kw))),
    ('lion', {}, optax.lion),
    ('lion', dict(b1=0.5, b2=0.9, weight_decay=0.3), optax.lion),
    # Lion steps by a sign, which a bf16 momentum rarely flips in 6 steps.
    ('lion', dict(mu_dtype='bfloat16'), optax.lion),
    ('adabelief', {}, optax.adabelief),
    ('adabelief', dict(b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4,
                       nesterov=True), optax.adabelief),
]


def _cautious_reference(learning_rate, weight_decay=0.0, **adam_options):
  """Optax's Adam direction masked as the Cautious paper's code does."""
  adam = optax.scale_by_adam(**adam_options)

  def update(grads, state, params=None):
    u, state = adam.update(grads, state, params)
    agree = (u * grads > 0).astype(u.dtype)
    u = u * agree * agree.size / (agree.sum() + 1)
    return -learning_rate * (u + weight_decay * params), state

  return optax.GradientTransformation(adam.init, update)


def _trajectory(tx, num_steps=6):
  """The updates `tx` makes over `num_steps` steps on a fixed gradient stream.

  The gradients come from a quadratic at the current parameters plus a fixed
  random term, so they change sign and size between steps, and updates feed
  back into them (as weight decay needs).
  """
  rng = np.random.default_rng(0)
  noise = jnp.asarray(rng.normal(size=(num_steps, 3)), jnp.float32)
  params = jnp.array([1.0, -2.0, 0.5])
  state = tx.init(params)
  updates_seen = []
  for t in range(num_steps):
    grads = params * jnp.array([1.0, 10.0, 0.1]) + noise[t]
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    updates_seen.append(updates)
  return np.stack(updates_seen)


@pytest.mark.parametrize('name, hparams, reference', _REFERENCES)
def test_registry_name_equals_its_optax_optimizer(name, hparams, reference):
  """Each name (and hyperparameter) makes the updates of its Optax original."""
  ours = _trajectory(registry.create_optimizer(name, 0.1, **hparams))
  theirs = _trajectory(reference(learning_rate=0.1, **hparams))
  np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=1e-7)


# A non-default value of every settable hyperparameter (bools are flipped).
_OTHER_VALUE = {
    'b1': 0.5, 'b2': 0.9, 'eps': 1e-3, 'eps_root': 1e-4, 'weight_decay': 0.3,
    'momentum': 0.5, 'decay': 0.5, 'rho': 0.5, 'initial_accumulator_value': 1.0,
    'initial_scale': 1.0, 'mu_dtype': 'bfloat16', 'nu_dtype': 'bfloat16',
    'b3': 0.99, 'alpha': 2.0, 'threshold': 4.5,
}


def _without_reference():
  """(name, hyperparameter) pairs that the table above does not exercise."""
  covered = {(name, h) for name, hparams, _ in _REFERENCES for h in hparams}
  return sorted((name, h) for name in registry.OPTIMIZERS
                for h in registry.hyperparameters(name)
                if (name, h) not in covered)


def test_references_cover_every_name_and_most_hyperparameters():
  """The table checks every name, and each float setting against Optax."""
  with_defaults = {name for name, hparams, _ in _REFERENCES if not hparams}
  assert with_defaults == set(registry.OPTIMIZERS)
  # Only options Optax has no twin for (storage dtypes, switching Adam's bias
  # corrections off) are left to the pass-through test below.
  for name, field in _without_reference():
    assert registry.HYPERPARAMETER_TYPES[field] is not float, (name, field)


@pytest.mark.parametrize('name, field', _without_reference())
def test_other_settings_reach_the_optimizer(name, field):
  """Settings without an Optax twin change the updates as the factory does."""
  factory = registry.OPTIMIZERS[name]
  value = _OTHER_VALUE.get(field)
  if value is None:
    value = not inspect.signature(factory).parameters[field].default
  ours = _trajectory(registry.create_optimizer(name, 0.1, **{field: value}))
  np.testing.assert_array_equal(
      ours, _trajectory(factory(learning_rate=0.1, **{field: value})))
  assert not np.array_equal(
      ours, _trajectory(registry.create_optimizer(name, 0.1))), (name, field)


def test_names_that_differ_give_different_updates():
  """The comparison above can tell the registry's near-twins apart."""
  def updates(name):
    return _trajectory(registry.create_optimizer(name, 0.1))

  for a, b in [('nesterov', 'momentum'), ('momentum', 'sgd'),
               ('rmsprop', 'adagrad'), ('adadelta', 'adagrad'),
               ('adam', 'nadam'), ('adam', 'amsgrad'), ('adam', 'adamax'),
               ('adamw', 'nadamw'), ('adamax', 'adamaxw')]:
    assert not np.allclose(updates(a), updates(b), rtol=1e-6, atol=0), (a, b)


@pytest.mark.parametrize('dtype', ['bfloat16', 'float16'])
def test_mu_dtype_reaches_the_optimizer(dtype):
  """mu_dtype sets the first moment's dtype, as in optax.adam."""
  tx = registry.create_optimizer('adam', 0.1, mu_dtype=dtype)
  state = tx.init(jnp.zeros(3))
  assert state[0].mu.dtype == jnp.dtype(dtype)
  tx = registry.create_optimizer('adam', 0.1, nu_dtype=dtype)
  assert tx.init(jnp.zeros(3))[0].nu.dtype == jnp.dtype(dtype)


def test_unknown_optimizer_lists_the_registry():
  """An unknown name is a ConfigError naming it and every accepted name."""
  with pytest.raises(
      errors.ConfigError,
      match=r"^optimizer\.name='adamm' is invalid; accepted: " +
      re.escape(', '.join(registry.OPTIMIZERS)) + r"\. Did you mean 'adam'\?$"):
    registry.create_optimizer('adamm', 1e-3)


def test_several_foreign_hyperparameters_are_all_named():
  """Every hyperparameter not taken is named, in alphabetical order."""
  with pytest.raises(
      errors.ConfigError,
      match=r"^Optimizer 'adagrad' does not take b2, decay, rho; it accepts: "
      r'learning_rate, initial_accumulator_value, eps\.$'):
    registry.create_optimizer('adagrad', 0.1, rho=0.5, b2=0.9, decay=0.9)


@pytest.mark.parametrize('name, field, message', [
    ('sgd', 'b1', 'learning_rate, momentum, nesterov'),
    # Keywords of the Optax function that have no config slot are not offered.
    ('rmsprop', 'eps_in_sqrt', 'learning_rate, decay, eps, initial_scale, '
     'centered, momentum, nesterov'),
    ('adadelta', 'weight_decay_mask', 'learning_rate, rho, eps, weight_decay'),
    ('momentum', 'accumulator_dtype', 'learning_rate, momentum, nesterov'),
])
def test_foreign_hyperparameter_lists_only_settable_ones(name, field, message):
  """A hyperparameter not taken names only the settable ones that are."""
  with pytest.raises(
      errors.ConfigError,
      match=rf"^Optimizer '{name}' does not take {field}; it accepts: "
      + re.escape(message) + r'\.$'):
    registry.create_optimizer(name, 0.1, **{field: 0.5})


def test_unsettable_keyword_of_adamw_is_not_offered():
  """adamw takes `mask` in code, but no config slot sets it: not listed."""
  with pytest.raises(errors.ConfigError) as info:
    registry.create_optimizer('adamw', 0.1, mask=lambda params: params)
  message = str(info.value)
  assert message.startswith("Optimizer 'adamw' does not take mask; ")
  accepted = message.split('it accepts: ')[1].rstrip('.').split(', ')
  assert accepted[0] == 'learning_rate'
  assert set(accepted[1:]) == set(registry.hyperparameters('adamw'))
  assert {'b1', 'weight_decay', 'nesterov'} <= set(accepted)
  assert 'mask' not in accepted


def test_settable_hyperparameters_are_typed_and_ranged():
  """Each settable hyperparameter has a type, each float one a range."""
  assert set(registry.HYPERPARAMETER_TYPES.values()) == {float, bool, str}
  floats = {k for k, kind in registry.HYPERPARAMETER_TYPES.items()
            if kind is float}
  assert floats == set(registry.HYPERPARAMETER_RANGES)
  # hyperparameters() is the factory's keywords that are settable, in order.
  assert registry.hyperparameters('adadelta') == ('rho', 'eps',
                                                    'weight_decay')
  with pytest.raises(errors.ConfigError, match="optimizer.name='x' is invalid"):
    registry.hyperparameters('x')


def test_config_has_a_slot_for_every_settable_hyperparameter():
  """Every hyperparameter the registry lets users set is a config field."""
  config = default.get_config()
  assert isinstance(config.optimizer, ml_collections.ConfigDict)
  slots = set(config.optimizer)
  assert set(registry.HYPERPARAMETER_TYPES) <= slots


def test_none_hyperparameters_mean_defaults():
  """Unset config slots (None) are dropped, not passed through."""
  tx = registry.create_optimizer('adamax', 0.1, b1=None, weight_decay=None,
                                   momentum=None)
  np.testing.assert_array_equal(_trajectory(tx),
                                _trajectory(optax.adamax(0.1)))


_DECAY_BELOW_ONE = 'a finite number in [0, 1)'
_DECAY_UP_TO_ONE = 'a finite number in [0, 1]'
_NON_NEGATIVE = 'a finite number >= 0'


@pytest.mark.parametrize('name, field, value, accepted', [
    ('momentum', 'momentum', -5.0, _DECAY_BELOW_ONE),
    ('sgd', 'momentum', 1.0, _DECAY_BELOW_ONE),
    ('rmsprop', 'momentum', -0.1, _DECAY_BELOW_ONE),
    ('rmsprop', 'decay', 2.0, _DECAY_UP_TO_ONE),
    ('rmsprop', 'decay', -1e-9, _DECAY_UP_TO_ONE),
    ('rmsprop', 'decay', 1.0 + 1e-9, _DECAY_UP_TO_ONE),
    ('adadelta', 'rho', 1.5, _DECAY_UP_TO_ONE),
    ('adadelta', 'rho', -0.5, _DECAY_UP_TO_ONE),
    # optax.adam does not check its arguments; the registry does.
    ('optax_adam', 'b1', 1.0, _DECAY_BELOW_ONE),
    ('optax_adam', 'b2', -0.1, _DECAY_BELOW_ONE),
    ('adam', 'b1', math.nan, _DECAY_BELOW_ONE),
    ('adamax', 'eps', -1e-8, _NON_NEGATIVE),
    ('adam', 'eps', math.inf, _NON_NEGATIVE),
    ('adam', 'eps_root', -1.0, _NON_NEGATIVE),
    ('adamw', 'weight_decay', -0.1, _NON_NEGATIVE),
    ('adadelta', 'weight_decay', math.inf, _NON_NEGATIVE),
    ('adagrad', 'initial_accumulator_value', -1.0, _NON_NEGATIVE),
    ('rmsprop', 'initial_scale', math.nan, _NON_NEGATIVE),
    # A number of the wrong kind is out of range too.
    ('adam', 'b1', '0.9', _DECAY_BELOW_ONE),
    ('adam', 'b1', True, _DECAY_BELOW_ONE),
])
def test_out_of_range_float_is_a_config_error(name, field, value, accepted):
  """A value outside its range names the field, value, optimizer and range."""
  expected = (f'Optimizer {name!r}: optimizer.{field}={value!r} is invalid; '
              f'accepted: {accepted}.')
  with pytest.raises(errors.ConfigError, match='^' + re.escape(expected) + '$'):
    registry.create_optimizer(name, 0.1, **{field: value})


@pytest.mark.parametrize('name, field, value', [
    ('sgd', 'momentum', 0.0), ('sgd', 'momentum', 0.999),
    ('rmsprop', 'decay', 0.0), ('rmsprop', 'decay', 1.0),
    ('adadelta', 'rho', 1.0), ('adam', 'b1', 0.0), ('adam', 'eps', 0.0),
    ('adagrad', 'initial_accumulator_value', 0.0), ('adam', 'b2', 0),
])
def test_values_at_the_ends_of_a_range_are_accepted(name, field, value):
  """The ends of each range that are included build an optimizer."""
  tx = registry.create_optimizer(name, 0.1, **{field: value})
  assert isinstance(tx, optax.GradientTransformation)


@pytest.mark.parametrize('name, field, value, accepted', [
    ('adam', 'nesterov', 1, 'True or False'),
    ('rmsprop', 'centered', 'yes', 'True or False'),
    ('adam', 'mu_dtype', 'int8', "a floating dtype such as 'float32'"),
    ('optax_adam', 'mu_dtype', 'float33', "a floating dtype such as 'float32'"),
])
def test_wrong_kind_of_option_is_a_config_error(name, field, value, accepted):
  """Bool and dtype options refuse other values, naming what is accepted."""
  with pytest.raises(
      errors.ConfigError,
      match='^' + re.escape(f'Optimizer {name!r}: optimizer.{field}={value!r} '
                            'is invalid; accepted: ') + '.*'
      + re.escape(accepted)):
    registry.create_optimizer(name, 0.1, **{field: value})


@pytest.mark.parametrize('name, hparams, momentum', [
    ('sgd', dict(nesterov=True), None),
    ('rmsprop', dict(nesterov=True), None),
    ('nesterov', dict(momentum=0.0), 0.0),
    ('momentum', dict(nesterov=True, momentum=0), 0),
])
def test_nesterov_without_momentum_is_refused(name, hparams, momentum):
  """Optax would ignore Nesterov without momentum; the registry refuses."""
  with pytest.raises(
      errors.ConfigError,
      match=rf"^optimizer\.nesterov=True \(optimizer '{name}'\) needs a "
      rf'momentum in \(0, 1\), but optimizer\.momentum is {momentum}\.$'):
    registry.create_optimizer(name, 0.1, **hparams)


def test_nesterov_needs_no_momentum_setting_in_the_adam_family():
  """Adam's Nesterov form (NAdam) has no momentum argument to check."""
  tx = registry.create_optimizer('adam', 0.1, nesterov=True)
  np.testing.assert_allclose(_trajectory(tx), _trajectory(optax.nadam(0.1)),
                             rtol=2e-5, atol=1e-7)


def test_arrays_and_schedules_pass_unchecked():
  """Traced-able values are the caller's to check: they build unchanged."""
  tx = registry.create_optimizer('adamw', jnp.array(0.1), b1=jnp.array(0.5),
                                   weight_decay=optax.constant_schedule(0.3))
  np.testing.assert_allclose(
      _trajectory(tx),
      _trajectory(optax.adamw(0.1, b1=0.5, weight_decay=0.3)), rtol=2e-5)


def test_optimizer_constructor_value_error_becomes_config_error(monkeypatch):
  """A ValueError the optimizer raises at construction is a ConfigError."""
  def strict(learning_rate, b1=0.9):
    """An optimizer that refuses every b1 as adam_optax refuses bad ones."""
    del learning_rate
    raise ValueError(f'b1={b1!r} is invalid: it must lie in [0, 1).')

  monkeypatch.setitem(registry.OPTIMIZERS, 'strict', strict)
  with pytest.raises(errors.ConfigError,
                     match=r"^Optimizer 'strict': b1=0\.5 is invalid: it must "
                     r'lie in \[0, 1\)\.$') as info:
    registry.create_optimizer('strict', 0.1, b1=0.5)
  assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize('lr', [-0.1, math.nan, math.inf, '0.1', None, True])
def test_bad_learning_rate(lr):
  """Negative, non-finite or non-number rates are refused by every path."""
  expected = (f'learning_rate={re.escape(repr(lr))} is invalid; accepted: a '
              r'finite number >= 0\.$')
  with pytest.raises(errors.ConfigError, match='^optimizer\\.' + expected):
    registry.create_optimizer('rmsprop', lr)
  with pytest.raises(errors.ConfigError, match='^' + expected):
    schedules.create_schedule('cosine', lr, 100)


@pytest.mark.parametrize('lr', [0.0, 1e6])
def test_zero_and_huge_learning_rates_are_accepted(lr):
  """A huge rate is legal (the trainer detects divergence); so is zero."""
  tx = registry.create_optimizer('sgd', lr)
  np.testing.assert_allclose(_trajectory(tx, 1)[0],
                             lr * _trajectory(optax.sgd(1.0), 1)[0],
                             rtol=1e-6)


def test_clipping_is_chained_first():
  """grad_clip_norm clips the global norm before the optimizer sees it."""
  tx = registry.create_optimizer('sgd', 1.0, grad_clip_norm=1.0)
  params = jnp.zeros(2)
  updates, _ = tx.update(jnp.array([3.0, 4.0]), tx.init(params), params)
  np.testing.assert_allclose(updates, [-0.6, -0.8], rtol=1e-6)
  # Below the norm, gradients pass unchanged.
  updates, _ = tx.update(jnp.array([0.3, 0.4]), tx.init(params), params)
  np.testing.assert_allclose(updates, [-0.3, -0.4], rtol=1e-6)


@pytest.mark.parametrize('norm', [0.0, -1.0, math.inf, math.nan, '1'])
def test_bad_clipping_norm(norm):
  """The clipping norm must be a finite number > 0."""
  with pytest.raises(errors.ConfigError,
                     match=f'^grad_clip_norm={re.escape(repr(norm))} is '
                     r'invalid; accepted: None or a finite number > 0\.$'):
    registry.create_optimizer('sgd', 1.0, grad_clip_norm=norm)


def test_from_config_reads_hyperparameters_and_schedule():
  """Config slots reach the optimizer: b1=0 makes Adam's momentum vanish."""
  config = default.get_config()
  config.optimizer.b1 = 0.0
  config.schedule = 'inverse_sqrt'
  tx = _from_config(config)
  params = jnp.zeros(2)
  state = tx.init(params)
  updates, state = tx.update(jnp.array([1.0, -1.0]), state, params)
  updates, state = tx.update(jnp.array([-1.0, 1.0]), state, params)
  # With b1 = 0 the second step follows the second gradient alone, at
  # lr / sqrt(2) from the inverse-sqrt schedule.
  np.testing.assert_allclose(updates, [5e-4 / np.sqrt(2), -5e-4 / np.sqrt(2)],
                             rtol=1e-4)


def test_from_config_applies_warmup_and_clipping():
  """A constant schedule with warm-up starts at 0; clipping comes first."""
  config = default.get_config()
  config.optimizer.name = 'sgd'
  config.optimizer.learning_rate = 1.0
  config.warmup_steps = 2
  config.grad_clip_norm = 1.0
  tx = _from_config(config)
  params = jnp.zeros(2)
  state = tx.init(params)
  steps = []
  for _ in range(3):
    updates, state = tx.update(jnp.array([3.0, 4.0]), state, params)
    steps.append(updates)
  np.testing.assert_allclose(steps, [[0, 0], [-0.3, -0.4], [-0.6, -0.8]],
                             rtol=1e-6, atol=1e-7)


def test_from_config_refuses_out_of_range_values():
  """Bad config values fail as ConfigErrors, before any training."""
  config = default.get_config()
  config.optimizer.name = 'rmsprop'
  config.optimizer.decay = 2.0
  with pytest.raises(errors.ConfigError, match=r'optimizer\.decay=2\.0'):
    _from_config(config)
  config.optimizer.decay = None
  config.schedule = 'constant'
  config.warmup_steps = 10
  with pytest.raises(errors.ConfigError, match='warmup_steps=10'):
    _from_config(config)


def test_registry_optimizers_run_under_jit():
  """Every registered optimizer's update is traceable with default values."""
  params = jnp.array([1.0, -2.0])
  for name in registry.OPTIMIZERS:
    tx = registry.create_optimizer(name, 0.1)
    updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
    assert np.all(np.isfinite(updates)), name


def _bf16_trajectory(tx, num_steps=12):
  """The bf16 parameters `tx` reaches from fixed bf16 params and gradients."""
  params = jnp.array([1.0, -2.0, 0.5], jnp.bfloat16)
  grads = jnp.array([0.3, -0.2, 0.1], jnp.bfloat16)
  state = tx.init(params)
  seen = []
  for _ in range(num_steps):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    seen.append(params.astype(jnp.float32))
  return np.stack(seen)


@pytest.mark.parametrize('rounding, last', [
    ('kahan', lowmem.kahan_compensation()),
    ('stochastic', lowmem.stochastic_rounding(7)),
])
def test_from_config_chains_the_param_rounding_last(rounding, last):
  """param_rounding appends its transform after the optimizer."""
  config = default.get_config()
  config.optimizer.name = 'sgd'
  config.optimizer.learning_rate = 2e-3
  config.seed = 7
  config.param_rounding = rounding
  ours = _bf16_trajectory(_from_config(config))
  expected = _bf16_trajectory(
      optax.chain(registry.create_optimizer('sgd', 2e-3), last))
  np.testing.assert_array_equal(ours, expected)
  # Plain bf16 rounding loses these small steps; the rounding keeps them.
  config.param_rounding = 'nearest'
  plain = _bf16_trajectory(_from_config(config))
  assert not np.array_equal(ours, plain)
  np.testing.assert_array_equal(
      plain, _bf16_trajectory(registry.create_optimizer('sgd', 2e-3)))


def test_from_config_without_param_rounding_is_the_plain_optimizer():
  """Without a param_rounding argument the parameters round to nearest."""
  config = default.get_config()
  config.optimizer.name = 'sgd'
  config.optimizer.learning_rate = 2e-3
  np.testing.assert_array_equal(
      _bf16_trajectory(registry.from_config(config.optimizer,
                                            total_steps=10)),
      _bf16_trajectory(registry.create_optimizer('sgd', 2e-3)))


def test_from_config_refuses_an_unknown_param_rounding():
  """An unknown rounding is a ConfigError listing the accepted ones."""
  config = default.get_config()
  config.param_rounding = 'floor'
  with pytest.raises(
      errors.ConfigError,
      match=r"^param_rounding='floor' is invalid; accepted: nearest, "
      r'kahan, stochastic\.$'):
    _from_config(config)
