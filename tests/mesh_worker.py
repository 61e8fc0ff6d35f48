"""Runs the trainer on simulated CPU devices, for tests/test_multidevice.py.

  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
      python tests/mesh_worker.py OUT_DIR DATA_DIR

In a process of its own (the device count is fixed when JAX starts), so the
rest of the test suite keeps its single device. Writes OUT_DIR/result.json
and, for each mesh size n in MESH_SIZES, OUT_DIR/n/ (a full run's workdir)
and OUT_DIR/params_n.npz (its final parameters); the same for the run on 4
devices with the optimizer state split over them, as n = '4_sharded'.
"""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from configs import default  # pylint: disable=g-import-not-at-top,wrong-import-position
import adam_optax  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax.trainer import distributed  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax.common import errors  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax.data import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from adamjax.trainer import evaluation
from adamjax.trainer import objective
from adamjax.trainer import setup
from adamjax.trainer import train_state
import train  # pylint: disable=g-import-not-at-top,wrong-import-position

MESH_SIZES = (2, 4)


def tiny_config(data_dir, **overrides):
  """The seed recipe on the tiny dataset: 2 epochs of 8 steps of batch 32."""
  config = default.get_config()
  config.data_dir = data_dir
  config.num_epochs = 2
  config.batch_size = 32
  config.eval_batch_size = 50
  config.optimizer.learning_rate = 1e-3
  config.progress_bar = False
  config.checkpoint_every_steps = 5
  config.update(overrides)
  return config


def flat_params(params):
  """{'Conv_0/kernel': array, ...} on the host."""
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(params)}


def device_bytes(tree, device):
  """Bytes of `tree`'s arrays held on `device`."""
  return sum(shard.data.nbytes for leaf in jax.tree.leaves(tree)
             for shard in leaf.addressable_shards if shard.device == device)


def train_on_meshes(out_dir, data_dir):
  """Trains the tiny recipe on each mesh size; saves params and metrics.

  Returns:
    Per run: the optimizer state's bytes on the first device, and the
    PartitionSpecs of its arrays.
  """
  runs = {}
  for n, sharded in [(n, False) for n in MESH_SIZES] + [(4, True)]:
    name = f'{n}_sharded' if sharded else str(n)
    state = train.train_and_evaluate(
        tiny_config(data_dir, num_devices=n, shard_optimizer_state=sharded),
        os.path.join(out_dir, name))
    mesh = distributed.mesh_of(state)
    assert mesh.size == n
    np.savez(os.path.join(out_dir, f'params_{name}.npz'),
             **flat_params(state.params))
    runs[name] = {
        'optimizer_bytes_per_device': device_bytes(state.opt_state,
                                                   mesh.devices.flat[0]),
        'param_bytes_per_device': device_bytes(state.params,
                                               mesh.devices.flat[0]),
        'specs': sorted({str(leaf.sharding.spec)
                         for leaf in jax.tree.leaves(state.opt_state)})}
  return runs


def check_evaluation():
  """Evaluates 23 examples on the 4-device mesh at several batch sizes.

  Returns:
    Per batch size: the sharded result, the number of unmasked examples the
    eval steps saw, the devices each batch was split over; and the exact
    full-set values computed on one device without a mesh.
  """
  rng = np.random.default_rng(2)
  split = input_pipeline.Split(
      rng.integers(0, 256, (23, 28, 28, 1), np.uint8),
      rng.integers(0, 10, 23).astype(np.int32))
  state = train_state.create_train_state(jax.random.key(0), models.CNN(),
                                   adam_optax.adam(1e-3), (28, 28, 1))
  losses, logits = objective.loss_and_logits(state.params, state.apply_fn,
                                         jnp.asarray(split.images),
                                         jnp.asarray(split.labels))
  exact = {'loss': float(np.mean(np.asarray(losses, np.float64))),
           'accuracy': float(np.mean(np.argmax(np.asarray(logits), -1) ==
                                     split.labels))}
  mesh = distributed.make_mesh()
  state = distributed.place(state, distributed.replicated(mesh))
  original, seen = evaluation.eval_step, {}

  def recording_eval_step(state, images, labels, mask, kind='classify'):
    """Records how many examples each batch counts and where it lives."""
    seen['counted'] += int(np.asarray(mask).sum())
    seen['shards'].add(len(images.sharding.device_set))
    seen['spec'] = str(images.sharding.spec)
    return original(state, images, labels, mask, kind=kind)

  evaluation.eval_step = recording_eval_step
  results = {}
  for batch_size in (5, 23, 64):
    seen.update(counted=0, shards=set())
    result = evaluation.evaluate(state, split, batch_size)
    results[batch_size] = dict(result, counted=seen['counted'],
                               shards=sorted(seen['shards']), spec=seen['spec'])
  evaluation.eval_step = original
  return {'exact': exact, 'sharded': results}


def refusals(data_dir, out_dir):
  """The messages of configs the mesh cannot run."""
  messages = {}
  for name, overrides in (('batch_30', {'batch_size': 30}),
                          ('num_devices_5', {'num_devices': 5}),
                          ('grad_chunks_16', {'grad_chunks': 16})):
    try:
      setup.setup(tiny_config(data_dir, **overrides),
                  os.path.join(out_dir, 'refused', name))
    except errors.ConfigError as e:
      messages[name] = str(e)
    else:
      messages[name] = None
  return messages


def main():
  """Runs every check and writes OUT_DIR/result.json."""
  out_dir, data_dir = sys.argv[1], sys.argv[2]
  os.makedirs(out_dir, exist_ok=True)
  result = {'devices': jax.device_count(),
            'evaluation': check_evaluation(),
            'refusals': refusals(data_dir, out_dir)}
  result['runs'] = train_on_meshes(out_dir, data_dir)
  with open(os.path.join(out_dir, 'result.json'), 'w') as f:
    json.dump(result, f, indent=1)


if __name__ == '__main__':
  main()
