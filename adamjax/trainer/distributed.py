"""Data parallelism on JAX's SPMD machinery: processes, the mesh, placement.

All processes' devices form one mesh axis, 'data'. The state is replicated
(or its optimizer state split, ZeRO-1 style), every global batch is split
along 'data' and each process feeds only its own rows; XLA inserts the
gradient all-reduce. Mesh axes are AxisType.Auto, not jax.make_mesh's
Explicit default, so XLA picks the inner shardings from those at the edges
and the single-device code runs unchanged.
"""

from typing import Any, Optional

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np

from adamjax.common import checks
from adamjax.common import errors

DATA_AXIS = 'data'
# coordinator_address=auto: JAX reads the coordinator, process count and id
# from the cluster scheduler (SLURM, Open MPI, Kubernetes, Cloud TPU).
AUTO = 'auto'


def _wants_processes(config: ml_collections.ConfigDict) -> bool:
  """Whether the config asks for a multi-process run."""
  return (config.get('coordinator_address') is not None or
          (config.get('num_processes') or 1) > 1)


def initialize(config: ml_collections.ConfigDict) -> None:
  """Joins the processes of a multi-process run; a no-op for one process.

  Must run before anything touches a device. On CPU the collectives go over
  TCP through gloo.

  Args:
    config: reads coordinator_address ('host:port', 'auto' or None),
      num_processes and process_id.

  Raises:
    errors.ConfigError: on inconsistent or out-of-range fields.
  """
  if not _wants_processes(config):
    if config.get('process_id') not in (None, 0):
      raise errors.ConfigError(
          f'config.process_id={config.process_id!r} needs '
          'config.num_processes > 1 and config.coordinator_address.')
    return
  address = config.get('coordinator_address')
  count, index = config.get('num_processes'), config.get('process_id')
  if address is None:
    raise errors.ConfigError(
        f'config.num_processes={count} needs config.coordinator_address: '
        "'host:port' of process 0, or 'auto' on a cluster scheduler.")
  if address != AUTO:
    host, _, port = address.rpartition(':')
    if not host or not port.isdigit():
      checks.fail('config.coordinator_address', address,
                  "'host:port' (process 0's address and a free port) or "
                  "'auto'")
    for name, value, low in (('num_processes', count, 1),
                             ('process_id', index, 0)):
      if not (checks.is_int(value) and value >= low):
        checks.fail(f'config.{name}', value, f'an integer >= {low} (required '
                    'with a coordinator_address other than auto)')
    if index >= count:
      checks.fail('config.process_id', index,
                  f'0 to config.num_processes - 1 = {count - 1}')
  if jax.distributed.is_initialized():
    return
  jax.distributed.initialize(
      coordinator_address=None if address == AUTO else address,
      num_processes=count, process_id=index)


def make_mesh(num_devices: Optional[int] = None) -> Mesh:
  """A one-axis ('data') mesh of num_devices local devices per process.

  Args:
    num_devices: devices each process lends; None: all its local devices.

  Returns:
    The mesh over every process's devices, ordered by process, so that each
    process holds one contiguous block of every batch.

  Raises:
    errors.ConfigError: if num_devices is not in 1..jax.local_device_count().
  """
  local = jax.local_device_count()
  if num_devices is None:
    num_devices = local
  if not (checks.is_int(num_devices) and 1 <= num_devices <= local):
    checks.fail('config.num_devices', num_devices,
                f'None (all) or 1 to {local} (the {jax.default_backend()} '
                'devices of this process)')
  by_process = {}
  for device in sorted(jax.devices(), key=lambda d: (d.process_index, d.id)):
    by_process.setdefault(device.process_index, []).append(device)
  devices = [d for p in sorted(by_process) for d in by_process[p][:num_devices]]
  return jax.make_mesh((len(devices),), (DATA_AXIS,),
                       axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  """A full copy on every device of the mesh."""
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, axis: int = 0) -> NamedSharding:
  """Dimension `axis` split along 'data'; the other dimensions whole."""
  return NamedSharding(mesh, P(*([None] * axis), DATA_AXIS))


def _split_one_axis(leaf: Any, mesh: Mesh) -> NamedSharding:
  """`leaf` split along 'data' on its largest dimension the mesh divides."""
  shape = getattr(leaf, 'shape', ())
  fits = [(size, axis) for axis, size in enumerate(shape)
          if size % mesh.size == 0 and size >= mesh.size]
  if mesh.size == 1 or not fits:
    return replicated(mesh)
  _, axis = max(fits)
  return batch_sharding(mesh, axis)


def state_shardings(state: Any, mesh: Mesh,
                    shard_optimizer_state: bool = False) -> Any:
  """Where each array of a TrainState lives on the mesh.

  Args:
    state: a TrainState (anything with an `opt_state` field).
    mesh: the mesh.
    shard_optimizer_state: split each optimizer-state array along 'data' on
      its largest dimension the device count divides (ZeRO-1); the rest,
      such as step counts, stays replicated.

  Returns:
    A pytree of NamedShardings with the structure of `state`.
  """
  shardings = jax.tree.map(lambda _: replicated(mesh), state)
  if shard_optimizer_state:
    shardings = shardings.replace(opt_state=jax.tree.map(
        lambda leaf: _split_one_axis(leaf, mesh), state.opt_state))
  return shardings


def mesh_of(tree: Any) -> Optional[Mesh]:
  """The mesh the first array of `tree` is placed on (None if none)."""
  for leaf in jax.tree.leaves(tree):
    sharding = getattr(leaf, 'sharding', None)
    if isinstance(sharding, NamedSharding):
      return sharding.mesh
  return None


def place(tree: Any, sharding: Any) -> Any:
  """Places a value every process holds whole as global arrays on the mesh.

  Each process copies only the pieces its own devices hold. Works from
  NumPy arrays and from single-device or fully replicated jax.Arrays.

  Args:
    tree: a pytree of arrays, identical on every process.
    sharding: one NamedSharding for every leaf, or a pytree of them with the
      structure of `tree`.
  """

  def put(leaf, leaf_sharding):
    """One leaf as a global array."""
    value = np.asarray(leaf)
    return jax.make_array_from_callback(value.shape, leaf_sharding,
                                        lambda index: value[index])

  if isinstance(sharding, NamedSharding):
    return jax.tree.map(lambda leaf: put(leaf, sharding), tree)
  return jax.tree.map(put, tree, sharding)


def local_rows(mesh: Mesh, num_rows: int) -> slice:
  """The rows of a num_rows batch (split along 'data') this process holds."""
  indices = batch_sharding(mesh).addressable_devices_indices_map((num_rows,))
  starts = sorted(index[0].indices(num_rows)[:2] for index in indices.values())
  # make_mesh orders devices by process, so a process's rows are contiguous.
  for (_, stop), (start, _) in zip(starts, starts[1:]):
    assert stop == start, f'rows {starts} of this process are not contiguous'
  return slice(starts[0][0], starts[-1][1])


def feed(tree: Any, mesh: Optional[Mesh], axis: int = 0) -> Any:
  """Global arrays split along 'data' at `axis`, from each process's rows.

  Every process passes the same values and hands JAX only its own block, as
  a data loader reading only its shard would.

  Args:
    tree: a pytree of host arrays.
    mesh: the mesh; None returns plain arrays on the default device.
    axis: the batch dimension.
  """
  if mesh is None:
    return jax.tree.map(jax.numpy.asarray, tree)
  sharding = batch_sharding(mesh, axis)

  def put(leaf):
    """One leaf's process-local block, assembled into the global array."""
    value = np.asarray(leaf)
    rows = local_rows(mesh, value.shape[axis])
    local = value[(slice(None),) * axis + (rows,)]
    return jax.make_array_from_process_local_data(sharding, local, value.shape)

  return jax.tree.map(put, tree)
