"""Optimizers and learning-rate schedules, with PyTorch's names and update rules.

  optimizer.py      Optimizer: param_groups, state, zero_grad, state_dict / load_state_dict;
                    ElementwiseOptimizer: the per-parameter loop Adam & co. share
  sgd.py            SGD (momentum, dampening, weight decay, Nesterov)
  adam.py           Adam (amsgrad, maximize) and AdamW (decoupled weight decay)
  rmsprop.py        RMSprop (momentum, centered)
  adagrad.py        Adagrad (lr_decay, initial accumulator)
  adadelta.py       Adadelta
  lr_scheduler.py   StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LambdaLR, LinearLR,
                    OneCycleLR, SequentialLR, ReduceLROnPlateau

Each optimizer module holds its update rule as ``<name>_update_reference(p, g, ...)``,
the NumPy statement a fused kernel (``kernels/optim_numba.py``, ``optim.cu``) must match.
"""
from . import lr_scheduler  # noqa: F401
from .adadelta import Adadelta, adadelta_update_reference  # noqa: F401
from .adagrad import Adagrad, adagrad_update_reference  # noqa: F401
from .adam import Adam, AdamW, adam_update_reference  # noqa: F401
from .optimizer import Optimizer  # noqa: F401
from .rmsprop import RMSprop, rmsprop_update_reference  # noqa: F401
from .sgd import SGD, sgd_update_reference  # noqa: F401
