"""The graph IR: verify() rejects broken graphs; the text form names what it shows."""

from __future__ import annotations

import pytest

from tessera.compiler.graph import Graph, GraphError, Node, NodeKind, Value, ValueRole


def _graph(nodes, outputs=("b",)) -> Graph:
    inputs = (Value("x", ValueRole.USER, (2, 4), "float32"),
              Value("w", ValueRole.PARAMETER, (4, 4), "float32"))
    return Graph(inputs, tuple(nodes), tuple(outputs))


A = Node("a", NodeKind.DOT, "aten.linear.default", ("x", "w"), (2, 4), "float32",
         module="layers.0.q")
B = Node("b", NodeKind.ELEMENTWISE, "aten.silu.default", ("a",), (2, 4), "float32")


def test_a_well_formed_graph_verifies_and_prints() -> None:
    g = _graph([A, B])
    g.verify()
    text = g.format()
    assert "%a = dot[aten.linear.default](%x, %w) -> float32[2, 4]  # layers.0.q" in text
    assert text.endswith("return %b")
    assert g.users()["a"] == ["b"] and g.shape_of("w") == (4, 4)
    assert A.num_bytes == 32


@pytest.mark.parametrize("nodes, outputs, message", [
    ([B, A], ("b",), "reads \\['a'\\], not defined before it"),
    ([A, A], ("a",), "defined twice"),
    ([A], ("zz",), "outputs \\['zz'\\] are not defined"),
    ([Node("a", NodeKind.DOT, "aten.mm.default", ("x",), (2, 4), "float32")], ("a",),
     "a dot node takes 2 to 3 inputs, got 1"),
])
def test_verify_rejects(nodes, outputs, message) -> None:
    with pytest.raises(GraphError, match=message):
        _graph(nodes, outputs).verify()


def test_movement_kinds_are_marked() -> None:
    assert NodeKind.TRANSPOSE.moves_data_only and not NodeKind.DOT.moves_data_only


def test_layer_names_follow_the_blocks_of_the_model() -> None:
    from tessera.compiler.profile import TOP, layer_names

    hf_llama = ["model.embed_tokens", "model.layers.0.self_attn.q_proj", "model.layers.0",
                "model.layers.11.mlp.down_proj", "model.norm", "lm_head", ""]
    assert layer_names(hf_llama) == {
        "model.embed_tokens": "model.embed_tokens",
        "model.layers.0.self_attn.q_proj": "model.layers.0", "model.layers.0": "model.layers.0",
        "model.layers.11.mlp.down_proj": "model.layers.11", "model.norm": "model.norm",
        "lm_head": "lm_head", "": TOP}
    bert = ["embeddings.word_embeddings", "embeddings", "encoder.layer.5.attention.self",
            "pooler.dense"]
    assert layer_names(bert) == {
        "embeddings.word_embeddings": "embeddings", "embeddings": "embeddings",
        "encoder.layer.5.attention.self": "encoder.layer.5", "pooler.dense": "pooler"}
    # no block list at all: each top-level child is a layer
    assert layer_names(["fc1", "act", "fc2.inner"]) == {"fc1": "fc1", "act": "act",
                                                         "fc2.inner": "fc2"}
