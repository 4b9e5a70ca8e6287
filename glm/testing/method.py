"""``MethodConformance``: the method contract as a pytest class to subclass (PEFT's shared tester).

::

    from glm.testing import MethodConformance

    class TestMyMethod(MethodConformance):
        method = "my_method"                # a registered method name
        # optional: method_config = {...}   (model.<method> keys), encoder = {...}, backends = ("pyg",)

Checks, each a test run once per installed backend (methods without a GNN run once):

* ``test_stage_table_matches_parameters``: every stage trains some graph-side parameter, no
  pattern matches the LLM, ``pretrain_stage`` / ``adapt_stage`` exist, adapter buffers exist;
* ``test_token_shapes``: one or two graphs per sample, batched; tokens per graph as the placement says;
* ``test_only_stage_parameters_change``: after an AdamW step (with weight decay) in each stage
  exactly the stage's parameters changed, the LLM never;
* ``test_adapter_round_trip``: an adapter of each stage loaded into a fresh model reproduces the logits;
* ``test_backend_parity``: methods with a GNN give the same logits on every installed backend for
  identical weights (the encoder loaded through its backend-neutral state).
"""

from __future__ import annotations

import copy
import types
from fnmatch import fnmatch
from typing import Any, ClassVar, Optional, Sequence

import pytest
import torch

TINY_ENCODER = {"layer": "gt", "in_dim": 8, "hidden_dim": 16, "out_dim": 16, "num_layers": 1, "heads": 2}


class MethodConformance:
    """Subclass as ``Test...`` and set :attr:`method`."""

    #: registered method name
    method: ClassVar[Optional[str]] = None
    #: ``model.<method>`` options for the tiny test model
    method_config: ClassVar[dict[str, Any]] = {}
    #: ``model.encoder`` options (methods with a GNN)
    encoder: ClassVar[dict[str, Any]] = TINY_ENCODER
    #: backends to run on; ``None``: every installed backend (methods with a GNN)
    backends: ClassVar[Optional[Sequence[str]]] = None
    graph_sizes: ClassVar[Sequence[Sequence[int]]] = ((5,), (4, 6), (7,))

    # -- parametrisation --------------------------------------------------------------------------
    @classmethod
    def backend_params(cls) -> list[Any]:
        from glm.plugins.manager import get_registry

        registry = get_registry()
        if cls.method is None:
            return [pytest.param(None, marks=pytest.mark.skip(reason=f"{cls.__name__}.method is not set"))]
        spec = registry.methods.get(cls.method)  # a plugin may register it only when its tests run
        if spec is None or not spec.uses_encoder:
            return [pytest.param(None, id="no-gnn")]
        names = cls.backends or sorted(registry.backends)
        return [pytest.param(n, id=n) if n in registry.available_backends() else
                pytest.param(n, id=n, marks=pytest.mark.skip(reason=f"backend {n!r} is not installed"))
                for n in names]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in [n for n in dir(cls) if n.startswith("test_")]:
            test = getattr(cls, name)
            if "backend" in test.__code__.co_varnames[: test.__code__.co_argcount] and name != "test_backend_parity":
                own = types.FunctionType(test.__code__, test.__globals__, name, test.__defaults__, test.__closure__)
                own.__doc__ = test.__doc__  # a copy per subclass: marks must not pile up on the base function
                setattr(cls, name, pytest.mark.parametrize("backend", cls.backend_params())(own))

    # -- building ---------------------------------------------------------------------------------
    def run_config(self, backend: Optional[str], **training: Any):
        from glm.core.config import config_from_dict

        model = {"llm": {"name": "tiny-random"}, "encoder": dict(self.encoder), "method": self.method,
                 self.method: dict(self.method_config)}
        if self.method == "graphlama" and "graph_dim" not in self.method_config:
            model[self.method].update(graph_dim=self.encoder["out_dim"], gate_dim=self.encoder["out_dim"])
        return config_from_dict({"model": model, "backend": backend, "training": dict(training)}, f"<{self.method}>")

    def build(self, backend: Optional[str], seed: int = 0):
        from glm.core.factory import build_model

        return build_model(self.run_config(backend, seed=seed), backend).eval()

    def batch(self, model, seed: int = 0):
        """A right-padded batch with answers over :attr:`graph_sizes` (symmetric random subgraphs)."""
        from glm.core.graph import Subgraph, SubgraphBatch
        from glm.core.sample import GraphBatch
        from glm.core.tokens import expand_graph_placeholders

        gen = torch.Generator().manual_seed(seed)
        tok, feat = model.tokenizer, self.encoder["in_dim"]
        rows, labels, graphs = [], [], []
        for b, sizes in enumerate(self.graph_sizes):
            for n in sizes:
                ei = torch.randint(0, n, (2, 2 * n), generator=gen)
                ei = torch.cat([ei, torch.stack([torch.zeros(n - 1, dtype=torch.long), torch.arange(1, n)])], 1)
                graphs.append(Subgraph(x=torch.randn(n, feat, generator=gen), edge_index=torch.cat([ei, ei.flip(0)], 1)))
            prompt = expand_graph_placeholders(f"Q{b}: " + " and ".join(["<graph>"] * len(sizes)) + " ?",
                                               [model.num_graph_tokens(n) for n in sizes])
            ids = tok(prompt, add_special_tokens=False).input_ids
            answer = tok(f"A{b}", add_special_tokens=False).input_ids + [tok.eos_token_id]
            rows.append(ids + answer)
            labels.append([-100] * len(ids) + answer)
        width = max(map(len, rows))
        input_ids = torch.full((len(rows), width), tok.pad_token_id)
        mask, lab = torch.zeros_like(input_ids), torch.full_like(input_ids, -100)
        for b, (ids, lb) in enumerate(zip(rows, labels)):
            input_ids[b, : len(ids)], mask[b, : len(ids)], lab[b, : len(ids)] = torch.tensor(ids), 1, torch.tensor(lb)
        task_dim = getattr(model.config, "task_embedding_dim", None)
        return GraphBatch(input_ids=input_ids, attention_mask=mask, labels=lab,
                          graphs=SubgraphBatch.from_subgraphs(graphs),
                          graphs_per_sample=torch.tensor([len(s) for s in self.graph_sizes]),
                          task_embedding=torch.randn(len(rows), task_dim, generator=gen) if task_dim else None)

    # -- checks -----------------------------------------------------------------------------------
    def test_stage_table_matches_parameters(self, backend):
        model = self.build(backend)
        spec = model.method
        names = [n for n, _ in model.named_parameters()]
        graph_side = [n for n in names if not n.startswith("llm.")]
        assert spec.pretrain_stage in spec.stages and spec.adapt_stage in spec.stages
        for stage, st in spec.stages.items():  # a pattern may be optional (GraphLAMA's learned hop table)
            hits = [n for n in graph_side if any(fnmatch(n, p) for p in st.trains)]
            assert hits, f"stage {stage!r}: patterns {st.trains} match no parameter of {graph_side}"
            for pattern in st.trains:
                assert not any(fnmatch(n, pattern) for n in names if n.startswith("llm.")), pattern
        buffers = dict(model.named_buffers())
        missing = [b for b in spec.adapter_buffers if b not in buffers]
        assert not missing, f"adapter_buffers {missing} are not buffers of the model"

    def test_token_shapes(self, backend):
        model = self.build(backend)
        batch = self.batch(model)
        graphs = batch.graphs
        tokens = model.node_tokens(graphs, batch.graphs_per_sample, batch.task_embedding)
        hidden = int(model.llm.config.hidden_size)
        assert tokens.shape == (int(model.tokens_per_graph_of(graphs).sum()), hidden)
        assert torch.isfinite(tokens).all()
        with torch.no_grad():
            out = model(batch)
        assert out.logits.shape[:2] == batch.input_ids.shape and torch.isfinite(out.loss)

    def test_only_stage_parameters_change(self, backend):
        for stage in self.build(backend).method.stages:
            model = self.build(backend)
            from glm.core.stages import set_stage

            trained = set(set_stage(model, stage))
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
            model.train()
            model(self.batch(model)).loss.backward()
            opt.step()
            changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
            assert changed == trained, f"stage {stage!r}: changed {sorted(changed ^ trained)} unexpectedly"
            assert not any(n.startswith("llm.") for n in changed)

    def test_adapter_round_trip(self, backend, tmp_path):
        from glm.core.adapter import load_adapter, save_adapter
        from glm.core.stages import set_stage

        for stage in self.build(backend).method.stages:
            model = self.build(backend)
            batch = self.batch(model)
            set_stage(model, stage)
            with torch.no_grad():
                for p in model.parameters():
                    if p.requires_grad:
                        p.add_(0.01 * torch.randn_like(p))
                expected = model(batch).logits
            path = save_adapter(model, tmp_path / f"{stage}.safetensors", stage)
            fresh = self.build(backend)
            load_adapter(fresh, path)
            with torch.no_grad():
                assert torch.equal(fresh(batch).logits, expected), f"stage {stage!r}: adapter round trip differs"

    @pytest.fixture()
    def installed_backends(self) -> list[str]:
        from glm.plugins.manager import get_registry

        return [b for b in (self.backends or sorted(get_registry().backends))
                if b in get_registry().available_backends()]

    def test_backend_parity(self, installed_backends):
        from glm.plugins.manager import get_registry

        if self.method is None:
            pytest.skip(f"{type(self).__name__}.method is not set")
        if not get_registry().method(self.method).uses_encoder:
            pytest.skip(f"method {self.method!r} has no GNN")
        if len(installed_backends) < 2:
            pytest.skip(f"needs two installed backends, found {installed_backends}")
        reference = self.build(installed_backends[0])
        batch = self.batch(reference)
        state = {n: p.detach().clone() for n, p in reference.named_parameters() if not n.startswith("encoder.")}
        with torch.no_grad():
            expected = reference(batch).logits
        for backend in installed_backends[1:]:
            other = self.build(backend)
            other.encoder.load_neutral_state_dict(reference.encoder.neutral_state_dict())
            with torch.no_grad():
                for n, p in other.named_parameters():
                    if n in state:
                        p.copy_(state[n])
                got = other(copy.deepcopy(batch)).logits
            assert (got - expected).abs().max() <= 1e-5, f"{backend} vs {installed_backends[0]}"
