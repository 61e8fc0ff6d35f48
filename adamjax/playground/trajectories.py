"""Optimizer trajectories on a 2-D problem: one jitted JAX loop, no plotting.

The optimizers are the registry's (registry.OPTIMIZERS), wrapped in
`optax.inject_hyperparams` so that every numeric hyperparameter (the learning
rate, b1, b2, eps, momentum, ...) lives in the optimizer state as a traced
value. One compilation therefore serves every value of those knobs: the web
page redraws a slider move without recompiling, and a learning-rate sweep is
one vmapped computation. Only the structure is static (which optimizers, their
boolean options such as nesterov or amsgrad, the step cap), so it is the key
of the compilation cache.

The number of steps is traced too: the loop runs `num_steps` iterations into
buffers sized for `max_steps`, so asking for fewer steps is cheaper and does
not recompile.
"""

import functools
import inspect
from typing import Any, NamedTuple

import jax
from jax import lax
import jax.numpy as jnp
import optax

from adamjax.common import checks
from adamjax.optim import registry
from adamjax.playground import problems


class Spec(NamedTuple):
  """The static part of one optimizer: its name and non-numeric options.

  Attributes:
    name: a key of registry.OPTIMIZERS.
    options: sorted (hyperparameter, value) pairs whose values are not
      numbers (booleans such as nesterov, dtypes); they change the program.
  """

  name: str
  options: tuple[tuple[str, Any], ...] = ()


def numeric_defaults(name: str) -> dict[str, float]:
  """The numeric hyperparameters of optimizer `name` and their defaults.

  Args:
    name: a key of registry.OPTIMIZERS.

  Returns:
    {hyperparameter: default} for every hyperparameter (besides the learning
    rate) whose default is a number; these are traced, not compiled in.
  """
  params = inspect.signature(registry.OPTIMIZERS[name]).parameters
  return {k: float(params[k].default) for k in registry.hyperparameters(name)
          if checks.is_real(params[k].default)}


def split(name: str, learning_rate: float,
          hparams: dict[str, Any]) -> tuple[Spec, dict[str, float]]:
  """Splits one optimizer's settings into its static Spec and traced numbers.

  Args:
    name: a key of registry.OPTIMIZERS.
    learning_rate: the learning rate.
    hparams: the hyperparameters set (None: the optimizer's default).

  Returns:
    (spec, numbers): numbers maps 'learning_rate' and every numeric
    hyperparameter (set or default) to a float, so the traced inputs have
    the same structure whichever of them the user set.
  """
  numbers = {'learning_rate': float(learning_rate), **numeric_defaults(name)}
  options = {}
  for key, value in hparams.items():
    if value is None:
      continue
    if checks.is_real(value):  # Traced; bools are options.
      numbers[key] = float(value)
    else:
      options[key] = value
  return Spec(name, tuple(sorted(options.items()))), numbers


def _static_args(name: str) -> tuple[str, ...]:
  """Arguments with an integer default (e.g. adam8bit's block_size)."""
  # They fix array shapes; inject_hyperparams would otherwise trace every
  # numeric argument, defaults included.
  params = inspect.signature(registry.OPTIMIZERS[name]).parameters
  return tuple(k for k, p in params.items() if checks.is_int(p.default))


def _factory(spec: Spec):
  """The registry optimizer with its options bound and numbers injected."""
  return optax.inject_hyperparams(
      functools.partial(registry.OPTIMIZERS[spec.name], **dict(spec.options)),
      static_args=_static_args(spec.name))


@functools.partial(jax.jit, static_argnames=('loss', 'specs', 'max_steps'))
def trajectories(
    start: jax.Array,
    hparams: tuple[dict[str, jax.Array], ...],
    num_steps: jax.Array,
    *,
    loss: problems.Loss,
    specs: tuple[Spec, ...],
    max_steps: int,
) -> tuple[tuple[jax.Array, jax.Array], ...]:
  """Runs each optimizer from `start` for `num_steps` steps.

  The point is one array of shape (2,), so an optimizer keeps its moments per
  coordinate, as it does for every element of every pytree leaf: x moves by
  its own m_x / sqrt(v_x) and y by m_y / sqrt(v_y).

  Args:
    start: (2,) the start point.
    hparams: one dict per spec, {hyperparameter: (n,) values}, the numbers
      from `split` stacked over that spec's n runs (vmapped).
    num_steps: the number of steps to take, 0 <= num_steps <= max_steps
      (traced: changing it does not recompile).
    loss: the function to minimize, point (2,) -> scalar.
    specs: the optimizers' static parts, one per entry of hparams.
    max_steps: the size of the output buffers.

  Returns:
    One (points, losses) pair per spec: (n, max_steps + 1, 2) and
    (n, max_steps + 1), the start first; entries past num_steps are NaN.
  """
  grad_fn = jax.grad(loss)
  start = jnp.asarray(start, jnp.float32)

  def init(spec, numbers):
    """The state of one run, its hyperparameters stored in it (traced)."""
    return _factory(spec)(**numbers).init(start)

  def stepper(spec, numbers):
    """A vmapped step; `update` reads the hyperparameters from the state."""
    # The factory's own arguments are ignored by inject_hyperparams' update
    # (it uses state.hyperparams), so any one run's values build it.
    tx = _factory(spec)(**{k: v[0] for k, v in numbers.items()})

    def step(params, state):
      """One optimizer step of one run; returns the new point and state."""
      updates, state = tx.update(grad_fn(params), state, params)
      return optax.apply_updates(params, updates), state

    return jax.vmap(step)

  carry = []
  steppers = []
  for spec, numbers in zip(specs, hparams):
    n = len(next(iter(numbers.values())))
    points = jnp.full((n, max_steps + 1, 2), jnp.nan, jnp.float32)
    points = points.at[:, 0].set(start)
    losses = jnp.full((n, max_steps + 1), jnp.nan, jnp.float32)
    losses = losses.at[:, 0].set(loss(start))
    states = jax.vmap(functools.partial(init, spec))(numbers)
    carry.append((jnp.tile(start, (n, 1)), states, points, losses))
    steppers.append(stepper(spec, numbers))

  def body(i, carry):
    """Step i + 1 of every run, written into the buffers."""
    new = []
    for step, (params, states, points, losses) in zip(steppers, carry):
      params, states = step(params, states)
      points = lax.dynamic_update_index_in_dim(points, params, i + 1, axis=1)
      losses = lax.dynamic_update_index_in_dim(
          losses, jax.vmap(loss)(params), i + 1, axis=1)
      new.append((params, states, points, losses))
    return new

  carry = lax.fori_loop(0, num_steps, body, carry)
  return tuple((points, losses) for _, _, points, losses in carry)


def compiled_programs() -> int:
  """How many programs `trajectories` has compiled so far (its jit cache).

  The web page reports whether a redraw compiled, and the tests check that a
  knob change does not; jax.jit exposes the count only as `_cache_size`.
  """
  return trajectories._cache_size()  # pylint: disable=protected-access
