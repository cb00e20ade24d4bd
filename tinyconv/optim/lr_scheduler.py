"""Learning-rate schedules, as ``torch.optim.lr_scheduler``: each one rewrites ``group["lr"]``.

* :class:`StepLR`: multiply the lr by ``gamma`` every ``step_size`` epochs.
* :class:`ReduceLROnPlateau`: multiply the lr by ``factor`` when a monitored metric
  has not improved for ``patience`` epochs - the paper's "divide the learning rate by
  10 when the validation error rate stopped improving".

Call ``scheduler.step()`` (``scheduler.step(val_error)`` for the plateau one) once per
epoch, after ``optimizer.step()``.  ``state_dict()`` is plain data (numbers and lists).
"""
import math

from .optimizer import Optimizer


def _check_optimizer(optimizer, op):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{op}: expected an Optimizer, got {type(optimizer).__name__}")


class LRScheduler:
    """Base of epoch-indexed schedules: ``step()`` advances ``last_epoch`` and sets each
    group's lr to ``get_lr()``.  ``base_lrs`` are the groups' ``initial_lr``."""

    def __init__(self, optimizer, last_epoch=-1):
        _check_optimizer(optimizer, type(self).__name__)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{type(self).__name__}: param 'initial_lr' is not specified in "
                                   f"param_groups[{i}] when resuming an optimizer (last_epoch={last_epoch})")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()                 # epoch 0: sets the initial lr, as PyTorch does

    def get_lr(self):
        raise NotImplementedError

    def get_last_lr(self):
        """The lr of each group as last set by this scheduler."""
        return list(self._last_lr)

    def step(self):
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """Everything but the optimizer, as plain data."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()
                if k != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update({k: (list(v) if isinstance(v, list) else v) for k, v in state_dict.items()})


class StepLR(LRScheduler):
    """lr = initial_lr * gamma ** (epoch // step_size), applied as a factor at each boundary
    (so a change made to ``group["lr"]`` by hand carries on, as in PyTorch)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class ReduceLROnPlateau:
    """Multiply each group's lr by ``factor`` once ``metrics`` stopped improving for ``patience`` epochs.

    Same arguments and rule as PyTorch: a value is an improvement when, in mode
    ``"min"``, it is below ``best * (1 - threshold)`` (``threshold_mode="rel"``) or below
    ``best - threshold`` (``"abs"``); mirror images in mode ``"max"``.  After
    ``patience`` epochs without one (counting only outside a ``cooldown``), the lr
    becomes ``max(lr * factor, min_lr)`` unless that changes it by no more than ``eps``.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        op = "ReduceLROnPlateau"
        _check_optimizer(optimizer, op)
        if not 0 <= factor < 1:
            raise ValueError(f"{op}: factor should be in [0, 1) to reduce the lr, got {factor}")
        if mode not in ("min", "max"):
            raise ValueError(f"{op}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{op}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"{op}: patience must be an int >= 0, got {patience!r}")
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"{op}: expected {n} values for min_lr, got {len(min_lr)}")
            self.min_lrs = list(min_lr)
        else:
            self.min_lrs = [min_lr] * n
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.eps = cooldown, eps
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.best = self.mode_worse
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def is_better(self, a, best):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def step(self, metrics):
        """Record this epoch's value of the monitored metric (e.g. the validation error)."""
        current = float(metrics.item() if hasattr(metrics, "item") else metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0          # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _reduce_lr(self):
        for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
            old = float(group["lr"])
            new = max(old * self.factor, min_lr)
            if old - new > self.eps:
                group["lr"] = new

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()
                if k != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update({k: (list(v) if isinstance(v, list) else v) for k, v in state_dict.items()})
