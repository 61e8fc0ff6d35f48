"""Tests for the one config schema (adamjax/schema.py)."""

import importlib.util
import os

import ml_collections
import pytest

from adamjax import schema
from adamjax.common import errors
from adamjax.optim import registry
from conftest import ROOT

CONFIG_FILES = sorted(
    name for name in os.listdir(os.path.join(ROOT, 'configs'))
    if name.endswith('.py') and name != '__init__.py')


def load(name):
  """configs/`name`'s get_config()."""
  spec = importlib.util.spec_from_file_location(
      'c_' + name[:-3], os.path.join(ROOT, 'configs', name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.mark.parametrize('task', sorted(schema.TASKS))
def test_defaults_pass_their_own_checks(task):
  """Every task's default config is valid and has every field."""
  config = schema.default_config(task)
  schema.validate(config)
  assert set(schema.fields(task)) == set(schema.flatten(config))


@pytest.mark.parametrize('name', CONFIG_FILES)
def test_every_shipped_config_is_valid(name):
  """Each config file in configs/ passes the schema unchanged."""
  schema.validate(load(name))


def test_optimizer_slots_are_the_registry_hyperparameters():
  """The optimizer group has a slot per settable hyperparameter, typed."""
  config = schema.default_config('classify')
  assert set(config.optimizer) == {'name', 'learning_rate',
                                   *registry.HYPERPARAMETERS}
  config.optimizer.b1 = 0.5
  with pytest.raises(TypeError):
    config.optimizer.b1 = 'high'  # The placeholder keeps its float type.


def test_comparison_defaults_cover_the_whole_registry():
  """One list of optimizer names: the registry's, in every comparison slot."""
  config = schema.default_config('compare')
  assert config.optimizers == tuple(registry.OPTIMIZERS)
  assert set(config.learning_rates) == set(registry.OPTIMIZERS)


@pytest.mark.parametrize('task, field, value, named, fragment', [
    ('classify', 'seed', -1, 'seed=-1', 'an integer in [0, 4294967295]'),
    ('classify', 'batch_size', 0, 'batch_size=0', 'an integer >= 1'),
    ('classify', 'label_smoothing', 1.5, 'label_smoothing=1.5',
     'a finite number in [0, 1]'),
    ('classify', 'dropout_rate', 1.0, 'dropout_rate=1.0',
     'None or a finite number in [0, 1)'),
    ('classify', 'model', 'resnet', "model='resnet'",
     'cnn, cnn_wide, cnn_fast, mlp, logreg'),
    ('classify', 'schedule', 'linear', "schedule='linear'", 'constant, cosine'),
    ('classify', 'param_dtype', 'int8', "param_dtype='int8'",
     'float32, bfloat16, float16'),
    ('classify', 'optimizer.name', 'adamm', "optimizer.name='adamm'",
     'adam, adamw'),
    ('classify', 'optimizer.learning_rate', -1.0,
     'optimizer.learning_rate=-1.0', 'a finite number >= 0'),
    ('classify', 'grad_clip_norm', 0.0, 'grad_clip_norm=0.0',
     'None or a finite number > 0'),
    ('compare', 'seeds', (0, 0), 'seeds=(0, 0)', 'each entry once'),
    ('compare', 'seeds', (), 'seeds=()', 'a non-empty tuple'),
    ('compare', 'optimizers', ('adam', 'adamm'), "optimizers[1]='adamm'",
     'adam, adamw'),
    ('compare', 'learning_rates.sgd', 0.0, 'learning_rates.sgd=0.0',
     'None or a finite number > 0'),
    ('compare', 'lr_search_factors', (1.0, -3.0), 'lr_search_factors[1]=-3.0',
     'a finite number > 0'),
    ('compare', 'target_accuracy', 1.5, 'target_accuracy=1.5', '<= 1'),
    ('compare', 'metric', 'loss', "metric='loss'", 'accuracy, elbo'),
    ('compare', 'lr_search_metric', 'accuracy', "lr_search_metric='accuracy'",
     'val_accuracy, val_loss'),
    ('vae_grid', 'b2s', (0.99, 1.0), 'b2s[1]=1.0', 'a finite number in [0, 1)'),
    ('vae_grid', 'bias_corrections', (True, 'no'), "bias_corrections[1]='no'",
     'True or False'),
    ('playground_web', 'port', 70000, 'port=70000', 'in [0, 65535]'),
    ('playground', 'dpi', 5, 'dpi=5', 'in [10, 300]'),
])
def test_bad_values_are_named_with_what_is_accepted(task, field, value, named,
                                                    fragment):
  """A bad value: one line with the dotted field, its value, the range."""
  config = schema.default_config(task)
  *groups, leaf = field.split('.')
  node = config
  for group in groups:
    node = node[group]
  node[leaf] = value
  with pytest.raises(errors.ConfigError) as info:
    schema.validate(config)
  message = str(info.value)
  assert message.startswith(f'config.{named} is invalid; accepted: '), message
  assert fragment in message and '\n' not in message


def test_unknown_and_missing_fields_are_refused():
  """A field the task does not have, or lacks, is named."""
  config = schema.default_config('classify')
  config.optimizers = ('adam',)  # A comparison field in a training config.
  with pytest.raises(errors.ConfigError,
                     match=r"^config\.optimizers is not a field of task "
                     r"'classify'"):
    schema.validate(config)
  config = schema.default_config('classify')
  del config['seed']
  with pytest.raises(errors.ConfigError, match=r'^config\.seed is missing'):
    schema.validate(config)
  config = ml_collections.ConfigDict({'task': 'train'})
  with pytest.raises(errors.ConfigError,
                     match=r"^config\.task='train' is invalid; accepted: "
                     'classify, compare'):
    schema.validate(config)


@pytest.mark.parametrize('task', sorted(schema.TASKS))
def test_describe_explains_every_field(task):
  """--show_config's text: each field, its value and its own help line."""
  text = schema.describe(schema.default_config(task))
  lines = text.splitlines()
  assert len(lines) == 2 * len(schema.fields(task))
  assert 'no description' not in text
  assert f"task = '{task}'" in lines
