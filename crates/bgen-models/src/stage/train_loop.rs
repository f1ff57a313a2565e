//! The training loop shared by every model.

use super::TrainArgs;
use crate::kl::{KlMolecule, KlReport};
use crate::train::Trainer;
use crate::Result;
use bgen_system::bail;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;
use tch::Tensor;

/// The training loop shared by every model: batches drawn from a fresh permutation of the rows
/// per epoch (reproducible from the seed and the epoch; with a `pool`, of its rows, a row as
/// often as it appears there), with their labels for a transferable flow; a checkpoint and the
/// validation NLL (`val(trainer, ema)`) every `checkpoint_secs` and at the end; a clear error
/// (the last checkpoint intact) if the loss diverges.
pub(super) fn train_loop(
    trainer: &mut Trainer,
    a: &TrainArgs,
    train_t: &Tensor,
    labels: Option<&crate::tarflow::Labels>,
    pool: Option<&[i64]>,
    by_energy: &[KlMolecule],
    val: &dyn Fn(&Trainer, bool) -> f64,
) -> Result<()> {
    let tc = trainer.state.train.clone();
    let dev = train_t.device();
    let n_train = train_t.size()[0] as usize;
    let bar = ProgressBar::new(tc.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} {msg} [{elapsed_precise}, ETA {eta_precise}]",
        )
        .expect("template"),
    );
    bar.set_position(trainer.state.step as u64);
    bar.reset_eta();
    let t0 = Instant::now();
    let start = trainer.state.step;
    let mut last_cp = Instant::now();
    let mut order: Vec<i64> = Vec::new();
    let n = pool.map_or(n_train, <[i64]>::len) as i64;
    // Molecules of mixed sizes: each row's real tokens, for batches of like sizes.
    let row_tokens: Option<Vec<i64>> = labels.map(|l| Vec::try_from(&l.tokens).unwrap_or_default());
    let mut by_energy_mean = EnergyMean::default();
    while trainer.state.step < tc.steps {
        let s = trainer.state.step;
        // A fresh permutation per epoch, reproducible from the seed and the epoch.
        let per_epoch = (n / tc.batch_size).max(1);
        let (epoch, k) = (s / per_epoch, s % per_epoch);
        if order.is_empty() || k == 0 {
            let seed = tc.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9);
            order = epoch_order(n_train, pool, row_tokens.as_deref(), tc.batch_size, seed);
        }
        let b: Vec<i64> = (0..tc.batch_size)
            .map(|j| order[((k * tc.batch_size + j) % n) as usize])
            .collect();
        let batch = train_t.index_select(0, &Tensor::from_slice(&b).to_device(dev));
        let idx = Tensor::from_slice(&b).to_device(dev);
        let l = labels.map(|l| l.select(&idx));
        let report = std::cell::Cell::new(None);
        let loss = match by_energy.is_empty() {
            true => trainer.step_labelled(&batch, l.as_ref()),
            false => {
                // One training molecule per step, its draws from the step's own noise.
                let seed = tc.seed ^ (s as u64).wrapping_mul(0xA24B_AED4_963E_E407);
                let m = &by_energy[(seed % by_energy.len() as u64) as usize];
                let extra = |model: &crate::model::Model| {
                    let crate::model::Model::TarFlow(flow) = model else {
                        unreachable!("training by energy is a TarFlow's")
                    };
                    let (loss, r) = crate::kl::loss(flow, m, tc.kl_draws, seed);
                    report.set(Some(r));
                    loss * tc.kl_weight
                };
                trainer.step_with(&batch, l.as_ref(), Some(&extra))
            }
        };
        if let Some(r) = report.get() {
            by_energy_mean.add(r);
        }
        if !loss.is_finite() {
            let kept = match a.out.join("latest.json").exists() {
                true => format!("the last checkpoint in {} is intact", a.out.display()),
                false => "no checkpoint was written before it".to_string(),
            };
            bail!("training diverged at step {s} (loss {loss}); {kept}");
        }
        let done = trainer.state.step;
        let rate = (done - start) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(done as u64);
        bar.set_message(format!(
            "loss {loss:.3}/dim{}, {rate:.1} steps/s",
            by_energy_mean.text()
        ));
        if last_cp.elapsed() >= bgen_system::options::seconds(a.checkpoint_secs) || done == tc.steps
        {
            let (val, raw) = (val(trainer, true), val(trainer, false));
            trainer.state.history.push((done, loss, Some(val)));
            trainer.save(&a.out)?;
            let energy = by_energy_mean.text();
            bar.suspend(|| {
                bgen_system::say!("step {done}: train {loss:.4}, validation NLL {val:.4} per dim (EMA; {raw:.4} without){energy}")
            });
            by_energy_mean = EnergyMean::default();
            last_cp = Instant::now();
        }
    }
    bar.finish();
    Ok(())
}

/// An epoch's rows, in the order its batches read them: a permutation (from `seed`) of the
/// `n_rows` rows, or of `pool` (rows repeated as often as an epoch draws them), and with
/// `tokens` (each row's real tokens) [`sortish`] batches of like sizes.
fn epoch_order(
    n_rows: usize,
    pool: Option<&[i64]>,
    tokens: Option<&[i64]>,
    batch: i64,
    seed: u64,
) -> Vec<i64> {
    let n = pool.map_or(n_rows, <[i64]>::len);
    // [`sortish`] indexes the keys by row: a pool holds every row at least once.
    debug_assert!(n >= n_rows);
    let keys = crate::data::normals(n, seed);
    let mut idx: Vec<i64> = (0..n as i64).collect();
    idx.sort_by(|&p, &q| keys[p as usize].total_cmp(&keys[q as usize]));
    if let Some(pool) = pool {
        // Positions to rows ([`sortish`] orders batches by a key of their first row's index).
        idx.iter_mut().for_each(|i| *i = pool[*i as usize]);
    }
    match tokens {
        Some(t) => sortish(&idx, t, batch as usize, &keys),
        None => idx,
    }
}

/// Training by energy since the last checkpoint: the mean of its reports.
#[derive(Default)]
struct EnergyMean {
    kl: f64,
    kept: f64,
    ess: f64,
    n: usize,
}

impl EnergyMean {
    fn add(&mut self, r: KlReport) {
        self.kl += r.kl;
        self.kept += r.kept;
        self.ess += r.ess;
        self.n += 1;
    }

    /// ", by energy: KL .., ESS .., kept .." (nothing without training by energy).
    fn text(&self) -> String {
        if self.n == 0 {
            return String::new();
        }
        let n = self.n as f64;
        format!(
            "; by energy: KL {:.1} kT, draws' ESS {:.3}, in domain {:.2}",
            self.kl / n,
            self.ess / n,
            self.kept / n
        )
    }
}

/// Batches of molecules of like sizes from a shuffled `order` of rows (`tokens`: each row's real
/// tokens): the order is cut into groups of `SORTISH_BATCHES` batches, each group sorted by
/// size and its batches put back in a shuffled order (`keys`: normals, at least one per row,
/// indexed by a batch's first row). Every row is still drawn as often as `order` holds it,
/// while a batch's pads, which the flow cuts before its work ([`crate::tarflow::TarFlow`]),
/// shrink to a few tokens.
fn sortish(order: &[i64], tokens: &[i64], batch: usize, keys: &[f64]) -> Vec<i64> {
    let group = batch * SORTISH_BATCHES;
    let mut out = Vec::with_capacity(order.len());
    for g in order.chunks(group) {
        let mut rows = g.to_vec();
        rows.sort_by_key(|&r| tokens[r as usize]);
        // Whole batches shuffled; a last, partial one stays last (batches are read in place).
        let whole = rows.len() / batch * batch;
        let mut batches: Vec<&[i64]> = rows[..whole].chunks(batch).collect();
        batches.sort_by(|a, b| keys[a[0] as usize].total_cmp(&keys[b[0] as usize]));
        out.extend(batches.into_iter().flatten());
        out.extend(&rows[whole..]);
    }
    out
}

/// Batches per group of [`sortish`].
const SORTISH_BATCHES: usize = 64;
#[cfg(test)]
mod tests {
    use super::*;

    /// With a pool, an epoch draws each row as often as the pool holds it, in batches of like
    /// sizes; without, every row once.
    #[test]
    fn an_epoch_draws_oversampled_rows_as_often_as_asked() {
        let n = 3_000usize;
        let tokens: Vec<i64> = (0..n).map(|i| 15 + (i % 7) as i64).collect();
        // Rows below 1,000 three times, the rest once.
        let pool: Vec<i64> = (0..n as i64)
            .flat_map(|r| std::iter::repeat_n(r, if r < 1_000 { 3 } else { 1 }))
            .collect();
        for tok in [None, Some(tokens.as_slice())] {
            let order = epoch_order(n, Some(&pool), tok, 32, 5);
            assert_eq!(order.len(), 5_000);
            let mut count = vec![0; n];
            order.iter().for_each(|&r| count[r as usize] += 1);
            assert!(count[..1_000].iter().all(|&c| c == 3));
            assert!(count[1_000..].iter().all(|&c| c == 1));
            // Shuffled: the first batch is not the pool's first rows.
            assert_ne!(&order[..32], &pool[..32]);
            let plain = epoch_order(n, None, tok, 32, 5);
            let mut sorted = plain.clone();
            sorted.sort();
            assert_eq!(sorted, (0..n as i64).collect::<Vec<_>>());
        }
        // Batches of like sizes: within a sortish batch the tokens differ by little.
        let order = epoch_order(n, Some(&pool), Some(&tokens), 32, 5);
        let spread: i64 = order
            .chunks(32)
            .map(|b| {
                let t: Vec<i64> = b.iter().map(|&r| tokens[r as usize]).collect();
                t.iter().max().unwrap() - t.iter().min().unwrap()
            })
            .sum();
        assert!(spread < (order.len() / 32) as i64, "spread {spread}");
    }

    /// Sortish batches draw every row once and put molecules of like sizes together.
    #[test]
    fn sortish_batches_are_a_permutation_of_like_sizes() {
        let n = 10_000usize;
        let keys = crate::data::normals(n, 3);
        let tokens: Vec<i64> = (0..n).map(|i| 15 + (i * 7919 % 33) as i64).collect();
        let mut order: Vec<i64> = (0..n as i64).collect();
        order.sort_by(|&p, &q| keys[p as usize].total_cmp(&keys[q as usize]));
        let out = sortish(&order, &tokens, 32, &keys);
        let mut seen = out.clone();
        seen.sort();
        assert_eq!(seen, (0..n as i64).collect::<Vec<_>>());
        // Mean padding per row (batch max minus own size): random batches about 30 tokens.
        let pad = |o: &[i64]| {
            let total: i64 = o
                .chunks(32)
                .map(|b| {
                    let m = b.iter().map(|&r| tokens[r as usize]).max().unwrap();
                    b.iter().map(|&r| m - tokens[r as usize]).sum::<i64>()
                })
                .sum();
            total as f64 / o.len() as f64
        };
        let (random, sorted) = (pad(&order), pad(&out));
        assert!(random > 10.0 && sorted < 1.5, "{random} {sorted}");
    }
}
