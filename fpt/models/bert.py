"""BERT-like encoders (BERT, RoBERTa, MiniLM): where attention, layers and FFNs live."""
from transformers.models.bert.modeling_bert import eager_attention_forward

from .family import FFN, Family, register_family


@register_family("bert")
class BertFamily(Family):
    seq2seq = False
    eager_attention = staticmethod(eager_attention_forward)

    def attention_sites(self, backbone):
        return [(f"encoder.{i}.self", layer.attention.self) for i, layer in enumerate(backbone.encoder.layer)]

    def layer_stacks(self, backbone):
        return {"encoder": backbone.encoder.layer}

    def set_layer_stack(self, backbone, stack, layers):
        backbone.encoder.layer = layers

    def ffn(self, layer):
        return FFN(owner=layer.intermediate, in_names=["dense"], out_owner=layer.output, out_name="dense",
                   act=layer.intermediate.intermediate_act_fn)

    def dims(self, config):
        return dict(hidden=config.hidden_size, heads=config.num_attention_heads,
                    head_dim=config.hidden_size // config.num_attention_heads, ffn=config.intermediate_size,
                    layers={"encoder": config.num_hidden_layers}, vocab=config.vocab_size)
