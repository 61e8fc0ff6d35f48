"""One line of meaning for every config field, for `main.py --show_config`.

Keys are dotted field names; a key ending in '.*' covers a whole group.
"""

HELP = {
    'task': 'what main.py runs: classify (train a model), compare '
            '(optimizers side by side), playground (2-D optimizer paths), '
            'playground_web (the same in the browser), vae_grid (Kingma & Ba '
            '6.4)',
    'dataset': 'mnist or fashion_mnist (TFDS name, also checked against '
               'data_dir\'s files)',
    'data_dir': 'folder with the four IDX files (plain or .gz); None '
                'downloads through TFDS',
    'num_epochs': 'epochs to train; raising it continues a finished run',
    'batch_size': 'training examples per optimizer step (the global batch)',
    'eval_batch_size': 'examples per evaluation forward pass (any size gives '
                       'the same exact result)',
    'steps_per_dispatch': 'optimizer steps per jitted call (same math, fewer '
                          'dispatches)',
    'grad_chunks': 'independent gradient chunks per batch (CPU speed); None '
                   'picks per backend',
    'seed': 'seed of the initial parameters and the data order, 0..2**32-1',
    'model': 'the model (models.MODELS): cnn, cnn_wide, mlp, logreg',
    'dropout_rate': 'dropout rate of the model\'s dropout layers; None: the '
                    'model\'s default',
    'label_smoothing': 'target mass spread uniformly over the classes, in '
                       '[0, 1]',
    'l2': 'L2 penalty l2/2*sum(w^2) added to the training loss, >= 0',
    'augment_shift': 'shift training images by up to this many pixels (on '
                     'the device)',
    'ema_decay': 'evaluate an exponential moving average of the weights with '
                 'this decay; None: off',
    'validation_examples': 'hold out the last N training examples and '
                           'evaluate on them instead of the test split',
    'param_dtype': 'storage dtype of the parameters: float32, bfloat16, '
                   'float16 (compute stays float32)',
    'param_rounding': 'how low-precision parameters take their updates: '
                      'nearest, kahan (compensated), stochastic',
    'optimizer.name': 'a name from the optimizer registry (registry.py)',
    'optimizer.learning_rate': 'the base (peak) learning rate, >= 0',
    'optimizer.b1': 'Adam family: decay of the first moment, in [0, 1)',
    'optimizer.b2': 'Adam family: decay of the second moment, in [0, 1)',
    'optimizer.eps': 'Adam family and RMSProp: added to the denominator, >= 0',
    'optimizer.eps_root': 'Adam family: added inside the square root, >= 0',
    'optimizer.weight_decay': 'decoupled weight decay (adamw, nadamw), >= 0',
    'optimizer.momentum': 'momentum of sgd/rmsprop, in [0, 1)',
    'optimizer.decay': 'rmsprop: decay of the squared-gradient average, in '
                       '[0, 1]',
    'optimizer.rho': 'adadelta: decay of the averages, in [0, 1]',
    'optimizer.initial_accumulator_value': 'adagrad: starting accumulator, '
                                           '>= 0',
    'optimizer.initial_scale': 'rmsprop: starting squared-gradient average',
    'optimizer.nesterov': 'use the Nesterov form of momentum (sgd, nadam)',
    'optimizer.amsgrad': 'Adam: keep the running maximum of the second moment',
    'optimizer.centered': 'rmsprop: divide by the centred variance',
    'optimizer.bias_correction_mu': 'Adam: divide the first moment by '
                                    '1 - b1^t (the paper\'s correction)',
    'optimizer.bias_correction_nu': 'Adam: divide the second moment by '
                                    '1 - b2^t (the paper\'s correction)',
    'optimizer.mu_dtype': 'storage dtype of the first moment (e.g. bfloat16)',
    'optimizer.nu_dtype': 'storage dtype of the second moment',
    'schedule': 'learning-rate schedule: constant, cosine, warmup_cosine, '
                'inverse_sqrt',
    'warmup_steps': 'linear warm-up steps at the start of the schedule',
    'grad_clip_norm': 'clip gradients to this global norm first; None: no '
                      'clipping',
    'progress_bar': 'show a tqdm bar on a terminal',
    'checkpoint_every_steps': 'save a checkpoint every this many steps; None: '
                              'at the end of each epoch only',
    'keep_checkpoints': 'how many of the newest checkpoints to keep',
    'restart': 'move an existing run in the workdir aside and start afresh',
    'log_every_steps': 'write the train loss to TensorBoard every this many '
                       'steps (0: never)',
    'progress_every_s': 'log a progress line (step, loss, images/s) at most '
                        'this often, in seconds',
    'num_devices': 'devices per process the global batch is split over; '
                   'None: all local devices',
    'coordinator_address': 'several processes: process 0\'s host:port, or '
                           'auto on a cluster scheduler; None: one process',
    'num_processes': 'several processes: how many take part (with '
                     'coordinator_address)',
    'process_id': 'several processes: this one\'s id, 0 to num_processes - 1',
    'shard_optimizer_state': 'split the optimizer state over the devices '
                             '(ZeRO-1) instead of a copy on each',
    'learning_rates.*': 'compare: this optimizer\'s fixed learning rate; None: '
                        'searched (lr_search) or compare.DEFAULT_LEARNING_RATES',
    'seeds': 'compare: one run per optimizer and seed; figures show the mean '
             'and spread',
    'target_accuracy': 'compare: the table\'s epoch and time to first reach '
                       'this test accuracy',
    'lr_search': 'compare: pick each unset rate on a validation split first',
    'lr_search_factors': 'compare: the search grid, multiples of each '
                         'optimizer\'s default rate',
    'lr_search_epochs': 'compare: epochs per search run',
    'lr_search_validation_examples': 'compare: training examples held out to '
                                     'score the search (never the test split)',
    'lr_search_metric': 'compare: what picks the searched rate: val_accuracy, '
                        'val_loss or train_loss (the paper\'s rule)',
    'loss_smoothing': 'compare: EMA weight of the smoothed loss curve, in '
                      '[0, 1)',
    'report_only': 'compare: train nothing; write figures and tables from the '
                   'runs already in the workdir',
    # The 2-D playground (configs/quadratic.py, configs/playground_web.py).
    'problem': '2-D test function: quadratic, ill_conditioned, rosenbrock, '
               'beale, saddle',
    'start': 'start point (x, y); None: the problem\'s default',
    'learning_rates': 'playground: run the optimizer at each of these rates '
                      '(vmapped), one panel per rate',
    'compare': 'playground: run every registry optimizer (or '
               'compare_optimizers) from the same start',
    'compare_optimizers': 'playground: the optimizers to compare; (): all',
    'compare_learning_rates.*': 'playground: this optimizer\'s own learning '
                                'rate in a comparison; None: '
                                'optimizer.learning_rate',
    'tolerance': 'a path stops at its first step with loss below this',
    'max_steps': 'playground: the most steps a path takes',
    'dpi': 'resolution of the figures, 10..300',
    'animate': 'playground: also write an animated GIF of the paths',
    'host': 'web playground: address to serve on (127.0.0.1: this machine '
            'only)',
    'port': 'web playground: port to serve on; 0 picks a free one',
    'optimizers': 'the registry optimizers to run, e.g. (\'adam\', \'sgd\')',
    'learning_rate': 'web playground: the first page\'s learning rate',
    'steps': 'web playground: the first page\'s number of steps (<= 10,000)',
    # The Kingma & Ba section 6.4 grid (configs/kingma_ba_vae.py, vae_grid.py).
    'train_examples': 'vae_grid: train on the first N training examples; '
                      'None: all of them',
    'hidden': 'vae_grid: softplus units in the VAE\'s hidden layers',
    'latent': 'vae_grid: dimensions of the VAE\'s latent variable',
    'eps': 'vae_grid: Adam\'s epsilon, >= 0',
    'bias_corrections': 'vae_grid: Adam variants to run: True (bias-corrected'
                        ' moments), False (uncorrected)',
    'b1s': 'vae_grid: Adam first-moment decays of the grid, each in [0, 1)',
    'b2s': 'vae_grid: Adam second-moment decays of the grid, each in [0, 1)',
    'log10_learning_rates': 'vae_grid: log10 of the grid\'s learning rates '
                            '(one vmapped run each)',
}


def describe(name: str) -> str:
  """The help line for dotted field `name` (or its group's)."""
  if name in HELP:
    return HELP[name]
  parts = name.split('.')
  for i in range(len(parts) - 1, 0, -1):
    group = '.'.join(parts[:i]) + '.*'
    if group in HELP:
      return HELP[group]
  return '(no description: see the config file)'
