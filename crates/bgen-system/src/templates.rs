//! Matching residues to force-field residue templates by their bond graphs (elements, bonds,
//! external bonds), as OpenMM does; atom names only break ties between symmetric atoms.

use crate::error::Result;
use crate::ffxml::{FfData, ResidueTemplate};
use crate::topology::Topology;

/// The template chosen for one residue and the template atom of each of its atoms.
#[derive(Clone, Debug)]
pub struct TemplateMatch {
    pub template: usize,
    /// `atom_map[k]` = template atom index of the residue's k-th atom.
    pub atom_map: Vec<usize>,
}

struct Graph {
    element: Vec<crate::element::Element>,
    external: Vec<u8>,
    neighbours: Vec<Vec<usize>>,
    names: Vec<String>,
}

impl Graph {
    fn of_template(ff: &FfData, t: &ResidueTemplate) -> Option<Graph> {
        let mut neighbours = vec![vec![]; t.atoms.len()];
        for &(a, b) in &t.bonds {
            neighbours[a].push(b);
            neighbours[b].push(a);
        }
        let element = t
            .atoms
            .iter()
            .map(|a| ff.types[a.type_index].element)
            .collect::<Option<Vec<_>>>()?;
        Some(Graph {
            element,
            external: t.external.clone(),
            neighbours,
            names: t.atoms.iter().map(|a| a.name.clone()).collect(),
        })
    }

    fn of_residue(top: &Topology, bonded: &[Vec<usize>], ri: usize) -> Graph {
        let range = top.residues[ri].atoms.clone();
        let mut g = Graph {
            element: vec![],
            external: vec![],
            neighbours: vec![],
            names: vec![],
        };
        for a in range.clone() {
            g.element.push(top.atoms[a].element);
            g.names.push(top.atoms[a].name.clone());
            let (inner, outer): (Vec<usize>, Vec<usize>) =
                bonded[a].iter().partition(|b| range.contains(b));
            g.neighbours
                .push(inner.into_iter().map(|b| b - range.start).collect());
            g.external.push(outer.len() as u8);
        }
        g
    }

    fn signature(&self) -> Vec<(crate::element::Element, usize, u8)> {
        let mut s: Vec<_> = (0..self.element.len())
            .map(|i| (self.element[i], self.neighbours[i].len(), self.external[i]))
            .collect();
        s.sort();
        s
    }
}

/// Finds an isomorphism residue -> template; candidates with the same name are tried first.
fn isomorphism(res: &Graph, tpl: &Graph) -> Option<Vec<usize>> {
    let n = res.element.len();
    // Visit order: breadth-first from the atom with most neighbours, so that each new atom has
    // an already-placed neighbour that prunes its candidates.
    let mut order = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    while order.len() < n {
        let start = (0..n)
            .filter(|&i| !seen[i])
            .max_by_key(|&i| (res.neighbours[i].len(), std::cmp::Reverse(i)))?;
        seen[start] = true;
        let mut k = order.len();
        order.push(start);
        while k < order.len() {
            for &b in &res.neighbours[order[k]] {
                if !seen[b] {
                    seen[b] = true;
                    order.push(b);
                }
            }
            k += 1;
        }
    }
    let candidates: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            let mut c: Vec<usize> = (0..n)
                .filter(|&j| {
                    tpl.element[j] == res.element[i]
                        && tpl.neighbours[j].len() == res.neighbours[i].len()
                        && tpl.external[j] == res.external[i]
                })
                .collect();
            c.sort_by_key(|&j| tpl.names[j] != res.names[i]);
            c
        })
        .collect();
    let mut map = vec![usize::MAX; n];
    let mut inverse = vec![usize::MAX; n];
    fn extend(
        depth: usize,
        order: &[usize],
        cand: &[Vec<usize>],
        res: &Graph,
        tpl: &Graph,
        map: &mut [usize],
        inv: &mut [usize],
    ) -> bool {
        if depth == order.len() {
            return true;
        }
        let i = order[depth];
        'c: for &j in &cand[i] {
            if inv[j] != usize::MAX {
                continue;
            }
            for &b in &res.neighbours[i] {
                if map[b] != usize::MAX && !tpl.neighbours[j].contains(&map[b]) {
                    continue 'c;
                }
            }
            for &tb in &tpl.neighbours[j] {
                if inv[tb] != usize::MAX && !res.neighbours[i].contains(&inv[tb]) {
                    continue 'c;
                }
            }
            map[i] = j;
            inv[j] = i;
            if extend(depth + 1, order, cand, res, tpl, map, inv) {
                return true;
            }
            map[i] = usize::MAX;
            inv[j] = usize::MAX;
        }
        false
    }
    extend(0, &order, &candidates, res, tpl, &mut map, &mut inverse).then_some(map)
}

/// Matches every residue of `top` to a template of `ff`; `setup` names the force field in errors.
pub fn match_templates(top: &Topology, ff: &FfData, setup: &str) -> Result<Vec<TemplateMatch>> {
    let bonded = top.bonded_to();
    let graphs: Vec<Option<Graph>> = ff
        .templates
        .iter()
        .map(|t| Graph::of_template(ff, t))
        .collect();
    let signatures: Vec<Option<_>> = graphs
        .iter()
        .map(|g| g.as_ref().map(|g| g.signature()))
        .collect();
    let graphs_of_residues: Vec<Graph> = (0..top.residues.len())
        .map(|ri| Graph::of_residue(top, &bonded, ri))
        .collect();
    // Unknown residues first: one unknown residue also leaves its neighbours' terminal atoms
    // unexplained, and the message should name the cause, not a neighbour.
    for (ri, g) in graphs_of_residues.iter().enumerate() {
        let sig = g.signature();
        let name = &top.residues[ri].name;
        if related_templates(ff, name).is_empty()
            && !signatures.iter().any(|t| t.as_ref() == Some(&sig))
        {
            return Err(top.residue_error(
                ri,
                format!("unknown residue '{name}': force field {setup} has no template for it"),
            ));
        }
    }
    let mut out = Vec::with_capacity(top.residues.len());
    for (ri, g) in graphs_of_residues.iter().enumerate() {
        let sig = g.signature();
        // An atom without any bond in a multi-atom residue has a name the bond tables do not know.
        if g.element.len() > 1 {
            if let Some(k) =
                (0..g.element.len()).find(|&k| g.neighbours[k].is_empty() && g.external[k] == 0)
            {
                return Err(top.residue_error(
                    ri,
                    format!("atom '{}' is not a known atom of {} (no bond could be assigned from its name)", g.names[k], top.residues[ri].name),
                ));
            }
        }
        let mut found: Option<TemplateMatch> = None;
        for (t, tg) in graphs.iter().enumerate() {
            let Some(tg) = tg else { continue };
            if signatures[t].as_ref() != Some(&sig) {
                continue;
            }
            if let Some(atom_map) = isomorphism(g, tg) {
                let better = found
                    .as_ref()
                    .is_none_or(|f| ff.templates[f.template].name != top.residues[ri].name);
                if better {
                    found = Some(TemplateMatch {
                        template: t,
                        atom_map,
                    });
                }
            }
        }
        match found {
            Some(m) => out.push(m),
            None => return Err(no_template_error(top, ff, setup, ri, g)),
        }
    }
    Ok(out)
}

/// Explains why residue `ri` matched nothing, by comparing with the closest-named templates.
fn no_template_error(
    top: &Topology,
    ff: &FfData,
    setup: &str,
    ri: usize,
    g: &Graph,
) -> crate::error::Error {
    let name = &top.residues[ri].name;
    let related = related_templates(ff, name);
    if related.is_empty() {
        return top.residue_error(
            ri,
            format!("unknown residue '{name}': force field {setup} has no template for it"),
        );
    }
    // The related template with the fewest differences in atom names.
    let have: std::collections::BTreeSet<&str> = g.names.iter().map(|s| s.as_str()).collect();
    let best = related
        .iter()
        .map(|t| {
            let want: std::collections::BTreeSet<&str> =
                t.atoms.iter().map(|a| a.name.as_str()).collect();
            let missing: Vec<&str> = want.difference(&have).copied().collect();
            let extra: Vec<&str> = have.difference(&want).copied().collect();
            (missing.len() + extra.len(), t, missing, extra)
        })
        .min_by_key(|x| x.0)
        .expect("related is not empty");
    let (_, t, missing, extra) = best;
    let n_h = g
        .element
        .iter()
        .filter(|&&e| e == crate::element::Element::H)
        .count();
    let mut msg = format!("matches no template of {setup} ({} atoms, {n_h} hydrogens); closest template {} has {} atoms", g.element.len(), t.name, t.atoms.len());
    if !missing.is_empty() {
        msg += &format!("; missing atoms: {}", missing.join(" "));
    }
    if !extra.is_empty() {
        msg += &format!("; atoms not in the template: {}", extra.join(" "));
    }
    if missing.is_empty() && extra.is_empty() {
        msg += "; the atom names agree, so the bonds differ (a terminus or a link to a neighbouring residue?)";
    }
    if n_h == 0 {
        msg += ". The residue has no hydrogens: add them first (e.g. with pdbfixer or reduce)";
    } else if missing.iter().any(|m| m.starts_with('H')) {
        msg += ". Missing hydrogens?";
    }
    top.residue_error(ri, msg)
}

/// Templates whose name fits a residue name: itself, its terminal variants (NALA, CALA) and the
/// protonation variants of HIS and CYS.
fn related_templates<'a>(ff: &'a FfData, name: &str) -> Vec<&'a ResidueTemplate> {
    ff.templates
        .iter()
        .filter(|t| {
            t.name == name
                || (t.name.len() == name.len() + 1 && t.name.ends_with(name))
                || (name == "HIS" && t.name.starts_with("HI"))
                || (name == "CYS" && t.name.starts_with("CY"))
        })
        .collect()
}
