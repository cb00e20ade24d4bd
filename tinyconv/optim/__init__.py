"""Optimizers and learning-rate schedules, with PyTorch's names and update rules.

  optimizer.py      Optimizer: param_groups, state, zero_grad, state_dict / load_state_dict
  sgd.py            SGD (momentum, dampening, weight decay, Nesterov) and the one-parameter
                    update ``sgd_update_reference`` that a fused kernel may replace
  lr_scheduler.py   StepLR, ReduceLROnPlateau
"""
from . import lr_scheduler  # noqa: F401
from .optimizer import Optimizer  # noqa: F401
from .sgd import SGD, sgd_update_reference  # noqa: F401
