"""Built-in method plugins, one package per method (PEFT's ``tuners/`` layout).

Each package registers its :class:`glm.core.method.MethodSpec` through the ``register_methods``
hook, exactly as a third-party method plugin does (see docs/methods.md). Methods import
``glm.core`` and ``glm.plugins`` only, never each other or a backend.
"""
