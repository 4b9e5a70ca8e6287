"""The ``glm`` command line: one module per command group, each thin (parse, call core, print)."""
