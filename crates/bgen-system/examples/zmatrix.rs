//! Prints the Z-matrix of an embedded system: `cargo run --example zmatrix -- aldp`.
fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "aldp".into());
    let sys = bgen_system::System::named(&name, None, None).expect("an embedded system");
    let z = bgen_system::ZMatrix::from_topology(&sys.topology).expect("a Z-matrix");
    let mut ic = vec![0.0; z.dim()];
    z.to_internal(&sys.positions, &mut ic);
    let label = |a: usize| {
        let at = &sys.topology.atoms[a];
        format!(
            "{}{}:{}",
            sys.topology.residues[at.residue].name,
            at.residue + 1,
            at.name
        )
    };
    for (r, row) in z.rows.iter().enumerate() {
        let o = if r >= 3 {
            3 * r - 6
        } else {
            r.saturating_sub(1)
        };
        let vals: Vec<String> = match r {
            0 => vec![],
            1 => vec![format!("b {:.4}", ic[0])],
            2 => vec![
                format!("b {:.4}", ic[1]),
                format!("theta {:.1}", ic[2].to_degrees()),
            ],
            _ => vec![
                format!("b {:.4}", ic[o]),
                format!("theta {:.1}", ic[o + 1].to_degrees()),
                format!("phi {:.1}", ic[o + 2].to_degrees()),
            ],
        };
        println!(
            "{r:3} {:12} {:12} {:12} {:12} {}",
            label(row.atom),
            label(row.j),
            label(row.k),
            label(row.l),
            vals.join(" ")
        );
    }
}
