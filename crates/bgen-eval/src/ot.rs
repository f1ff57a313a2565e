//! Exact optimal transport between two discrete measures: a network simplex on a sparse set of
//! candidate arcs, certified optimal on the full problem by its duals. Solve on the k nearest
//! neighbours (both ways) plus a feasible path; then check every pair's reduced cost
//! c_ij - f_i - g_j >= 0; add the violating pairs and solve again until none is left. The result
//! is the exact optimum of the dense n x m problem (the dual check is over all pairs), without
//! storing the n x m cost matrix.

use rayon::prelude::*;

const NONE: u32 = u32::MAX;

/// A transportation problem on a sparse arc set, solved by the primal network simplex
/// (spanning-tree basis, block-search pricing, strongly feasible leaving-arc rule).
struct NetworkSimplex {
    src: Vec<u32>,
    dst: Vec<u32>,
    cost: Vec<f64>,
    flow: Vec<f64>,
    in_tree: Vec<bool>,
    parent: Vec<u32>,
    pred: Vec<u32>,
    /// pred arc goes from the node up to its parent
    pred_up: Vec<bool>,
    first_child: Vec<u32>,
    next_sib: Vec<u32>,
    prev_sib: Vec<u32>,
    depth: Vec<u32>,
    pi: Vec<f64>,
}

impl NetworkSimplex {
    /// Sources 0..n with supplies `a`, sinks n..n+m with demands `b`, arcs (i, j, cost).
    fn new(a: &[f64], b: &[f64], arcs: &[(u32, u32, f64)]) -> NetworkSimplex {
        let (n, m) = (a.len(), b.len());
        let n_nodes = n + m + 1;
        let root = n + m;
        let max_cost = arcs.iter().fold(0.0f64, |x, a| x.max(a.2.abs()));
        let big = (max_cost + 1.0) * (n + m) as f64;
        let e = arcs.len();
        let mut s = NetworkSimplex {
            src: Vec::with_capacity(e + n + m),
            dst: Vec::with_capacity(e + n + m),
            cost: Vec::with_capacity(e + n + m),
            flow: vec![0.0; e + n + m],
            in_tree: vec![false; e + n + m],
            parent: vec![root as u32; n_nodes],
            pred: vec![NONE; n_nodes],
            pred_up: vec![false; n_nodes],
            first_child: vec![NONE; n_nodes],
            next_sib: vec![NONE; n_nodes],
            prev_sib: vec![NONE; n_nodes],
            depth: vec![1; n_nodes],
            pi: vec![0.0; n_nodes],
        };
        for &(i, j, c) in arcs {
            s.src.push(i);
            s.dst.push(n as u32 + j);
            s.cost.push(c);
        }
        // Artificial arcs: source -> root, root -> sink, at a cost above any path.
        for v in 0..n + m {
            let k = s.src.len();
            if v < n {
                s.src.push(v as u32);
                s.dst.push(root as u32);
                s.flow[k] = a[v];
                s.pred_up[v] = true;
                s.pi[v] = -big;
            } else {
                s.src.push(root as u32);
                s.dst.push(v as u32);
                s.flow[k] = b[v - n];
                s.pred_up[v] = false;
                s.pi[v] = big;
            }
            s.cost.push(big);
            s.in_tree[k] = true;
            s.pred[v] = k as u32;
            s.link(v, root);
        }
        s.parent[root] = NONE;
        s.depth[root] = 0;
        s
    }

    /// Adds arcs (i, j, cost) outside the tree; the current basis stays valid (warm start).
    fn add_arcs(&mut self, n: usize, arcs: &[(u32, u32, f64)]) {
        for &(i, j, c) in arcs {
            self.src.push(i);
            self.dst.push(n as u32 + j);
            self.cost.push(c);
            self.flow.push(0.0);
            self.in_tree.push(false);
        }
    }

    fn link(&mut self, child: usize, parent: usize) {
        self.parent[child] = parent as u32;
        let f = self.first_child[parent];
        self.next_sib[child] = f;
        self.prev_sib[child] = NONE;
        if f != NONE {
            self.prev_sib[f as usize] = child as u32;
        }
        self.first_child[parent] = child as u32;
    }

    fn cut(&mut self, child: usize) {
        let p = self.parent[child] as usize;
        let (prev, next) = (self.prev_sib[child], self.next_sib[child]);
        if prev != NONE {
            self.next_sib[prev as usize] = next;
        } else {
            self.first_child[p] = next;
        }
        if next != NONE {
            self.prev_sib[next as usize] = prev;
        }
        self.parent[child] = NONE;
    }

    fn reduced_cost(&self, k: usize) -> f64 {
        self.cost[k] + self.pi[self.src[k] as usize] - self.pi[self.dst[k] as usize]
    }

    /// Runs to optimality; `tol` is the reduced-cost tolerance.
    fn solve(&mut self, tol: f64) -> usize {
        let mut pivots = 0;
        let e = self.src.len();
        let block = ((e as f64).sqrt() as usize).max(64).min(e);
        let mut next = 0;
        let mut stack: Vec<u32> = Vec::new();
        loop {
            // Block search: the most negative reduced cost in the next block holding one.
            let (mut best, mut best_rc) = (usize::MAX, -tol);
            let mut scanned = 0;
            while scanned < e {
                let end = (next + block).min(e);
                for k in next..end {
                    if !self.in_tree[k] {
                        let rc = self.reduced_cost(k);
                        if rc < best_rc {
                            best_rc = rc;
                            best = k;
                        }
                    }
                }
                scanned += end - next;
                next = if end == e { 0 } else { end };
                if best != usize::MAX {
                    break;
                }
            }
            if best == usize::MAX {
                return pivots;
            }
            self.pivot(best, best_rc, &mut stack);
            pivots += 1;
        }
    }

    fn pivot(&mut self, k_in: usize, rc: f64, stack: &mut Vec<u32>) {
        let (first, second) = (self.src[k_in] as usize, self.dst[k_in] as usize);
        // Join node: the lowest common ancestor.
        let (mut u, mut v) = (first, second);
        while u != v {
            if self.depth[u] > self.depth[v] {
                u = self.parent[u] as usize;
            } else if self.depth[v] > self.depth[u] {
                v = self.parent[v] as usize;
            } else {
                u = self.parent[u] as usize;
                v = self.parent[v] as usize;
            }
        }
        let join = u;
        // Leaving arc: the smallest flow among arcs whose flow decreases around the cycle
        // first -> second -> join -> first; ties broken towards the second side, as in a
        // strongly feasible tree.
        let mut delta = f64::INFINITY;
        let (mut u_out, mut side) = (NONE as usize, 0);
        let mut w = first;
        while w != join {
            if self.pred_up[w] {
                let d = self.flow[self.pred[w] as usize];
                if d < delta {
                    (delta, u_out, side) = (d, w, 1);
                }
            }
            w = self.parent[w] as usize;
        }
        let mut w = second;
        while w != join {
            if !self.pred_up[w] {
                let d = self.flow[self.pred[w] as usize];
                if d <= delta {
                    (delta, u_out, side) = (d, w, 2);
                }
            }
            w = self.parent[w] as usize;
        }
        assert!(delta.is_finite(), "unbounded transport problem");
        // Push delta around the cycle.
        self.flow[k_in] += delta;
        let mut w = first;
        while w != join {
            let k = self.pred[w] as usize;
            self.flow[k] += if self.pred_up[w] { -delta } else { delta };
            w = self.parent[w] as usize;
        }
        let mut w = second;
        while w != join {
            let k = self.pred[w] as usize;
            self.flow[k] += if self.pred_up[w] { delta } else { -delta };
            w = self.parent[w] as usize;
        }
        // Tree update: the subtree below the leaving arc is re-rooted at the entering arc's
        // endpoint on its side and hung from the other endpoint.
        let k_out = self.pred[u_out] as usize;
        self.in_tree[k_out] = false;
        self.in_tree[k_in] = true;
        let (new_root, new_parent) = if side == 1 {
            (first, second)
        } else {
            (second, first)
        };
        // Reverse the path new_root .. u_out.
        let mut path = Vec::new();
        let mut w = new_root;
        loop {
            path.push(w);
            if w == u_out {
                break;
            }
            w = self.parent[w] as usize;
        }
        let old_pred: Vec<(u32, bool)> = path
            .iter()
            .map(|&p| (self.pred[p], self.pred_up[p]))
            .collect();
        self.cut(u_out);
        for t in (1..path.len()).rev() {
            let (child, below) = (path[t], path[t - 1]);
            self.cut(below);
            // the arc that joined `below` to `child` now joins `child` to `below`
            self.pred[child] = old_pred[t - 1].0;
            self.pred_up[child] = !old_pred[t - 1].1;
            self.link(child, below);
        }
        self.pred[new_root] = k_in as u32;
        self.pred_up[new_root] = new_root == first;
        self.link(new_root, new_parent);
        // Potentials and depths of the moved subtree.
        let shift = if new_root == first { -rc } else { rc };
        stack.clear();
        stack.push(new_root as u32);
        while let Some(x) = stack.pop() {
            let x = x as usize;
            self.pi[x] += shift;
            self.depth[x] = self.depth[self.parent[x] as usize] + 1;
            let mut c = self.first_child[x];
            while c != NONE {
                stack.push(c);
                c = self.next_sib[c as usize];
            }
        }
    }
}

/// The optimal plan and its certificate.
#[derive(Clone, Debug)]
pub struct Transport {
    /// Total cost sum_ij P_ij c_ij.
    pub cost: f64,
    /// Nonzero entries (i, j, P_ij) of the plan.
    pub plan: Vec<(u32, u32, f64)>,
    /// Dual potentials f (sources) and g (sinks): f_i + g_j <= c_ij for all pairs, with
    /// equality on the plan's support.
    pub f: Vec<f64>,
    pub g: Vec<f64>,
    /// Candidate arcs in the final sparse problem and the rounds of dual checks it took.
    pub arcs: usize,
    pub rounds: usize,
}

/// Exact optimal transport from weights `a` (n, summing to 1) to `b` (m, summing to 1) with
/// cost `cost(i, j)`; `k` nearest neighbours and the pairs `seeds` (e.g. from a coarse
/// solution) start the candidate set. Weights are taken as given (normalise them first); zero
/// weights are allowed.
///
/// Column generation: solve the sparse problem on the candidate arcs, check the duals against
/// every pair, add the most violated and solve again until none is violated, which makes the
/// sparse optimum the dense one.
pub fn exact_ot<C>(a: &[f64], b: &[f64], cost: C, k: usize, seeds: &[(u32, u32)]) -> Transport
where
    C: Fn(usize, usize) -> f64 + Sync,
{
    let (n, m) = (a.len(), b.len());
    assert!(n > 0 && m > 0, "empty measure");
    let mut arcs = initial_arcs(a, b, &cost, k, seeds);
    let scale = arcs
        .iter()
        .fold(0.0f64, |x, a| x.max(a.2.abs()))
        .max(1e-300);
    let tol = 1e-10 * scale;
    let debug = std::env::var_os("BGEN_OT_DEBUG").is_some();
    let mut ns = NetworkSimplex::new(a, b, &arcs);
    // The solver keeps its n + m artificial arcs after the first e0 arcs; added arcs follow.
    let e0 = arcs.len();
    let solver_index = |q: usize| if q < e0 { q } else { q + n + m };
    let mut rounds = 0;
    loop {
        rounds += 1;
        let t0 = std::time::Instant::now();
        let pivots = ns.solve(tol);
        let f: Vec<f64> = (0..n).map(|i| -ns.pi[i]).collect();
        let g: Vec<f64> = (0..m).map(|j| ns.pi[n + j]).collect();
        let t1 = t0.elapsed().as_secs_f64();
        let extra = violations(&cost, &f, &g, tol);
        if debug {
            let primal: f64 = arcs
                .iter()
                .enumerate()
                .map(|(q, &(_, _, c))| ns.flow[solver_index(q)] * c)
                .sum();
            let lower = dual_lower_bound(a, b, &cost, &f);
            bgen_system::say!(
                "   primal {primal:.12} lower {lower:.12} gap {:.3e}",
                primal - lower
            );
            bgen_system::say!(
                "round {rounds}: {} arcs, {pivots} pivots in {t1:.2} s, {} violations, {:.2} s",
                arcs.len(),
                extra.len(),
                t0.elapsed().as_secs_f64()
            );
        }
        if extra.is_empty() {
            // Artificial arcs carry no flow at a feasible optimum.
            let residual: f64 = ns.flow[e0..e0 + n + m].iter().sum();
            debug_assert!(residual < 1e-9, "artificial flow {residual}");
            let flows = (0..arcs.len()).map(|q| ns.flow[solver_index(q)]);
            let (cost, plan) = support(&arcs, flows);
            return Transport {
                cost,
                plan,
                f,
                g,
                arcs: arcs.len(),
                rounds,
            };
        }
        ns.add_arcs(n, &extra);
        arcs.extend(extra);
    }
}

/// The first candidate arcs (i, j, c_ij), sorted and without repeats: the `seeds`, the `k`
/// nearest sinks of each source and sources of each sink, and a north-west-corner staircase,
/// which makes the sparse problem feasible.
fn initial_arcs<C>(
    a: &[f64],
    b: &[f64],
    cost: &C,
    k: usize,
    seeds: &[(u32, u32)],
) -> Vec<(u32, u32, f64)>
where
    C: Fn(usize, usize) -> f64 + Sync,
{
    let (n, m) = (a.len(), b.len());
    let k = k.clamp(1, m.min(n));
    let mut arcs: Vec<(u32, u32, f64)> = seeds
        .iter()
        .map(|&(i, j)| (i, j, cost(i as usize, j as usize)))
        .collect();
    let rows: Vec<Vec<(u32, u32, f64)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            nearest((0..m).map(|j| cost(i, j)), k.min(m))
                .into_iter()
                .map(|(j, c)| (i as u32, j, c))
                .collect()
        })
        .collect();
    arcs.extend(rows.into_iter().flatten());
    let cols: Vec<Vec<(u32, u32, f64)>> = (0..m)
        .into_par_iter()
        .map(|j| {
            nearest((0..n).map(|i| cost(i, j)), k.min(n))
                .into_iter()
                .map(|(i, c)| (i, j as u32, c))
                .collect()
        })
        .collect();
    arcs.extend(cols.into_iter().flatten());
    let (mut i, mut j, mut ra, mut rb) = (0, 0, a[0], b[0]);
    loop {
        arcs.push((i as u32, j as u32, cost(i, j)));
        if i + 1 == n && j + 1 == m {
            break;
        }
        if (ra <= rb && i + 1 < n) || j + 1 == m {
            rb -= ra;
            i += 1;
            ra = a[i];
        } else {
            ra -= rb;
            j += 1;
            rb = b[j];
        }
    }
    arcs.sort_unstable_by_key(|a| (a.0, a.1));
    arcs.dedup_by_key(|a| (a.0, a.1));
    arcs
}

/// The dual check over all pairs: for each source, the (at most `EXTRA_PER_ROW`) most violated
/// pairs with reduced cost c_ij - f_i - g_j < -tol.
fn violations<C>(cost: &C, f: &[f64], g: &[f64], tol: f64) -> Vec<(u32, u32, f64)>
where
    C: Fn(usize, usize) -> f64 + Sync,
{
    (0..f.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            let mut v: Vec<(u32, u32, f64, f64)> = Vec::new();
            for (j, gj) in g.iter().enumerate() {
                let c = cost(i, j);
                let r = c - f[i] - gj;
                if r < -tol {
                    v.push((i as u32, j as u32, c, r));
                }
            }
            if v.len() > EXTRA_PER_ROW {
                v.select_nth_unstable_by(EXTRA_PER_ROW, |x, y| x.3.total_cmp(&y.3));
                v.truncate(EXTRA_PER_ROW);
            }
            v.into_iter().map(|(i, j, c, _)| (i, j, c))
        })
        .collect()
}

/// A lower bound on the optimal cost from the source potentials `f` alone: with the c-transform
/// g_j = min_i c_ij - f_i the pair (f, g) is dual feasible, so sum a f + sum b g <= optimum.
fn dual_lower_bound<C>(a: &[f64], b: &[f64], cost: &C, f: &[f64]) -> f64
where
    C: Fn(usize, usize) -> f64 + Sync,
{
    let gc: Vec<f64> = (0..b.len())
        .into_par_iter()
        .map(|j| {
            (0..a.len())
                .map(|i| cost(i, j) - f[i])
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    a.iter().zip(f).map(|(a, f)| a * f).sum::<f64>()
        + b.iter().zip(&gc).map(|(b, g)| b * g).sum::<f64>()
}

/// The plan's nonzero entries (i, j, P_ij) and its total cost, from the flow on each arc.
fn support(
    arcs: &[(u32, u32, f64)],
    flows: impl Iterator<Item = f64>,
) -> (f64, Vec<(u32, u32, f64)>) {
    let mut plan = Vec::new();
    let mut total = 0.0;
    for (&(i, j, c), p) in arcs.iter().zip(flows) {
        if p > 0.0 {
            plan.push((i, j, p));
            total += p * c;
        }
    }
    (total, plan)
}

/// Violating pairs added per source and round of the dual check.
const EXTRA_PER_ROW: usize = 64;

/// Indices and values of the `k` smallest values.
fn nearest(values: impl Iterator<Item = f64>, k: usize) -> Vec<(u32, f64)> {
    let mut v: Vec<(u32, f64)> = values.enumerate().map(|(j, c)| (j as u32, c)).collect();
    if k < v.len() {
        v.select_nth_unstable_by(k, |x, y| x.1.total_cmp(&y.1));
        v.truncate(k);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform measures of equal size: the optimum is a permutation; brute force over all 7!.
    #[test]
    fn matches_brute_force_assignment() {
        let mut s = 3;
        for _ in 0..20 {
            let n = 7;
            let x: Vec<[f64; 2]> = (0..n).map(|_| [lcg(&mut s), lcg(&mut s)]).collect();
            let y: Vec<[f64; 2]> = (0..n).map(|_| [lcg(&mut s), lcg(&mut s)]).collect();
            let c = |i: usize, j: usize| (x[i][0] - y[j][0]).powi(2) + (x[i][1] - y[j][1]).powi(2);
            let w = vec![1.0 / n as f64; n];
            let t = exact_ot(&w, &w, c, 2, &[]);
            let mut perm: Vec<usize> = (0..n).collect();
            let mut best = f64::INFINITY;
            permute(&mut perm, 0, &mut |p| {
                best = best.min(p.iter().enumerate().map(|(i, &j)| c(i, j)).sum::<f64>() / n as f64)
            });
            assert!((t.cost - best).abs() < 1e-12, "{} vs {best}", t.cost);
        }
    }

    fn permute(p: &mut Vec<usize>, k: usize, f: &mut impl FnMut(&[usize])) {
        if k == p.len() {
            f(p);
            return;
        }
        for i in k..p.len() {
            p.swap(k, i);
            permute(p, k + 1, f);
            p.swap(k, i);
        }
    }

    /// Weighted 1-D problems with a convex cost: the optimum is the monotone (quantile) coupling.
    #[test]
    fn matches_the_monotone_coupling_in_one_dimension() {
        let mut s = 11;
        for (n, m) in [(5, 9), (40, 25), (300, 200)] {
            let mut x: Vec<f64> = (0..n).map(|_| lcg(&mut s) * 4.0).collect();
            let mut y: Vec<f64> = (0..m).map(|_| lcg(&mut s) * 3.0 + 0.5).collect();
            x.sort_by(f64::total_cmp);
            y.sort_by(f64::total_cmp);
            let norm = |v: Vec<f64>| {
                let t: f64 = v.iter().sum();
                v.into_iter().map(|w| w / t).collect::<Vec<_>>()
            };
            let a = norm((0..n).map(|_| 0.1 + lcg(&mut s)).collect());
            let b = norm((0..m).map(|_| 0.1 + lcg(&mut s)).collect());
            let c = |i: usize, j: usize| (x[i] - y[j]).powi(2);
            let t = exact_ot(&a, &b, c, 3, &[]);
            // North-west corner on sorted points = monotone coupling.
            let (mut i, mut j, mut ra, mut rb, mut want) = (0, 0, a[0], b[0], 0.0);
            loop {
                let p = ra.min(rb);
                want += p * c(i, j);
                ra -= p;
                rb -= p;
                if i + 1 == n && j + 1 == m {
                    break;
                }
                if ra <= rb && i + 1 < n {
                    i += 1;
                    ra = a[i];
                } else {
                    j += 1;
                    rb = b[j];
                }
            }
            assert!(
                (t.cost - want).abs() < 1e-10 * want.max(1.0),
                "{n}x{m}: {} vs {want}",
                t.cost
            );
            // The duals certify it: feasible everywhere, tight on the plan.
            for i in 0..n {
                for j in 0..m {
                    assert!(c(i, j) - t.f[i] - t.g[j] > -1e-9);
                }
            }
            let moved: f64 = t.plan.iter().map(|p| p.2).sum();
            assert!((moved - 1.0).abs() < 1e-12);
        }
    }
}
