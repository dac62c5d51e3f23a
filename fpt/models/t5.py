"""T5-like encoder-decoders (T5, T5 v1.1 / LM-adapt): where attention, layers and FFNs live."""
from transformers.models.t5.modeling_t5 import eager_attention_forward

from .family import FFN, Family, register_family


@register_family("t5")
class T5Family(Family):
    seq2seq = True
    eager_attention = staticmethod(eager_attention_forward)

    def dropout_overrides(self, dropout, attention_dropout):
        if attention_dropout is not None:
            raise ValueError("model.attention_dropout: T5 has one dropout rate (model.dropout); leave it null")
        return {} if dropout is None else {"dropout_rate": dropout}

    def attention_sites(self, backbone):
        sites = [(f"encoder.{i}.self", b.layer[0].SelfAttention) for i, b in enumerate(backbone.encoder.block)]
        for i, b in enumerate(backbone.decoder.block):
            sites.append((f"decoder.{i}.self", b.layer[0].SelfAttention))
            sites.append((f"decoder.{i}.cross", b.layer[1].EncDecAttention))
        return sites

    def layer_stacks(self, backbone):
        return {"encoder": backbone.encoder.block, "decoder": backbone.decoder.block}

    def set_layer_stack(self, backbone, stack, layers):
        getattr(backbone, stack).block = layers
        for i, block in enumerate(layers):  # the KV cache is indexed by position in the stack
            for sub in block.layer[:-1]:
                attention = sub.SelfAttention if hasattr(sub, "SelfAttention") else sub.EncDecAttention
                attention.layer_idx = i

    def ffn(self, layer):
        dense = layer.layer[-1].DenseReluDense
        names = ["wi_0", "wi_1"] if hasattr(dense, "wi_0") else ["wi"]
        return FFN(owner=dense, in_names=names, out_owner=dense, out_name="wo", act=dense.act)

    def dims(self, config):
        return dict(hidden=config.d_model, heads=config.num_heads, head_dim=config.d_kv, ffn=config.d_ff,
                    layers={"encoder": config.num_layers, "decoder": config.num_decoder_layers},
                    vocab=config.vocab_size, gated="gated" in config.feed_forward_proj)
