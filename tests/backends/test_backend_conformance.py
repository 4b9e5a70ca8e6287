"""The exported backend kit (glm.testing.BackendConformance) over the built-in non-reference backend."""

from glm.testing import BackendConformance


class TestGammaGL(BackendConformance):
    backend = "gammagl"
