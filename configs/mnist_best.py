"""The best recipe found for the seed's CNN: Adam, warm-up + cosine, shifts, EMA.

Run:
  python main.py --config=configs/mnist_best.py --workdir=/tmp/mnist_best \
      --config.data_dir=/path/to/mnist

The seed's CNN unchanged (62,346 parameters), our Adam at a peak rate of 2e-3
with 500 warm-up steps and a cosine decay to zero over the 10 epochs, random
shifts of up to 2 pixels (done on the device inside the jitted step) and an
exponential moving average of the weights (decay 0.999) for evaluation.
Every choice was checked on a validation split (the last 10,000 training
images held out: --config.validation_examples=10000), never on the test set.

Measured (2-core CPU, jax 0.10.2; RESULTS.md, "A best recipe"): validation
accuracy 99.49% after epoch 10 (seed 0, 10,000 held out); test accuracy after
epoch 10 on all 60,000 training images: 99.43% (seed 0), 99.54% (seed 1),
99.52% (seed 2), mean 99.497%, just short of 99.5%.
"""

from configs import default


def get_config():
  """The seed recipe with a schedule, augmentation and weight averaging."""
  config = default.get_config()
  config.num_epochs = 10
  config.optimizer.learning_rate = 2e-3
  config.schedule = 'warmup_cosine'
  config.warmup_steps = 500
  config.augment_shift = 2
  config.ema_decay = 0.999
  return config
