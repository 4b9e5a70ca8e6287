"""The method conformance kit over every built-in method, on every installed backend."""

from glm.testing import MethodConformance


class TestGraphLAMA(MethodConformance):
    method = "graphlama"


class TestGraphLAMAPaperCompatible(MethodConformance):
    method = "graphlama"
    method_config = {"hop_mode": "official", "alpha_mode": "free", "gate_multi_graph": False}


class TestGraphGPT(MethodConformance):
    method = "graphgpt"


class TestLLaGANeighbourhood(MethodConformance):
    method = "llaga"
    method_config = {"tree": [3, 2]}


class TestLLaGAHopField(MethodConformance):
    method = "llaga"
    method_config = {"template": "hop_field", "hops": 3}
