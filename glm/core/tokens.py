"""Graph special tokens and the splice contract between collation and the model.

A prompt marks each graph with :data:`GRAPH_PLACEHOLDER`. Collation expands the i-th
placeholder of a sample into ``G_START + N_i * G_PATCH + G_END`` where ``N_i`` is the
number of nodes of that sample's i-th graph. The model then overwrites the ``G_PATCH``
positions: scanning row ``b`` left to right, the k-th ``G_PATCH`` receives the k-th node
vector of sample ``b``'s graphs concatenated in order.
"""

from __future__ import annotations

GRAPH_PLACEHOLDER = "<graph>"
G_START = "<g_start>"
G_PATCH = "<g_patch>"
G_END = "<g_end>"
GRAPH_TOKENS = (G_START, G_PATCH, G_END)


def expand_graph_placeholders(text: str, sizes: list[int]) -> str:
    """Replace each ``<graph>`` in ``text`` by ``<g_start><g_patch>*N<g_end>``.

    Raises ``ValueError`` if the number of placeholders differs from ``len(sizes)``.
    """
    parts = text.split(GRAPH_PLACEHOLDER)
    if len(parts) - 1 != len(sizes):
        raise ValueError(
            f"prompt has {len(parts) - 1} {GRAPH_PLACEHOLDER} placeholders but {len(sizes)} graphs were given"
        )
    out = [parts[0]]
    for n, rest in zip(sizes, parts[1:]):
        out.append(G_START + G_PATCH * n + G_END + rest)
    return "".join(out)


def add_graph_tokens(tokenizer) -> list[int]:
    """Add the three graph tokens to a Hugging Face tokenizer (idempotent); return their ids
    in the order ``(G_START, G_PATCH, G_END)``."""
    missing = [t for t in GRAPH_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        # add_tokens(special_tokens=True) keeps other special tokens and works on transformers 4 and 5
        # (add_special_tokens' replace_* keyword was renamed in 5).
        tokenizer.add_tokens(missing, special_tokens=True)
    return [tokenizer.convert_tokens_to_ids(t) for t in GRAPH_TOKENS]
