"""Modules, parameters and initialization, with PyTorch's names: ``tinyconv.nn``.

  module.py      Module, Parameter, Sequential, ModuleList, ModuleDict, ParameterList,
                 ParameterDict   (registration, hooks, state_dict, to())
  layers.py      Conv2d, Linear, MaxPool2d, BatchNorm2d, LayerNorm, Embedding, Dropout, the losses, ...
  init.py        normal_, kaiming_uniform_, xavier_normal_, ...  (seeded by tinyconv.manual_seed)
  functional     the same module as tinyconv.functional (the ops with their backward)
  parallel.py    DistributedDataParallel                            (as torch.nn.parallel)
  utils.py       clip_grad_norm_, clip_grad_value_                  (as torch.nn.utils)
"""
from . import functional, init, utils  # noqa: F401
from . import parallel  # noqa: F401  (DistributedDataParallel, over tinyconv.distributed)
from .layers import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, BCELoss,  # noqa: F401
                     BCEWithLogitsLoss, Conv2d, CrossEntropyLoss, Dropout, Dropout2d, Flatten, Identity,
                     L1Loss, LeakyReLU, Linear, LocalResponseNorm, LogSoftmax, MaxPool2d, MSELoss,
                     NLLLoss, ReLU, Sigmoid, Softmax, Tanh)
from .layers import (ELU, GELU, AdaptiveMaxPool2d, AvgPool1d, Conv1d, Embedding, GroupNorm,  # noqa: F401
                     Hardtanh, HuberLoss, KLDivLoss, LayerNorm, MaxPool1d, ReLU6, SiLU, SmoothL1Loss,
                     Softmax2d, Softplus, Unflatten, Upsample)
from .module import (IncompatibleKeys, Module, ModuleDict, ModuleList, Parameter,  # noqa: F401
                     ParameterDict, ParameterList, RemovableHandle, Sequential)
