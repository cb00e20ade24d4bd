"""Modules, parameters and initialization, with PyTorch's names: ``tinyconv.nn``.

  module.py      Module, Parameter, Sequential, ModuleList   (registration, state_dict, to())
  layers.py      Conv2d, Linear, MaxPool2d, LocalResponseNorm, BatchNorm2d, Dropout, ...
  init.py        normal_, kaiming_uniform_, xavier_normal_, ...  (seeded by tinyconv.manual_seed)
  functional     the same module as tinyconv.functional (the ops with their backward)
  utils.py       clip_grad_norm_, clip_grad_value_                  (as torch.nn.utils)
"""
from . import functional, init, utils  # noqa: F401
from .layers import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d,  # noqa: F401
                     CrossEntropyLoss, Dropout, Flatten, Identity, Linear, LocalResponseNorm,
                     LogSoftmax, MaxPool2d, NLLLoss, ReLU, Sigmoid, Softmax, Tanh)
from .module import IncompatibleKeys, Module, ModuleList, Parameter, Sequential  # noqa: F401
