//! Parameter assignment equals OpenMM's serialized System (XmlSerializer dump of createSystem):
//! masses, charges, sigma, epsilon, every bond, angle and torsion (with the exact atom order of
//! impropers), every exception, and the GB per-atom parameters.

use bgen_system::forcefield::GbModel;
use bgen_system::{Setup, System};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn xml(system: &str, setup: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/data/{system}/system_{setup}.xml"));
    std::fs::read_to_string(p).unwrap()
}

fn num(n: roxmltree::Node, a: &str) -> f64 {
    n.attribute(a)
        .unwrap_or_else(|| panic!("no {a}"))
        .parse()
        .unwrap()
}
fn idx(n: roxmltree::Node, a: &str) -> usize {
    n.attribute(a).unwrap().parse().unwrap()
}
/// The <Particle> elements of a node's <Particles> child.
fn particles_of<'a, 'i>(node: roxmltree::Node<'a, 'i>) -> Vec<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|n| n.has_tag_name("Particles"))
        .unwrap()
        .children()
        .filter(|n| n.is_element())
        .collect()
}
fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300) || (a - b).abs() < 1e-15
}

fn check(system: &str, setup_key: &str) {
    let setup = Setup::from_name(setup_key).unwrap();
    let sys = System::named(system, Some(setup), None).unwrap();
    let p = &sys.params;
    let text = xml(system, setup_key);
    let doc = roxmltree::Document::parse(&text).unwrap();
    let root = doc.root_element();
    let particles = particles_of(root);
    assert_eq!(particles.len(), sys.n_atoms());
    for (i, n) in particles.iter().enumerate() {
        assert!(same(num(*n, "mass"), p.mass[i]), "mass {i}");
    }
    let forces: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("Force"))
        .collect();
    let mut seen = vec![];
    for f in forces {
        let ty = f.attribute("type").unwrap();
        seen.push(ty);
        let items = |tag: &str| {
            f.descendants()
                .filter(|n| n.has_tag_name(tag))
                .collect::<Vec<_>>()
        };
        match ty {
            "HarmonicBondForce" => {
                let want: BTreeMap<(usize, usize), (f64, f64)> = items("Bond")
                    .iter()
                    .map(|b| {
                        let (i, j) = (idx(*b, "p1"), idx(*b, "p2"));
                        ((i.min(j), i.max(j)), (num(*b, "d"), num(*b, "k")))
                    })
                    .collect();
                let got: BTreeMap<(usize, usize), (f64, f64)> = p
                    .bonds
                    .iter()
                    .map(|b| ((b.i.min(b.j), b.i.max(b.j)), (b.length, b.k)))
                    .collect();
                assert_eq!(
                    want.len(),
                    p.bonds.len(),
                    "{system} {setup_key}: bond count"
                );
                for (k, w) in &want {
                    let g = got
                        .get(k)
                        .unwrap_or_else(|| panic!("{system}: bond {k:?} missing"));
                    assert!(
                        same(g.0, w.0) && same(g.1, w.1),
                        "{system} {setup_key}: bond {k:?}: {g:?} vs {w:?}"
                    );
                }
            }
            "HarmonicAngleForce" => {
                let key = |a: usize, b: usize, c: usize| if a < c { (a, b, c) } else { (c, b, a) };
                let want: BTreeMap<_, _> = items("Angle")
                    .iter()
                    .map(|a| {
                        (
                            key(idx(*a, "p1"), idx(*a, "p2"), idx(*a, "p3")),
                            (num(*a, "a"), num(*a, "k")),
                        )
                    })
                    .collect();
                assert_eq!(
                    want.len(),
                    p.angles.len(),
                    "{system} {setup_key}: angle count"
                );
                for a in &p.angles {
                    let w = want
                        .get(&key(a.atoms[0], a.atoms[1], a.atoms[2]))
                        .unwrap_or_else(|| panic!("{system}: extra angle {:?}", a.atoms));
                    assert!(
                        same(a.angle, w.0) && same(a.k, w.1),
                        "{system} {setup_key}: angle {:?}",
                        a.atoms
                    );
                }
            }
            "PeriodicTorsionForce" => {
                // Exact atom order (it matters for impropers); propers may be listed either way round.
                let canon = |t: [usize; 4], proper: bool| {
                    if proper && t[0] > t[3] {
                        [t[3], t[2], t[1], t[0]]
                    } else {
                        t
                    }
                };
                let mut want: Vec<String> = items("Torsion")
                    .iter()
                    .map(|t| {
                        let a = [idx(*t, "p1"), idx(*t, "p2"), idx(*t, "p3"), idx(*t, "p4")];
                        format!(
                            "{:?} n={} phase={:.12} k={:.12}",
                            canon(a, true),
                            num(*t, "periodicity"),
                            num(*t, "phase"),
                            num(*t, "k")
                        )
                    })
                    .collect();
                let mut got: Vec<String> = p
                    .torsions
                    .iter()
                    .map(|t| {
                        format!(
                            "{:?} n={} phase={:.12} k={:.12}",
                            canon(t.atoms, true),
                            t.periodicity as f64,
                            t.phase,
                            t.k
                        )
                    })
                    .collect();
                want.sort();
                got.sort();
                assert_eq!(got, want, "{system} {setup_key}: torsions differ");
            }
            "NonbondedForce" => {
                let parts = particles_of(f);
                for (i, n) in parts.iter().enumerate() {
                    assert!(
                        same(num(*n, "q"), p.charge[i]),
                        "{system} {setup_key}: charge {i}: {} vs {}",
                        p.charge[i],
                        num(*n, "q")
                    );
                    assert!(same(num(*n, "sig"), p.sigma[i]), "{system}: sigma {i}");
                    assert!(same(num(*n, "eps"), p.epsilon[i]), "{system}: epsilon {i}");
                }
                let want: BTreeMap<(usize, usize), [f64; 3]> = items("Exception")
                    .iter()
                    .map(|e| {
                        let (i, j) = (idx(*e, "p1"), idx(*e, "p2"));
                        (
                            (i.min(j), i.max(j)),
                            [num(*e, "q"), num(*e, "sig"), num(*e, "eps")],
                        )
                    })
                    .collect();
                assert_eq!(want.len(), p.exceptions.len(), "{system}: exception count");
                for e in &p.exceptions {
                    let w = want[&(e.i.min(e.j), e.i.max(e.j))];
                    assert!(
                        same(e.charge_prod, w[0]) && same(e.sigma, w[1]) && same(e.epsilon, w[2]),
                        "{system} {setup_key}: exception {} {}: {e:?} vs {w:?}",
                        e.i,
                        e.j
                    );
                }
                let method = idx(f, "method");
                match p.nonbonded {
                    bgen_system::forcefield::NonbondedMethod::NoCutoff => assert_eq!(method, 0),
                    bgen_system::forcefield::NonbondedMethod::CutoffNonPeriodic {
                        cutoff,
                        rf_dielectric,
                    } => {
                        assert_eq!(method, 1);
                        assert!(
                            same(cutoff, num(f, "cutoff"))
                                && same(rf_dielectric, num(f, "rfDielectric"))
                        );
                    }
                }
            }
            "GBSAOBCForce" => {
                assert_eq!(p.gbsa.model, GbModel::NativeObc2);
                assert!(same(p.gbsa.solvent_dielectric, num(f, "solventDielectric")));
                assert!(same(p.gbsa.solute_dielectric, num(f, "soluteDielectric")));
                assert!(same(
                    p.gbsa.surface_factor,
                    4.0 * std::f64::consts::PI * num(f, "surfaceAreaEnergy")
                ));
                for (i, n) in items("Particle").iter().enumerate() {
                    assert!(same(num(*n, "q"), p.gbsa.charge[i]), "gb charge {i}");
                    assert!(same(num(*n, "r"), p.gbsa.radius[i]), "gb radius {i}");
                    assert!(
                        same(
                            num(*n, "scale") * (p.gbsa.radius[i] - 0.009),
                            p.gbsa.scaled_radius[i]
                        ),
                        "gb scale {i}"
                    );
                }
            }
            "CustomGBForce" => {
                assert_eq!(p.gbsa.model, GbModel::CustomObc1);
                assert!(same(p.gbsa.cutoff.unwrap(), num(f, "cutoff")));
                let terms: String = items("Term")
                    .iter()
                    .map(|t| t.attribute("expression").unwrap())
                    .collect();
                assert!(
                    terms.contains("solventDielectric=78.5")
                        && terms.contains("28.3919551")
                        && terms.contains("138.935485")
                );
                for (i, n) in items("Particle").iter().enumerate() {
                    assert!(same(num(*n, "param1"), p.gbsa.charge[i]), "gb charge {i}");
                    assert!(
                        same(num(*n, "param2"), p.gbsa.offset_radius[i]),
                        "{system}: gb offset radius {i}: {} vs {}",
                        p.gbsa.offset_radius[i],
                        num(*n, "param2")
                    );
                    assert!(
                        same(num(*n, "param3"), p.gbsa.scaled_radius[i]),
                        "{system}: gb scaled radius {i}: {} vs {}",
                        p.gbsa.scaled_radius[i],
                        num(*n, "param3")
                    );
                }
            }
            "CMMotionRemover" => {}
            other => panic!("unexpected force {other}"),
        }
    }
    for ty in [
        "HarmonicBondForce",
        "HarmonicAngleForce",
        "PeriodicTorsionForce",
        "NonbondedForce",
    ] {
        assert!(seen.contains(&ty), "{ty} not checked");
    }
    assert!(seen.contains(&"GBSAOBCForce") || seen.contains(&"CustomGBForce"));
}

#[test]
fn aldp_amber99sbildn_parameters_equal_openmm() {
    check("aldp", "amber99sbildn_obc");
}

#[test]
fn aldp_amber14_parameters_equal_openmm() {
    check("aldp", "amber14_obc1");
}

#[test]
fn ala6_amber14_parameters_equal_openmm() {
    check("ala6", "amber14_obc1");
}
