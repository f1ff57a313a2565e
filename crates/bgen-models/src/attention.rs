//! Causal multi-head self-attention with an optional KV cache, shared by TarFlow and ArBG.

use tch::Tensor;

/// Cached keys and values of one layer: (batch, heads, tokens so far, head_dim).
pub type Cache = Option<(Tensor, Tensor)>;

/// Attention of projected queries, keys and values `qkv` (batch, t, 3 width) over `heads`
/// heads: (batch, t, width). Without a cache the t tokens attend causally to each other; with
/// one the t new tokens attend to the cached ones and to themselves, and are added to it.
pub fn attend(qkv: &Tensor, heads: i64, cache: Option<&mut Cache>) -> Tensor {
    let (b, t, w3) = qkv.size3().expect("(batch, tokens, 3 width)");
    let w = w3 / 3;
    let qkv = qkv
        .view([b, t, 3, heads, w / heads])
        .permute([2, 0, 3, 1, 4]);
    let (q, mut k, mut v) = (qkv.get(0), qkv.get(1), qkv.get(2));
    let causal = cache.is_none();
    if let Some(c) = cache {
        if let Some((k0, v0)) = c.as_ref() {
            k = Tensor::cat(&[k0, &k], 2);
            v = Tensor::cat(&[v0, &v], 2);
        }
        *c = Some((k.shallow_clone(), v.shallow_clone()));
    }
    Tensor::scaled_dot_product_attention::<Tensor>(
        &q,
        &k,
        &v,
        None,
        0.0,
        causal && t > 1,
        None,
        false,
    )
    .permute([0, 2, 1, 3])
    .reshape([b, t, w])
}
