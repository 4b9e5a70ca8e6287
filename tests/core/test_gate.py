"""DualGate: the formula of spec §1.5, α modes, task-embedding handling."""

import pytest
import torch

from glm.methods.graphlama.gate import DualGate, TaskEmbeddingError


def test_free_alpha_matches_the_paper_formula():
    torch.manual_seed(0)
    gate = DualGate(in_dim=10, dim=6, alpha_mode="free")
    with torch.no_grad():
        gate.alpha_l.fill_(1.7)  # unconstrained: values outside [0, 1] are allowed
        gate.alpha_w.fill_(-0.3)
    z, e = torch.randn(4, 10), torch.randn(1, 6)
    t = z @ gate.task_related.weight.T + gate.task_related.bias
    i = z @ gate.task_invariant.weight.T + gate.task_invariant.bias
    u = 1.7 * t + (1 - 1.7) * i
    m = -0.3 * e + 1.3 * gate.invariant_mask
    torch.testing.assert_close(gate(z, e), u * m)


def test_sigmoid_alpha_starts_at_half_and_stays_convex():
    gate = DualGate(in_dim=10, dim=6)
    a_l, a_w = (a.detach() for a in gate.mixing_weights())
    assert float(a_l) == pytest.approx(0.5) and float(a_w) == pytest.approx(0.5)
    with torch.no_grad():
        gate.alpha_l.fill_(50.0)
    assert 0.0 < float(gate.mixing_weights()[0].detach()) <= 1.0


def test_per_node_and_shared_task_embeddings_agree():
    gate = DualGate(in_dim=10, dim=6)
    z, e = torch.randn(5, 10), torch.randn(1, 6)
    torch.testing.assert_close(gate(z, e), gate(z, e.expand(5, 6)))
    torch.testing.assert_close(gate(z, e), gate(z, e[0]))


def test_task_embedding_is_frozen_and_validated():
    gate = DualGate(in_dim=10, dim=6)
    e = torch.randn(1, 6, requires_grad=True)
    gate(torch.randn(3, 10), e).sum().backward()
    assert e.grad is None
    with pytest.raises(TaskEmbeddingError, match=r"\[N=3, 6\] or \[1, 6\], found \(3, 5\)"):
        gate(torch.randn(3, 10), torch.randn(3, 5))
    with pytest.raises(TaskEmbeddingError, match="no task embedding"):
        gate(torch.randn(3, 10))


def test_default_task_embedding():
    gate = DualGate(in_dim=10, dim=6)
    e, z = torch.randn(6), torch.randn(3, 10)
    gate.set_task_embedding(e)
    torch.testing.assert_close(gate(z), gate(z, e))
    assert "default_task_embedding" in gate.state_dict()
    gate.set_task_embedding(None)
    with pytest.raises(TaskEmbeddingError):
        gate(z)


def test_bad_z_shape():
    with pytest.raises(ValueError, match=r"z must be \[N, 10\]"):
        DualGate(in_dim=10, dim=6)(torch.randn(3, 9), torch.randn(1, 6))


def test_mixing_weights_are_one_element_parameters_and_old_0dim_state_loads():
    gate = DualGate(in_dim=10, dim=6)
    assert gate.alpha_l.shape == (1,) and gate.alpha_w.shape == (1,)  # DeepSpeed cannot take 0-dim parameters
    state = gate.state_dict()
    state["alpha_l"], state["alpha_w"] = torch.tensor(1.25), torch.tensor(-0.5)  # layout before [1]
    gate.load_state_dict(state)
    assert gate.alpha_l.tolist() == [1.25] and gate.alpha_w.tolist() == [-0.5]
