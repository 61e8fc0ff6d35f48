"""The best recipe found: a wider CNN, Adam with warm-up + cosine, shifts, EMA.

Run:
  python main.py --config=configs/mnist_best.py --workdir=/tmp/mnist_best \
      --config.data_dir=/path/to/mnist

The seed's CNN with twice the filters (cnn_wide: 64 and 128, 227,082
parameters), our Adam at a peak rate of 2e-3 with 500 warm-up steps and a
cosine decay to zero over the 10 epochs, random shifts of up to 2 pixels
(done on the device inside the jitted step), label smoothing 0.1 and an
exponential moving average of the weights (decay 0.999) for evaluation.
Chosen among six variants by the mean validation accuracy after epoch 10
(seeds 0 and 1, the last 10,000 training images held out with
--config.validation_examples=10000), never on the test set: 99.51% and
99.55% (RESULTS.md, "A best recipe").

Measured (2-core CPU, jax 0.10.2; about 26 s per epoch): test accuracy after
epoch 10 on all 60,000 training images: 99.56% (seed 0), 99.52% (seed 1),
99.54% (seed 2), mean 99.540%.
"""

from configs import default


def get_config():
  """The seed recipe widened, scheduled, augmented, smoothed and averaged."""
  config = default.get_config()
  config.num_epochs = 10
  config.model = 'cnn_wide'
  config.optimizer.learning_rate = 2e-3
  config.schedule = 'warmup_cosine'
  config.warmup_steps = 500
  config.augment_shift = 2
  config.label_smoothing = 0.1
  config.ema_decay = 0.999
  return config
