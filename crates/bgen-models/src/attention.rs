//! Causal multi-head self-attention, shared by TarFlow and ArBG: over a whole sequence
//! (training, density evaluation), or one new token at a time against a KV cache (sampling).

use tch::{Device, Kind, Tensor};

/// Causal attention of projected queries, keys and values `qkv` (batch, t, 3 width) over
/// `heads` heads: (batch, t, width).
pub fn attend(qkv: &Tensor, heads: i64) -> Tensor {
    let (b, t, w3) = qkv.size3().expect("(batch, tokens, 3 width)");
    let w = w3 / 3;
    let qkv = qkv
        .view([b, t, 3, heads, w / heads])
        .permute([2, 0, 3, 1, 4]);
    Tensor::scaled_dot_product_attention::<Tensor>(
        &qkv.get(0),
        &qkv.get(1),
        &qkv.get(2),
        None,
        0.0,
        t > 1,
        None,
        false,
    )
    .permute([0, 2, 1, 3])
    .reshape([b, t, w])
}

/// Keys and values of one layer while decoding token by token, stored once for up to `max`
/// tokens as (batch, max, heads, head_dim), the first `len` filled. On the CPU in f32 they live
/// in host buffers and one fused loop does the attention of the new token (a dot product per
/// cached token: libtorch would spend most of a sampling step on broadcast temporaries);
/// elsewhere they are libtorch tensors.
#[derive(Debug)]
pub struct KvCache {
    store: Option<Store>,
    len: usize,
    max: usize,
}

#[derive(Debug)]
enum Store {
    Host {
        batch: usize,
        k: Vec<f32>,
        v: Vec<f32>,
        /// Scratch: the step's qkv and output.
        qkv: Vec<f32>,
        out: Vec<f32>,
    },
    Torch(Tensor, Tensor),
}

impl KvCache {
    /// An empty cache for up to `max` tokens (allocated at the first step).
    pub fn new(max: i64) -> KvCache {
        KvCache {
            store: None,
            len: 0,
            max: max as usize,
        }
    }

    /// One decoding step over `heads` heads: `qkv` (batch, 1, 3 width) of the newest token.
    /// Adds its key and value to the cache; returns its attention over all cached tokens,
    /// itself included (batch, 1, width).
    pub fn step(&mut self, qkv: &Tensor, heads: i64) -> Tensor {
        let (b, t, w3) = qkv.size3().expect("(batch, 1, 3 width)");
        assert_eq!(t, 1, "one token per decoding step");
        assert!(self.len < self.max, "KV cache full ({} tokens)", self.max);
        let (bu, w, hu) = (b as usize, (w3 / 3) as usize, heads as usize);
        let d = w / hu;
        let (len, max) = (self.len, self.max);
        let store = self.store.get_or_insert_with(|| {
            // Host buffers where nothing is differentiated; else tensors that grow by
            // concatenation, which autograd follows (sampling to train by energy).
            if qkv.device() == Device::Cpu && qkv.kind() == Kind::Float && !qkv.requires_grad() {
                let n = bu * max * w;
                Store::Host {
                    batch: bu,
                    k: vec![0.0; n],
                    v: vec![0.0; n],
                    qkv: vec![0.0; bu * 3 * w],
                    out: vec![0.0; bu * w],
                }
            } else {
                let z = || Tensor::zeros([b, 0, heads, d as i64], (qkv.kind(), qkv.device()));
                Store::Torch(z(), z())
            }
        });
        self.len += 1;
        match store {
            Store::Host {
                batch,
                k,
                v,
                qkv: buf,
                out,
            } => {
                assert_eq!(*batch, bu, "batch size changed during decoding");
                buf.resize(bu * 3 * w, 0.0);
                out.resize(bu * w, 0.0);
                qkv.copy_data(buf, bu * 3 * w);
                let shape = HostShape {
                    width: w,
                    heads: hu,
                    max,
                    len,
                };
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: this CPU has AVX2, checked on the line above.
                    unsafe { decode_avx2(buf, k, v, out, shape) };
                } else {
                    decode(buf, k, v, out, shape);
                }
                #[cfg(not(target_arch = "x86_64"))]
                decode(buf, k, v, out, shape);
                Tensor::from_slice(out).view([b, 1, w as i64])
            }
            Store::Torch(k, v) => {
                let qkv = qkv.view([b, 3, heads, d as i64]);
                *k = Tensor::cat(&[&*k, &qkv.narrow(1, 1, 1)], 1);
                *v = Tensor::cat(&[&*v, &qkv.narrow(1, 2, 1)], 1);
                let q = qkv.narrow(1, 0, 1) * (d as f64).powf(-0.5);
                let s = (&*k * q).sum_dim_intlist([3].as_slice(), false, qkv.kind());
                let p = s.softmax(1, s.kind()).unsqueeze(3);
                (&*v * p)
                    .sum_dim_intlist([1].as_slice(), false, qkv.kind())
                    .view([b, 1, w as i64])
            }
        }
    }

    /// A cache of batch rows `idx` (int64) of this one, in that order.
    pub fn rows(&self, idx: &Tensor) -> KvCache {
        let store = self.store.as_ref().map(|s| match s {
            Store::Host { batch, k, v, .. } => {
                let idx = Vec::<i64>::try_from(idx.to_device(Device::Cpu)).expect("int64 rows");
                let row = k.len() / *batch;
                let pick = |buf: &[f32]| -> Vec<f32> {
                    idx.iter()
                        .flat_map(|&i| &buf[i as usize * row..(i as usize + 1) * row])
                        .copied()
                        .collect()
                };
                Store::Host {
                    batch: idx.len(),
                    k: pick(k),
                    v: pick(v),
                    qkv: Vec::new(),
                    out: Vec::new(),
                }
            }
            Store::Torch(k, v) => Store::Torch(k.index_select(0, idx), v.index_select(0, idx)),
        });
        KvCache {
            store,
            len: self.len,
            max: self.max,
        }
    }

    /// One cache of the rows of `parts` in order (caches of the same layer at the same token).
    pub fn concat(parts: Vec<KvCache>) -> KvCache {
        let (len, max) = (parts[0].len, parts[0].max);
        assert!(
            parts.iter().all(|c| c.len == len),
            "caches at different tokens"
        );
        let stores: Vec<Store> = parts.into_iter().filter_map(|c| c.store).collect();
        let store = match stores.first() {
            None => None,
            Some(Store::Host { .. }) => {
                let (mut batch, mut k, mut v) = (0, Vec::new(), Vec::new());
                for s in stores {
                    let Store::Host {
                        batch: b,
                        k: ks,
                        v: vs,
                        ..
                    } = s
                    else {
                        unreachable!("one layer's caches share a device")
                    };
                    batch += b;
                    k.extend(ks);
                    v.extend(vs);
                }
                Some(Store::Host {
                    batch,
                    k,
                    v,
                    qkv: Vec::new(),
                    out: Vec::new(),
                })
            }
            Some(Store::Torch(..)) => {
                let (ks, vs): (Vec<Tensor>, Vec<Tensor>) = stores
                    .into_iter()
                    .map(|s| match s {
                        Store::Torch(k, v) => (k, v),
                        Store::Host { .. } => unreachable!("one layer's caches share a device"),
                    })
                    .unzip();
                Some(Store::Torch(Tensor::cat(&ks, 0), Tensor::cat(&vs, 0)))
            }
        };
        KvCache { store, len, max }
    }
}

/// Sizes of a host cache at one decoding step: `len` tokens were cached before it.
#[derive(Clone, Copy)]
struct HostShape {
    width: usize,
    heads: usize,
    max: usize,
    len: usize,
}

/// One decoding step on host buffers: for each row of `qkv` (rows x 3 width), stores its key
/// and value at token `len` of `k`, `v` (rows x heads x max x head_dim) and writes the
/// attention of its query over tokens 0..=len into `out` (rows x width).
#[inline(always)]
fn decode(qkv: &[f32], k: &mut [f32], v: &mut [f32], out: &mut [f32], s: HostShape) {
    let (w, d) = (s.width, s.width / s.heads);
    let hs = s.max * d;
    let (now, then) = (s.len * d, (s.len + 1) * d);
    for (r, (row, o)) in qkv
        .chunks_exact(3 * w)
        .zip(out.chunks_exact_mut(w))
        .enumerate()
    {
        for h in 0..s.heads {
            let c = (r * s.heads + h) * hs;
            let (kh, vh) = (&mut k[c..c + then], &mut v[c..c + then]);
            kh[now..].copy_from_slice(&row[w + h * d..w + (h + 1) * d]);
            vh[now..].copy_from_slice(&row[2 * w + h * d..2 * w + (h + 1) * d]);
            attend_one(&row[h * d..(h + 1) * d], kh, vh, &mut o[h * d..(h + 1) * d]);
        }
    }
}

/// [`decode`] compiled for AVX2 (8 floats per instruction instead of 4).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn decode_avx2(qkv: &[f32], k: &mut [f32], v: &mut [f32], out: &mut [f32], s: HostShape) {
    decode(qkv, k, v, out, s)
}

/// Attention of one query `q` (head_dim) over the tokens of `k`, `v` (tokens x head_dim):
/// the softmax(q . k_j / sqrt(head_dim)) weighted sum of the v_j, into `out`.
#[inline(always)]
fn attend_one(q: &[f32], k: &[f32], v: &[f32], out: &mut [f32]) {
    let d = q.len();
    let scale = (d as f32).powf(-0.5);
    let n = k.len() / d;
    let mut scores = [0f32; 64];
    let mut heap = Vec::new();
    let s: &mut [f32] = if n <= 64 {
        &mut scores[..n]
    } else {
        heap.resize(n, 0.0);
        &mut heap
    };
    let mut m = f32::NEG_INFINITY;
    for (sj, kj) in s.iter_mut().zip(k.chunks_exact(d)) {
        *sj = dot(q, kj) * scale;
        m = m.max(*sj);
    }
    let mut total = 0.0;
    for sj in s.iter_mut() {
        *sj = (*sj - m).exp();
        total += *sj;
    }
    out.fill(0.0);
    for (&p, vj) in s.iter().zip(v.chunks_exact(d)) {
        let p = p / total;
        for (o, &x) in out.iter_mut().zip(vj) {
            *o += p * x;
        }
    }
}

/// Dot product in 8 independent lanes (so that it vectorises).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `qkv` (batch, t, 3 width) token by token; the outputs (batch, t, width).
    fn decode_all(qkv: &Tensor, heads: i64) -> Tensor {
        let t = qkv.size()[1];
        let mut c = KvCache::new(t);
        let outs: Vec<Tensor> = (0..t)
            .map(|s| c.step(&qkv.narrow(1, s, 1), heads))
            .collect();
        Tensor::cat(&outs, 1)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
            .abs()
            .max()
            .double_value(&[])
    }

    /// Token-by-token decoding equals causal attention over the whole sequence: on host
    /// buffers (f32) and with libtorch tensors (f64), 2 heads of 32 and 3 heads of 12 (a head
    /// dimension that is not a multiple of 8).
    #[test]
    fn decoding_matches_causal_attention() {
        tch::manual_seed(3);
        for (heads, d) in [(2, 32), (3, 12)] {
            let qkv = Tensor::randn([5, 9, 3 * heads * d], (Kind::Double, Device::Cpu));
            let full = attend(&qkv, heads);
            let host = decode_all(&qkv.to_kind(Kind::Float), heads);
            let torch = decode_all(&qkv, heads);
            assert!(
                max_diff(&host, &full) < 1e-5,
                "host {}",
                max_diff(&host, &full)
            );
            assert!(
                max_diff(&torch, &full) < 1e-12,
                "torch {}",
                max_diff(&torch, &full)
            );
        }
    }

    /// After taking rows [2, 0, 0] half way, decoding goes on as for those rows' sequences.
    #[test]
    fn rows_reorder_the_cache() {
        tch::manual_seed(4);
        let (heads, d, t) = (2, 16, 6);
        let qkv = Tensor::randn([3, t, 3 * heads * d], (Kind::Double, Device::Cpu));
        let idx = Tensor::from_slice(&[2i64, 0, 0]);
        let full = attend(&qkv.index_select(0, &idx), heads);
        for kind in [Kind::Float, Kind::Double] {
            let q = qkv.to_kind(kind);
            let mut c = KvCache::new(t);
            for s in 0..3 {
                let _ = c.step(&q.narrow(1, s, 1), heads);
            }
            c = c.rows(&idx);
            let q = q.index_select(0, &idx);
            for s in 3..t {
                let o = c.step(&q.narrow(1, s, 1), heads);
                let diff = max_diff(&o, &full.narrow(1, s, 1));
                assert!(diff < 1e-5, "{kind:?} token {s}: {diff}");
            }
        }
    }
}
