"""AlexNet's two towers on two ranks (issue 13, part 4) and the exchange they go through.

Two ranks under ``mpiexec`` (launched as in test_distributed.py, time-bounded), float64:
the towers' loss and every parameter gradient, each rank's half against the matching
slice of the grouped single-process net's, agree to rtol 1e-10.
"""
import numpy as np
import pytest
from test_distributed import check_ok, needs_mpi, run_ranks

import tinyconv
from tinyconv.distributed.exchange import all_gather_cat
from tinyconv.models import alexnet
from tinyconv.models.alexnet_towers import AlexNetTowers, Exchange

TOWERS_CHECK = """
import tinyconv.nn.functional as F
from tinyconv import nn
from tinyconv.models import alexnet
from tinyconv.models.alexnet_towers import AlexNetTowers, Exchange


class PerTowerLRN(nn.Module):           # the paper's LRN: each tower's channels on their own
    def __init__(self, lrn):
        super().__init__()
        self.lrn = lrn

    def forward(self, x):
        c = x.shape[1] // 2
        return tinyconv.cat([self.lrn(x[:, :c]), self.lrn(x[:, c:])], dim=1)


def check(variant, across, batch=3):
    tinyconv.manual_seed(7)
    model = alexnet(variant=variant).double().eval()
    x = tinyconv.randn(batch, *model.input_shape, dtype=tinyconv.float64)
    y = tinyconv.randint(0, 10, (batch,))
    towers = AlexNetTowers(model, r, lrn_across_towers=across).eval()
    exchanges = sum(isinstance(m, Exchange) for m in towers.modules())
    assert exchanges == (7 if across else 5), (variant, across, exchanges)   # conv3, fc6-8, logits
    loss = F.cross_entropy(towers(x), y)
    loss.backward()
    if not across:
        for i, m in enumerate(model.features):
            if isinstance(m, nn.LocalResponseNorm):
                model.features[i] = PerTowerLRN(m)
    want = F.cross_entropy(model(x), y)
    want.backward()
    np.testing.assert_allclose(loss.item(), want.item(), rtol=1e-10, atol=0)
    layers = (nn.Conv2d, nn.Linear)
    mine = [m for m in towers.modules() if isinstance(m, layers)]
    full = [m for m in model.modules() if isinstance(m, layers)]
    assert len(mine) == len(full) == 8
    for i, (t, f) in enumerate(zip(mine, full)):
        for name in ("weight", "bias"):
            got, ref = getattr(t, name), getattr(f, name)
            n = got.shape[0]
            assert n * 2 == ref.shape[0], (i, name, got.shape, ref.shape)
            assert np.array_equal(got.detach().numpy(), ref.detach().numpy()[r * n:(r + 1) * n]), (i, name)
            g, w = got.grad.numpy(), ref.grad.numpy()[r * n:(r + 1) * n]
            assert np.abs(w).max() > 0, (i, name)
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10 * np.abs(w).max(),
                                       err_msg=f"{variant} across={across} layer {i} {name}")


dist.init_process_group("mpi")
r = dist.get_rank()
check("small28", across=True)
check("small28", across=False)
check("small32", across=True)
done(r)
"""


@needs_mpi
@pytest.mark.parametrize("kernels", ["reference", "fast"])
def test_two_towers_equal_the_grouped_single_process_net(tmp_path, kernels):
    check_ok(run_ranks(tmp_path, TOWERS_CHECK, args=(kernels,), timeout=400))


@needs_mpi
def test_exchange_backward_is_a_reduce_scatter_or_a_slice(tmp_path):
    check_ok(run_ranks(tmp_path, """
        from tinyconv.distributed.exchange import all_gather_cat
        dist.init_process_group("mpi")
        r = dist.get_rank()
        x = tinyconv.tensor(np.arange(6.0).reshape(2, 3) + 10 * r, requires_grad=True)
        for dim, want in ((0, np.concatenate([np.arange(6.0).reshape(2, 3) + 10 * s for s in (0, 1)], 0)),
                          (1, np.concatenate([np.arange(6.0).reshape(2, 3) + 10 * s for s in (0, 1)], 1))):
            for replicated in (False, True):
                x.grad = None
                y = all_gather_cat(x, dim, replicated)
                assert np.array_equal(y.detach().numpy(), want), dim
                w = [np.random.default_rng(s + 10 * dim).standard_normal(want.shape) for s in (0, 1)]
                (y * tinyconv.tensor(w[r])).sum().backward()
                own = [np.split(ws, 2, axis=dim)[r] for ws in w]
                expect = own[r] if replicated else own[0] + own[1]
                assert np.allclose(x.grad.numpy(), expect, rtol=1e-15, atol=0), (dim, replicated)
        done(r)
    """))


@needs_mpi
def test_towers_need_two_ranks(tmp_path):
    check_ok(run_ranks(tmp_path, """
        from tinyconv.models import alexnet
        from tinyconv.models.alexnet_towers import AlexNetTowers
        dist.init_process_group("mpi")
        towers = AlexNetTowers(alexnet(variant="small28"), 0)
        try:
            towers(tinyconv.zeros(1, 1, 28, 28))
        except RuntimeError as e:
            assert "the towers run on 2 ranks (mpiexec -n 2), got world_size 1" in str(e), e
        else:
            raise AssertionError("one rank ran the two towers")
        done(0)
    """, n=1), n=1)


def test_towers_reject_what_they_cannot_split():
    with pytest.raises(ValueError, match="rank must be 0 or 1, got 2"):
        AlexNetTowers(alexnet(variant="small28"), 2)
    with pytest.raises(ValueError, match="expected a grouped AlexNet.*'one_tower'"):
        AlexNetTowers(alexnet(variant="one_tower", num_classes=10), 0)
    with pytest.raises(TypeError, match="all_gather_cat: x must be a Tensor, got ndarray"):
        all_gather_cat(np.zeros(3))
    with pytest.raises(IndexError, match="all_gather_cat: dim 2 is out of range for a 2-d tensor"):
        all_gather_cat(tinyconv.zeros(2, 3), dim=2)


def test_each_tower_holds_half_of_every_layer_and_says_where_it_exchanges():
    model = alexnet(variant="small28")
    towers = [AlexNetTowers(model, r) for r in (0, 1)]
    n = sum(p.numel() for p in model.parameters())
    assert [sum(p.numel() for p in t.parameters()) for t in towers] == [n // 2, n // 2]
    conv2 = model.features[4]
    tower_conv2 = [m for m in towers[1].features if isinstance(m, tinyconv.nn.Conv2d)][1]
    assert tower_conv2.groups == 1 and tower_conv2.weight.shape == (24, 12, 3, 3)
    assert np.array_equal(tower_conv2.weight.detach().numpy(), conv2.weight.detach().numpy()[24:])
    text = repr(towers[0])
    assert text.count("Exchange(dim=1)") == 6 and "Exchange(dim=1, replicated=True)" in text
    paper = AlexNetTowers(model, 0, lrn_across_towers=False)
    assert sum(isinstance(m, Exchange) for m in paper.modules()) == 5
